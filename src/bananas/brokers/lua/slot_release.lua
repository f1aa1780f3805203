#!lua flags=allow-oom
-- slot_release: give back the slots of jobs that settled or were put back,
-- and hand every free slot to the oldest waiter (docs/control.md).
--
-- KEYS[1]  buckets: hash bucket -> limit, the buckets in use (for status)
-- KEYS[2]  holders: sorted set "<id> <token>" or "<id>" (a reservation) -> deadline
-- KEYS[3]  waiters: sorted set id -> unix ms it joined (parked jobs, FIFO)
-- KEYS[4]  where: hash id -> ready list member a waiter is resumed into
-- ARGV[1]  bucket: the bucket's name
-- ARGV[2]  limit: the job type's concurrency
-- ARGV[3]  lease_ms: a woken waiter's slot is reserved until TIME + lease_ms
-- ARGV[4..] per job: id, token
--          (token '': give back a woken waiter's reservation)
--
-- A woken waiter holds its slot from here (reserved): its resume puts it at
-- the head of its ready list and its next acquire finds it holding. The
-- bucket leaves `buckets` once it has no holder and no waiter.
--
-- allow-oom: it frees a hold (or moves a waiter to it), growing nothing.
--
-- Returns: woken, id and member per waiter handed a slot (the caller resumes them).

-- @include _clock.lua
-- @include _slots.lua

local now = now_ms()
for i = 4, #ARGV, 2 do
  redis.call('ZREM', KEYS[2], ARGV[i + 1] == '' and ARGV[i] or ARGV[i] .. ' ' .. ARGV[i + 1])
end
slots_prune(KEYS[2], now)
local woken = slots_wake(KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[2]), now + tonumber(ARGV[3]))
if redis.call('ZCARD', KEYS[2]) == 0 and redis.call('ZCARD', KEYS[3]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return woken
