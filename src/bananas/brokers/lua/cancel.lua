#!lua
-- cancel: cancel one job, whatever state it is in (docs/control.md).
--
-- KEYS[1]  record_key: the job record key
-- KEYS[2]  result_key: the result hash key
-- KEYS[3]  ready: the ready list the record names (its route, priority, type)
-- KEYS[4]  scheduled: sorted set of scheduled jobs (score unix seconds)
-- KEYS[5]  active: sorted set of leases
-- KEYS[6]  dead: sorted set of dead-lettered ids
-- KEYS[7]  stalls: hash id -> lost-lease count
-- KEYS[8]  cancels: hash id -> unix ms: running jobs someone cancelled
-- KEYS[9]  cancelled: sorted set id -> unix ms of the cancel
-- KEYS[10] unique_held: hash id -> digest of live jobs holding a unique key
-- ARGV[1]  id
-- ARGV[2]  seen: the record as the caller read it (applied only if unchanged)
-- ARGV[3]  record: that record with status cancelled
-- ARGV[4]  ttl: result TTL (seconds); the record and result expire with it
-- ARGV[5]  cancelled_at: ISO 8601, for the result
-- ARGV[6]  notify: the channel to PUBLISH the outcome on
-- ARGV[7]  publish: PUBLISH, or SPUBLISH on Redis Cluster (complete.lua)
-- ARGV[8]  unique_prefix: unique key prefix (a cancelled job frees its key: _unique.lua)
-- ARGV[9]  wf: the workflow the job is a step of ("" for none: nothing more)
-- ARGV[10] wf_context: the workflow's prefixes (keys.Keys.wf_context, _wf.lua)
--
-- Queued (LREM from its ready list) or scheduled (ZREM): removed and final
-- at once: the result says status `failed` (what SDK readers know) with
-- `cancelled` 1 and error `cancelled` (Bananas reads it as cancelled:
-- docs/wire-format.md), the record likewise (the caller's), `failed`
-- published like bury's, the id in `cancelled`. Running (leased): a field in `cancels`, which
-- the worker holding the lease reads (cancel_check.lua) and settles
-- (cancelled.lua). A finished job is left alone and its state answered.
-- The caller builds the cancelled record from the one it read; a record
-- that changed in between (a retry, a completion) is answered 'changed' and
-- the caller reads it again.
--
-- Returns: 'cancelled', 'cancel_requested', 'already_completed',
-- 'already_dead', 'already_cancelled', 'unrouted' (an SDK record not yet
-- routed to a ready list), 'unknown' or 'changed'.

-- @include _clock.lua
-- @include _unique.lua
-- @include _index.lua
-- @include _wf.lua

local id = ARGV[1]
local raw = redis.call('GET', KEYS[1])
local result = redis.call('HMGET', KEYS[2], 'status', 'cancelled')
local status = result[2] and 'cancelled' or result[1]
if not raw then
  if status == 'completed' then return 'already_completed' end
  if status == 'cancelled' then return 'already_cancelled' end
  if status == 'failed' then return 'already_dead' end
  return 'unknown'
end
if raw ~= ARGV[2] then return 'changed' end
if redis.call('ZSCORE', KEYS[5], id) then
  redis.call('HSET', KEYS[8], id, now_ms())
  return 'cancel_requested'
end
if redis.call('ZSCORE', KEYS[6], id) then return 'already_dead' end
if status == 'completed' then return 'already_completed' end
if status == 'cancelled' then return 'already_cancelled' end
if redis.call('ZREM', KEYS[4], id) == 0 and redis.call('LREM', KEYS[3], 0, id) == 0 then
  return 'unrouted'
end
local now = now_ms()
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
redis.call('HDEL', KEYS[7], id)
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'status', 'failed', 'cancelled', '1', 'completed_at', ARGV[5],
  'duration_ms', '0', 'duration_us', '0', 'error', 'cancelled')
redis.call('EXPIRE', KEYS[2], ARGV[4])
-- The index keeps what the records still do: older entries go here, on a cancel.
redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', now - tonumber(ARGV[4]) * 1000)
redis.call('ZADD', KEYS[9], now, id)
unique_release(KEYS[10], ARGV[8], {id})
if ARGV[9] ~= '' then wf_settle(wf_ctx(ARGV[10]), ARGV[9], id, 'cancelled', 'cancelled', now) end
redis.pcall(ARGV[7], ARGV[6], 'failed') -- best effort, as in bury.lua
return 'cancelled'
