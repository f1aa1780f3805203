-- extend: heartbeat; push the lease deadline of jobs still held by the caller.
--
-- KEYS[1]  active sorted set
-- KEYS[2]  leases hash
-- ARGV[1]  new deadline (unix ms)
-- ARGV[2..] pairs: id, token
--
-- A lease whose token no longer matches (it expired and was re-issued, or the
-- job was recovered or settled) is not extended.
-- Returns: array of ids whose lease the caller does not hold.

-- @include _lease.lua

local lost = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if lease_queue(KEYS[2], id, ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], id)
  else
    lost[#lost + 1] = id
  end
end
return lost
