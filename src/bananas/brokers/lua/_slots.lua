-- Concurrency slots (docs/control.md), spliced into the scripts that say
-- `-- @include _slots.lua`. A bucket is three keys of one partition:
-- holders (sorted set "<id> <token>", a lease's hold, or "<id>", a woken
-- waiter's reservation -> deadline, unix ms, server clock), waiters
-- (sorted set id -> unix ms it joined: parked jobs, oldest first) and where
-- (hash id -> the ready list member a waiter is resumed into).

-- Drop the holders whose deadline passed (their worker died: nobody
-- extended them): this is how a dead worker's slot comes back.
local function slots_prune(holders, now)
  redis.call('ZREMRANGEBYSCORE', holders, '-inf', now)
end

-- Hand free slots to the oldest waiters: each becomes a holder until
-- `deadline` (its reservation, taken up when it is leased again) and is
-- returned as id, member for the caller to resume.
local function slots_wake(holders, waiters, where, limit, deadline)
  local out = {}
  local free = limit - redis.call('ZCARD', holders)
  while free > 0 do
    local got = redis.call('ZPOPMIN', waiters)
    if #got == 0 then break end
    local id = got[1]
    redis.call('ZADD', holders, deadline, id)
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', where, id) or ''
    redis.call('HDEL', where, id)
    free = free - 1
  end
  return out
end

-- Milliseconds until the soonest holder deadline (when a slot may come back
-- without a release), within [50, lease_ms]: a waiter's safety re-check.
local function slots_recheck(holders, now, lease_ms)
  local first = redis.call('ZRANGE', holders, 0, 0, 'WITHSCORES')
  if #first == 0 then return 50 end
  return math.max(50, math.min(lease_ms, tonumber(first[2]) - now + 50))
end
