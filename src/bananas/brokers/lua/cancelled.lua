#!lua
-- cancelled: settle a leased job that stopped because it was cancelled
-- (cancel.lua flagged it, its worker stopped the handler): final, neither
-- retried nor dead-lettered.
--
-- KEYS[1]  active: sorted set of leases
-- KEYS[2]  leases: hash id -> "<token> <ready list>"
-- KEYS[3]  stalls: hash id -> lost-lease count
-- KEYS[4]  record_key: the job record key
-- KEYS[5]  result_key: the result hash key
-- KEYS[6]  cancels: hash id -> unix ms: running jobs someone cancelled
-- KEYS[7]  cancelled: sorted set id -> unix ms of the cancel
-- KEYS[8]  unique_held: hash id -> digest of live jobs holding a unique key
-- ARGV[1]  id
-- ARGV[2]  token: the caller's lease token
-- ARGV[3]  record: updated record JSON (status cancelled), or '' to keep it
-- ARGV[4]  ttl: result TTL (seconds); the record expires with it
-- ARGV[5]  completed_at: ISO 8601, for the result
-- ARGV[6]  duration_ms: whole milliseconds (the SDKs parse an integer)
-- ARGV[7]  duration_us: whole microseconds (Bananas' own)
-- ARGV[8]  error: error text for the result hash
-- ARGV[9]  notify: the channel to PUBLISH the outcome on
-- ARGV[10] publish: PUBLISH, or SPUBLISH on Redis Cluster (complete.lua)
-- ARGV[11] unique_prefix: unique key prefix (a cancelled job frees its key: _unique.lua)
-- ARGV[12] wf: the workflow the job is a step of ("" for none: nothing more)
-- ARGV[13] wf_context: the workflow's prefixes (keys.Keys.wf_context, _wf.lua)
--
-- The result reads as cancel.lua's: status `failed`, `cancelled` 1 (what SDK
-- readers know; Bananas reads it as cancelled).
-- Like bury.lua the result keeps the token (`lease`): a settle sent again
-- because its reply was lost finds its own and is answered 1.
--
-- Returns: 1 done (or done already by this same lease); 0 refused (stale lease).

-- @include _clock.lua
-- @include _lease.lua
-- @include _unique.lua
-- @include _index.lua
-- @include _wf.lua

local id = ARGV[1]
if not lease_queue(KEYS[2], id, ARGV[2]) then
  return redis.call('HGET', KEYS[5], 'lease') == ARGV[2] and 1 or 0
end
local now = now_ms()
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[6], id)
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[4])
else
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
redis.call('DEL', KEYS[5])
redis.call('HSET', KEYS[5], 'status', 'failed', 'cancelled', '1', 'completed_at', ARGV[5],
  'duration_ms', ARGV[6], 'duration_us', ARGV[7], 'error', ARGV[8], 'lease', ARGV[2])
redis.call('EXPIRE', KEYS[5], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - tonumber(ARGV[4]) * 1000)
redis.call('ZADD', KEYS[7], now, id)
unique_release(KEYS[8], ARGV[11], {id})
if ARGV[12] ~= '' then wf_settle(wf_ctx(ARGV[13]), ARGV[12], id, 'cancelled', 'cancelled', now) end
redis.pcall(ARGV[10], ARGV[9], 'failed') -- best effort, as in bury.lua
return 1
