#!lua
-- slot_park: take leased jobs that found no free slot off their lease and
-- park them, no attempt charged (docs/control.md).
--
-- KEYS[1]  active: sorted set of leases
-- KEYS[2]  leases: hash id -> "<token> <ready list>"
-- KEYS[3]  scheduled: sorted set id -> due time (unix seconds)
-- ARGV[1]  recheck_ms: the safety re-check, from now (server clock)
-- ARGV[2..] per lease: id, token
--
-- A parked job waits in the scheduled set until its re-check time: its
-- waiter's wake-up (slot_resume.lua) takes it out at once; if that wake-up
-- is lost (the releasing worker died), the due move brings it back and
-- it asks again. Its record is untouched: nothing is charged.
--
-- Returns: flags, 1 per job parked (0: the lease was not ours any more).

-- @include _clock.lua
-- @include _lease.lua

local due = (now_ms() + tonumber(ARGV[1])) / 1000
local flags = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if lease_queue(KEYS[2], id, ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZADD', KEYS[3], due, id)
    flags[#flags + 1] = 1
  else
    flags[#flags + 1] = 0
  end
end
return flags
