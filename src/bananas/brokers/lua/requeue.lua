-- requeue: put leased jobs back at the head of their ready list without
-- charging an attempt (drain ran out of time, or a process pool died under it).
--
-- KEYS[1]  active sorted set
-- KEYS[2]  lease token hash
-- KEYS[3]  lease queue hash
-- ARGV[1]  ready list key prefix
-- ARGV[2]  marker key prefix
-- ARGV[3..] pairs: id, token
--
-- Returns: number of jobs put back (stale leases are skipped).

local ready_prefix_len = #ARGV[1]
local n = 0
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == ARGV[i + 1] then
    local queue = redis.call('HGET', KEYS[3], id)
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('RPUSH', queue, id)
    redis.call('ZADD', ARGV[2] .. string.sub(queue, ready_prefix_len + 1), 0, '1')
    n = n + 1
  end
end
return n
