#!lua
-- wf_complete: complete one workflow member and update its workflow in the
-- same script (docs/workflows.md): its result is kept in the workflow's
-- store, the steps depending on it whose last dependency this was are made
-- ready, and the workflow is final when this was its last step. A plain job
-- settles through complete.lua; a member (its record's `wf`) through this.
--
-- KEYS[1]  active: sorted set of leases
-- KEYS[2]  leases: hash id -> "<token> <ready list>"
-- KEYS[3]  stalls: hash id -> lost-lease count
-- KEYS[4]  completed: recent completions sorted set (trimmed by the recoverer)
-- KEYS[5]  record_key: the job record key
-- KEYS[6]  result_key: the result hash key
-- ARGV[1]  id
-- ARGV[2]  token: the caller's lease token
-- ARGV[3]  record: its updated record JSON (status completed)
-- ARGV[4]  completed_at: ISO 8601
-- ARGV[5]  duration_ms: whole milliseconds
-- ARGV[6]  duration_us: whole microseconds
-- ARGV[7]  result: the result JSON text ('' when the handler returned None)
-- ARGV[8]  notify: the channel to PUBLISH on
-- ARGV[9]  ttl: result TTL (seconds)
-- ARGV[10] throughput_prefix: minute counter key prefix (minute from TIME)
-- ARGV[11] throughput_keep: seconds a minute's counters are kept
-- ARGV[12] publish: PUBLISH, or SPUBLISH on Redis Cluster
-- ARGV[13] wf: the workflow id
-- ARGV[14] wf_context: the workflow's prefixes (keys.Keys.wf_context, _wf.lua)
--
-- The job's own writes are complete.lua's for one job (members hold no
-- unique key: a workflow refuses unique specs). The result a dependent or
-- the workflow's output needs is copied into wf:{id}:res, which has no TTL
-- until the workflow is final: RESULT_TTL may expire the member's own
-- result hash first.
--
-- Returns: 1 done (or done already by this same lease); 0 refused (stale lease).

-- @include _clock.lua
-- @include _lease.lua
-- @include _index.lua
-- @include _wf.lua

local id, token = ARGV[1], ARGV[2]
if not lease_list(redis.call('HGET', KEYS[2], id), token) then
  return redis.call('HGET', KEYS[6], 'lease') == token and 1 or 0
end
local ttl = ARGV[9]
local now = now_ms()
redis.call('SET', KEYS[5], ARGV[3], 'EX', ttl)
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[6], 'status', 'completed', 'completed_at', ARGV[4],
    'duration_ms', ARGV[5], 'duration_us', ARGV[6], 'result', ARGV[7], 'lease', token)
else
  redis.call('HSET', KEYS[6], 'status', 'completed', 'completed_at', ARGV[4],
    'duration_ms', ARGV[5], 'duration_us', ARGV[6], 'lease', token)
end
redis.call('EXPIRE', KEYS[6], ttl)
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('ZADD', KEYS[4], now, id)
count_attempts(ARGV[10], now, 'completed', 1, ARGV[11])
wf_settle(wf_ctx(ARGV[14]), ARGV[13], id, 'completed', ARGV[7], now)
redis.pcall(ARGV[12], ARGV[8], 'completed') -- best effort, last (complete.lua)
return 1
