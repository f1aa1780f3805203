#!lua
-- retry: a failed attempt with budget left; schedule the next one.
--
-- KEYS[1]  active: sorted set of leases
-- KEYS[2]  leases: hash id -> "<token> <ready list>"
-- KEYS[3]  record_key: the job record key
-- KEYS[4]  scheduled: sorted set bananas:queue:scheduled (score unix seconds)
-- KEYS[5]  cancels: hash id -> unix ms: running jobs someone cancelled
-- ARGV[1]  id
-- ARGV[2]  token: the caller's lease token
-- ARGV[3]  record: updated record JSON (attempts + 1, status scheduled, error)
-- ARGV[4]  delay: seconds from now (server clock) until the next attempt
-- ARGV[5]  throughput_prefix: minute counter key prefix (counts the failed attempt)
-- ARGV[6]  throughput_keep: seconds a minute's counters are kept
--
-- The scheduler's move_due routes the job back to its ready list when due.
--
-- A retry sent again because its reply was lost finds its own record (the
-- caller's record carries its attempt and a jittered due time) and the job
-- scheduled, and is answered 1.
--
-- A job someone cancelled while it ran is not retried: 2, nothing changed,
-- and the worker settles it as cancelled (cancelled.lua).
--
-- Returns: 1 done (or done already by this same call); 0 refused (stale
-- lease); 2 refused because the job was cancelled.

-- @include _clock.lua
-- @include _lease.lua

local id = ARGV[1]
if not lease_queue(KEYS[2], id, ARGV[2]) then
  local again = redis.call('ZSCORE', KEYS[4], id) and redis.call('GET', KEYS[3]) == ARGV[3]
  return again and 1 or 0
end
if redis.call('HEXISTS', KEYS[5], id) == 1 then return 2 end
local now = now_ms()
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('SET', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], now / 1000 + tonumber(ARGV[4]), id)
count_attempts(ARGV[5], now, 'failed', 1, ARGV[6])
return 1
