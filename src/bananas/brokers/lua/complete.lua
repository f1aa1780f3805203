-- complete: acknowledge a job that ran to completion and store its result.
--
-- KEYS[1]  active sorted set
-- KEYS[2]  lease token hash
-- KEYS[3]  lease queue hash
-- KEYS[4]  stalls hash
-- KEYS[5]  job record key
-- KEYS[6]  result hash key
-- ARGV[1]  id
-- ARGV[2]  lease token
-- ARGV[3]  updated record JSON (status completed)
-- ARGV[4]  result TTL (seconds)
-- ARGV[5]  completed_at (ISO 8601)
-- ARGV[6]  duration_ms
-- ARGV[7]  result JSON text ('' when the handler returned None)
-- ARGV[8]  notify channel
-- KEYS[7]  recent completions sorted set (capped at ARGV[10] entries)
-- KEYS[8]  throughput hash of the current minute
-- ARGV[9]  now (unix ms)
-- ARGV[10] how many recent completions to keep
-- ARGV[11] oldest completion time kept (unix ms): entries older than the
--          result TTL have no record left, so they leave the index too
--
-- Returns: 1 done; 0 refused because the caller's lease is gone (stale ack:
-- the job was recovered and re-issued, so the new holder completes it).

local id = ARGV[1]
if redis.call('HGET', KEYS[2], id) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
redis.call('SET', KEYS[5], ARGV[3], 'EX', ARGV[4])
redis.call('DEL', KEYS[6])
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[6], 'status', 'completed', 'completed_at', ARGV[5],
    'duration_ms', ARGV[6], 'result', ARGV[7])
else
  redis.call('HSET', KEYS[6], 'status', 'completed', 'completed_at', ARGV[5],
    'duration_ms', ARGV[6])
end
redis.call('EXPIRE', KEYS[6], ARGV[4])
redis.call('ZADD', KEYS[7], ARGV[9], id)
redis.call('ZREMRANGEBYRANK', KEYS[7], 0, -1 - tonumber(ARGV[10]))
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. ARGV[11])
redis.call('HINCRBY', KEYS[8], 'completed', 1)
redis.call('EXPIRE', KEYS[8], 7200)
redis.call('PUBLISH', ARGV[8], 'completed')
return 1
