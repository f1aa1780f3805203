-- retry: a failed attempt with budget left; schedule the next one.
--
-- KEYS[1]  active sorted set
-- KEYS[2]  lease token hash
-- KEYS[3]  lease queue hash
-- KEYS[4]  job record key
-- KEYS[5]  scheduled sorted set (bananas:queue:scheduled)
-- ARGV[1]  id
-- ARGV[2]  lease token
-- ARGV[3]  updated record JSON (attempts + 1, status scheduled, error)
-- ARGV[4]  due time (unix seconds)
-- KEYS[6]  throughput hash of the current minute (counts the failed attempt)
--
-- The scheduler's move_due routes the job back to its ready list when due.
-- Returns: 1 done; 0 refused (stale lease).

local id = ARGV[1]
if redis.call('HGET', KEYS[2], id) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('SET', KEYS[4], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[4], id)
redis.call('HINCRBY', KEYS[6], 'failed', 1)
redis.call('EXPIRE', KEYS[6], 7200)
return 1
