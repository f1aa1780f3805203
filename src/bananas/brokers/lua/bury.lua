-- bury: dead-letter a leased job (retry budget spent, or a bad record /
-- payload / unknown type found by the worker), with its error and traceback.
--
-- KEYS[1]  active sorted set
-- KEYS[2]  leases hash
-- KEYS[3]  stalls hash
-- KEYS[4]  job record key
-- KEYS[5]  result hash key
-- KEYS[6]  dead sorted set
-- KEYS[7]  dead info hash
-- KEYS[8]  throughput hash of the current minute (counts the failed attempt)
-- ARGV[1]  id
-- ARGV[2]  lease token
-- ARGV[3]  updated record JSON (status failed), or '' to leave the record as is
-- ARGV[4]  dead info JSON {reason, error, traceback, failed_at, priority, name}
-- ARGV[5]  now (unix ms)
-- ARGV[6]  result TTL (seconds)
-- ARGV[7]  completed_at (ISO 8601)
-- ARGV[8]  duration_ms
-- ARGV[9]  error text for the result hash
-- ARGV[10] notify channel
--
-- Returns: 1 done; 0 refused (stale lease).

-- @include _lease.lua

local id = ARGV[1]
if not lease_queue(KEYS[2], id, ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
if ARGV[3] ~= '' then redis.call('SET', KEYS[4], ARGV[3]) end
redis.call('ZADD', KEYS[6], ARGV[5], id)
redis.call('HSET', KEYS[7], id, ARGV[4])
redis.call('DEL', KEYS[5])
redis.call('HSET', KEYS[5], 'status', 'failed', 'completed_at', ARGV[7],
  'duration_ms', ARGV[8], 'error', ARGV[9])
redis.call('EXPIRE', KEYS[5], ARGV[6])
if redis.call('HINCRBY', KEYS[8], 'failed', 1) == 1 then
  redis.call('EXPIRE', KEYS[8], 7200)
end
redis.call('PUBLISH', ARGV[10], 'failed')
return 1
