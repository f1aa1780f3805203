#!lua flags=allow-oom
-- extend: heartbeat; push the lease deadline of jobs still held by the caller.
--
-- KEYS[1]  active: sorted set id -> lease deadline (unix ms)
-- KEYS[2]  leases: hash id -> "<token> <ready list>"
-- ARGV[1]  lease_ms: new lease length (ms); the deadline is TIME + lease_ms
-- ARGV[2..] per lease: id, token
--
-- A lease whose token no longer matches (it expired and was re-issued, or the
-- job was recovered or settled) is not extended.
--
-- Returns: array of ids whose lease the caller does not hold.

-- @include _clock.lua
-- @include _lease.lua

local deadline = now_ms() + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if lease_queue(KEYS[2], id, ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
