#!lua flags=allow-oom
-- slot_extend: the holders' heartbeat: each slot held another lease from
-- now (docs/control.md). It also prunes expired holders and hands their
-- slots to the oldest waiters, so a dead worker's slot comes back at its
-- expiry while other holders of the bucket live.
--
-- KEYS[1]  holders: sorted set "<id> <token>" or "<id>" (a reservation) -> deadline
-- KEYS[2]  waiters: sorted set id -> unix ms it joined (parked jobs, FIFO)
-- KEYS[3]  where: hash id -> ready list member a waiter is resumed into
-- ARGV[1]  limit: the job type's concurrency
-- ARGV[2]  lease_ms: the new deadline is TIME + lease_ms
-- ARGV[3..] per job: id, token
--
-- allow-oom: it grows nothing (a hold extended; a waiter moved to a hold),
-- and a worker whose Redis refuses writes (maxmemory) must keep its slots
-- as it keeps its leases (extend.lua).
--
-- Returns: {lost (the ids that held no slot any more), woken (id, member
-- per waiter handed a slot)}.

-- @include _clock.lua
-- @include _slots.lua

local now = now_ms()
local deadline = now + tonumber(ARGV[2])
slots_prune(KEYS[1], now)
local lost = {}
for i = 3, #ARGV, 2 do
  local hold = ARGV[i] .. ' ' .. ARGV[i + 1]
  if redis.call('ZSCORE', KEYS[1], hold) then
    redis.call('ZADD', KEYS[1], deadline, hold)
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return {lost, slots_wake(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), deadline)}
