#!lua
-- bury: dead-letter a leased job (retry budget spent, or a bad record /
-- payload / unknown type found by the worker), with its error and traceback.
--
-- KEYS[1]  active: sorted set of leases
-- KEYS[2]  leases: hash id -> "<token> <ready list>"
-- KEYS[3]  stalls: hash id -> lost-lease count
-- KEYS[4]  record_key: the job record key
-- KEYS[5]  result_key: the result hash key
-- KEYS[6]  dead: sorted set id -> time of death (unix ms, server clock)
-- KEYS[7]  dead_info: hash id -> JSON dead info
-- KEYS[8]  held: hash id -> digest of the live jobs holding a unique key
-- ARGV[1]  id
-- ARGV[2]  token: the caller's lease token
-- ARGV[3]  record: updated record JSON (status failed), or '' to leave it as is
-- ARGV[4]  info: dead info JSON {reason, error, traceback, failed_at, priority, name}
-- ARGV[5]  ttl: result TTL (seconds)
-- ARGV[6]  completed_at: ISO 8601, for the result
-- ARGV[7]  duration_ms: whole milliseconds (the SDKs parse an integer)
-- ARGV[8]  duration_us: whole microseconds (Bananas' own)
-- ARGV[9]  error: error text for the result hash
-- ARGV[10] notify: the channel to PUBLISH the outcome on
-- ARGV[11] throughput_prefix: minute counter key prefix (counts the failed attempt)
-- ARGV[12] throughput_keep: seconds a minute's counters are kept
-- ARGV[13] publish: PUBLISH, or SPUBLISH on Redis Cluster (complete.lua)
-- ARGV[14] unique_prefix: the unique keys' prefix (_unique.lua)
-- ARGV[15] wf: the workflow the job is a step of ("" for none: nothing more)
-- ARGV[16] wf_context: the workflow's prefixes (keys.Keys.wf_context, _wf.lua)
--
-- The PUBLISH is best effort (pcall), as in complete.lua: a refused publish
-- cannot leave the dead letter half written. The result hash keeps the
-- token (`lease`): a bury sent again because its reply was lost finds its
-- own and is answered 1. A dead letter is final: the unique key the job
-- holds is freed (_unique.lua; a replay takes it again).
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
if ARGV[3] ~= '' then redis.call('SET', KEYS[4], ARGV[3]) end
redis.call('ZADD', KEYS[6], now, id)
redis.call('HSET', KEYS[7], id, ARGV[4])
redis.call('DEL', KEYS[5])
redis.call('HSET', KEYS[5], 'status', 'failed', 'completed_at', ARGV[6],
  'duration_ms', ARGV[7], 'duration_us', ARGV[8], 'error', ARGV[9], 'lease', ARGV[2])
redis.call('EXPIRE', KEYS[5], ARGV[5])
count_attempts(ARGV[11], now, 'failed', 1, ARGV[12])
unique_release(KEYS[8], ARGV[14], {id})
if ARGV[15] ~= '' then wf_settle(wf_ctx(ARGV[16]), ARGV[15], id, 'failed', ARGV[9], now) end
redis.pcall(ARGV[13], ARGV[10], 'failed') -- best effort: see the header
return 1
