#!lua flags=allow-oom
-- requeue: put leased jobs back at the head of their ready list without
-- charging an attempt (drain ran out of time, or a process pool died under it).
--
-- KEYS[1]  active: sorted set of leases
-- KEYS[2]  leases: hash id -> "<token> <ready list>"
-- KEYS[3]  index: hash of ready lists that may hold jobs (_index.lua)
-- ARGV[1]  ready_prefix: ready list key prefix
-- ARGV[2]  marker_prefix: marker key prefix
-- ARGV[3..] per lease: id, token
--
-- Returns: number of jobs put back (leases no longer ours are skipped).

-- @include _lease.lua
-- @include _index.lua

local ready_prefix_len = #ARGV[1]
local n = 0
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local queue = lease_queue(KEYS[2], id, ARGV[i + 1])
  if queue then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('RPUSH', queue, id)
    local member = string.sub(queue, ready_prefix_len + 1)
    redis.call('ZADD', ARGV[2] .. member, 0, '1')
    index_add(KEYS[3], member)
    n = n + 1
  end
end
index_bump(KEYS[3])
return n
