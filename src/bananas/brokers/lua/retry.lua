-- retry: a failed attempt with budget left; schedule the next one.
--
-- KEYS[1]  active sorted set
-- KEYS[2]  leases hash
-- KEYS[3]  job record key
-- KEYS[4]  scheduled sorted set (bananas:queue:scheduled)
-- KEYS[5]  throughput hash of the current minute (counts the failed attempt)
-- ARGV[1]  id
-- ARGV[2]  lease token
-- ARGV[3]  updated record JSON (attempts + 1, status scheduled, error)
-- ARGV[4]  due time (unix seconds)
--
-- The scheduler's move_due routes the job back to its ready list when due.
-- Returns: 1 done; 0 refused (stale lease).

-- @include _lease.lua

local id = ARGV[1]
if not lease_queue(KEYS[2], id, ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('SET', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[4], id)
if redis.call('HINCRBY', KEYS[5], 'failed', 1) == 1 then
  redis.call('EXPIRE', KEYS[5], 7200)
end
return 1
