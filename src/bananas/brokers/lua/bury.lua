-- bury: dead-letter a leased job (retry budget spent, or a bad record /
-- payload / unknown type found by the worker), with its error and traceback.
--
-- KEYS[1]  active sorted set
-- KEYS[2]  lease token hash
-- KEYS[3]  lease queue hash
-- KEYS[4]  stalls hash
-- KEYS[5]  job record key
-- KEYS[6]  result hash key
-- KEYS[7]  dead sorted set
-- KEYS[8]  dead info hash
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
-- KEYS[9]  throughput hash of the current minute (counts the failed attempt)
--
-- Returns: 1 done; 0 refused (stale lease).

local id = ARGV[1]
if redis.call('HGET', KEYS[2], id) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
if ARGV[3] ~= '' then redis.call('SET', KEYS[5], ARGV[3]) end
redis.call('ZADD', KEYS[7], ARGV[5], id)
redis.call('HSET', KEYS[8], id, ARGV[4])
redis.call('DEL', KEYS[6])
redis.call('HSET', KEYS[6], 'status', 'failed', 'completed_at', ARGV[7],
  'duration_ms', ARGV[8], 'error', ARGV[9])
redis.call('EXPIRE', KEYS[6], ARGV[6])
redis.call('HINCRBY', KEYS[9], 'failed', 1)
redis.call('EXPIRE', KEYS[9], 7200)
redis.call('PUBLISH', ARGV[10], 'failed')
return 1
