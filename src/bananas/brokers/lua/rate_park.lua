#!lua
-- rate_park: put a leased job back as scheduled without charging an
-- attempt: a rate-limited job waiting for the slot rate_admit reserved for
-- it, or a job whose handler raised RetryLater (docs/control.md).
--
-- KEYS[1]  active: sorted set of leases
-- KEYS[2]  leases: hash id -> "<token> <ready list>"
-- KEYS[3]  record_key: the job record key
-- KEYS[4]  scheduled: sorted set bananas:queue:scheduled (score unix seconds)
-- KEYS[5]  cancels: hash id -> unix ms: running jobs someone cancelled
-- KEYS[6]  throttled: sorted set id -> unix ms of its slot, of the job's type
-- ARGV[1]  id
-- ARGV[2]  token: the caller's lease token
-- ARGV[3]  record: the record as parked (attempts unchanged, status scheduled)
-- ARGV[4]  delay: seconds from now (server clock) until it is due
-- ARGV[5]  waits: 1 when it waits for a rate-limit slot, 0 for a RetryLater
--
-- Like retry.lua, without counting a failed attempt: the lease ends, the
-- record is replaced and the job is due in `delay`; move_due (or the
-- worker's own wake-up at the slot) routes it back to its ready list. A
-- throttled job is also in `throttled` until its slot, which the views
-- count (ZCOUNT from now); entries whose slot has passed are pruned here,
-- a few per call, so the set holds about the jobs waiting now.
--
-- A call sent again because its reply was lost finds its own record and
-- the job scheduled, and is answered 1.
--
-- Returns: 1 done (or done already by this same call); 0 refused (stale
-- lease); 2 refused because the job was cancelled (nothing changed).

-- @include _clock.lua
-- @include _lease.lua

local id = ARGV[1]
if not lease_queue(KEYS[2], id, ARGV[2]) then
  local again = redis.call('ZSCORE', KEYS[4], id) and redis.call('GET', KEYS[3]) == ARGV[3]
  return again and 1 or 0
end
if redis.call('HEXISTS', KEYS[5], id) == 1 then return 2 end
local now = now_ms()
local due = now + tonumber(ARGV[4]) * 1000
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('SET', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], due / 1000, id)
if ARGV[5] == '1' then
  local stale = redis.call('ZRANGE', KEYS[6], '-inf', now, 'BYSCORE', 'LIMIT', 0, 16)
  if #stale > 0 then redis.call('ZREM', KEYS[6], unpack(stale)) end
  redis.call('ZADD', KEYS[6], due, id)
end
return 1
