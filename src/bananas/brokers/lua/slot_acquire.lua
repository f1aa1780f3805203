#!lua
-- slot_acquire: take a slot of a concurrency bucket for leased jobs, or
-- say there is none (docs/control.md).
--
-- KEYS[1]  buckets: hash bucket -> limit, the buckets in use (for status)
-- KEYS[2]  holders: sorted set "<id> <token>" (a lease's hold) or "<id>" (a
--          woken waiter's reservation) -> deadline (unix ms, server clock)
-- KEYS[3]  waiters: sorted set id -> join order (unix ms it joined, or one
--          more than the last waiter's: parked jobs, FIFO)
-- KEYS[4]  where: hash id -> ready list member a waiter is resumed into
-- ARGV[1]  bucket: the bucket's name (concurrency.bucket_of)
-- ARGV[2]  limit: the job type's concurrency
-- ARGV[3]  lease_ms: a holder's deadline is TIME + lease_ms
-- ARGV[4]  join: "1": a job without a slot joins the waiters (it is parked
--          already); "0": it is only told
-- ARGV[5..] per job: id, token, member
--
-- A hold is its lease's ("<id> <token>"): a job retried and leased again
-- by another worker is a new hold, never the old one, which its worker
-- releases. A waiter woken with a slot reserved ("<id>") turns the
-- reservation into its lease's hold; a repeated call keeps its hold.
-- Expired holders are pruned first; a slot they freed that no job of the
-- call takes goes to the oldest waiters.
-- A waiter keeps its place when it joins again.
--
-- Returns: {recheck_ms, flags (1: holds a slot, per job), woken (id,
-- member per waiter handed a slot)}. recheck_ms: until the soonest holder
-- deadline, the parked jobs' safety re-check (_slots.lua).

-- @include _clock.lua
-- @include _slots.lua

local now = now_ms()
local limit = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[3])
local deadline = now + lease_ms
slots_prune(KEYS[2], now)
redis.call('HSET', KEYS[1], ARGV[1], limit)
local flags = {}
for i = 5, #ARGV, 3 do
  local id = ARGV[i]
  -- joining, the job is parked already: a slot it finds free is reserved
  -- for it, as for a woken waiter, and taken up when it is leased again
  local hold = ARGV[4] == '1' and id or id .. ' ' .. ARGV[i + 1]
  local held = redis.call('ZSCORE', KEYS[2], hold)
  if not held and hold ~= id and redis.call('ZREM', KEYS[2], id) == 1 then
    held = true  -- its reservation
  end
  if held or redis.call('ZCARD', KEYS[2]) < limit then
    redis.call('ZADD', KEYS[2], deadline, hold)
    if redis.call('ZREM', KEYS[3], id) == 1 then redis.call('HDEL', KEYS[4], id) end
    flags[#flags + 1] = 1
  else
    if ARGV[4] == '1' and not redis.call('ZSCORE', KEYS[3], id) then
      -- FIFO by score, strictly increasing: ties would order by id
      local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
      local score = now
      if #last > 0 then score = math.max(now, tonumber(last[2]) + 1) end
      redis.call('ZADD', KEYS[3], score, id)
    end
    if ARGV[4] == '1' then redis.call('HSET', KEYS[4], id, ARGV[i + 2]) end
    flags[#flags + 1] = 0
  end
end
local woken = slots_wake(KEYS[2], KEYS[3], KEYS[4], limit, deadline)
return {slots_recheck(KEYS[2], now, lease_ms), flags, woken}
