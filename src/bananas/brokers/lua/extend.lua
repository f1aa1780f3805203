#!lua flags=allow-oom
-- extend: heartbeat; push the lease deadline of jobs still held by the caller.
--
-- KEYS[1]  active: sorted set id -> lease deadline (unix ms)
-- KEYS[2]  leases: hash id -> "<token> <ready list>"
-- ARGV[1]  lease_ms: new lease length (ms); the deadline is TIME + lease_ms
-- ARGV[2..] per lease: id, token, started
--
-- `started` is '1' once the job's handler has started: a lease taken as not
-- started ("~<token>", see dequeue.lua) is marked started, so the recoverer
-- charges a stall if it expires.
--
-- A lease whose token no longer matches (it expired and was re-issued, or the
-- job was recovered or settled) is not extended.
--
-- Returns: array of ids whose lease the caller does not hold.

-- @include _clock.lua
-- @include _lease.lua

local deadline = now_ms() + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  local lease = redis.call('HGET', KEYS[2], id)
  if lease_list(lease, ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
    if ARGV[i + 2] == '1' and string.sub(lease, 1, 1) == '~' then
      redis.call('HSET', KEYS[2], id, string.sub(lease, 2))
    end
  else
    lost[#lost + 1] = id
  end
end
return lost
