-- complete: acknowledge a job that ran to completion and store its result.
--
-- KEYS[1]  active sorted set
-- KEYS[2]  leases hash
-- KEYS[3]  stalls hash
-- KEYS[4]  job record key
-- KEYS[5]  result hash key
-- KEYS[6]  recent completions sorted set (trimmed by the recoverer)
-- KEYS[7]  throughput hash of the current minute
-- ARGV[1]  id
-- ARGV[2]  lease token
-- ARGV[3]  updated record JSON (status completed)
-- ARGV[4]  result TTL (seconds)
-- ARGV[5]  completed_at (ISO 8601)
-- ARGV[6]  duration_ms
-- ARGV[7]  result JSON text ('' when the handler returned None)
-- ARGV[8]  notify channel
-- ARGV[9]  now (unix ms)
--
-- Returns: 1 done; 0 refused because the caller's lease is gone (stale ack:
-- the job was recovered and re-issued, so the new holder completes it).
-- No DEL of the result first: only bury writes an `error` field, and only
-- replay (which deletes the result) can bring a buried job back.

-- @include _lease.lua

local id = ARGV[1]
if not lease_queue(KEYS[2], id, ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[4])
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[5], 'status', 'completed', 'completed_at', ARGV[5],
    'duration_ms', ARGV[6], 'result', ARGV[7])
else
  redis.call('HSET', KEYS[5], 'status', 'completed', 'completed_at', ARGV[5],
    'duration_ms', ARGV[6])
end
redis.call('EXPIRE', KEYS[5], ARGV[4])
redis.call('ZADD', KEYS[6], ARGV[9], id)
if redis.call('HINCRBY', KEYS[7], 'completed', 1) == 1 then
  redis.call('EXPIRE', KEYS[7], 7200)
end
redis.call('PUBLISH', ARGV[8], 'completed')
return 1
