#!lua
-- recover: return jobs whose lease expired (their worker died or hung) to the
-- head of their ready list; after `max_stalls` such recoveries, bury the job:
-- it probably kills its worker (OOM, segfault, os._exit). Also trims the
-- recent-completions index (here, not on every ack, to keep acks cheap).
--
-- KEYS[1]  active: sorted set id -> lease deadline (unix ms)
-- KEYS[2]  leases: hash id -> "<token> <ready list>"
-- KEYS[3]  stalls: hash id -> lost-lease count
-- KEYS[4]  dead: sorted set id -> time of death (unix ms)
-- KEYS[5]  dead_info: hash id -> JSON dead info
-- KEYS[6]  queues: set of queue members "priority:name"
-- KEYS[7]  completed: recent completions sorted set
-- KEYS[8]  index: hash of ready lists that may hold jobs (_index.lua)
-- KEYS[9]  held: hash id -> digest of the live jobs holding a unique key
-- ARGV[1]  max_stalls
-- ARGV[2]  limit: most jobs to recover in this call
-- ARGV[3]  now_iso: ISO 8601, for the failed result of a buried job
-- ARGV[4]  ttl: result TTL (seconds)
-- ARGV[5]  job_prefix
-- ARGV[6]  result_prefix
-- ARGV[7]  notify_prefix
-- ARGV[8]  ready_prefix
-- ARGV[9]  marker_prefix
-- ARGV[10] keep_completed: how many recent completions to keep
-- ARGV[11] ttl_ms: completions older than this (ms) have lost their records
-- ARGV[12] unique_prefix: the unique keys' prefix (_unique.lua)
-- ARGV[13] wf_context: the workflow prefixes (keys.Keys.wf_context, _wf.lua)
--
-- A stall is charged only to a job that started: a lease still marked not
-- started ("~<token>", a prefetched job its worker never ran) goes back
-- uncharged. Leases expire by the server's clock (TIME). A buried job's dead info names
-- its type and priority, taken from the ready list its lease came from; its
-- record is left for the caller to mark failed (cjson would re-encode the
-- payload: big integers, empty arrays), see RedisBroker.recover_expired.
-- Every job buried here (for stalling, or a record that cannot be routed)
-- frees the unique key it holds (_unique.lua).
-- A workflow member buried for stalling settles its step as failed here, in
-- the same script (_wf.lua), so an upkeep killed before fail_stalled.lua
-- cannot leave its workflow waiting on a dead step; fail_stalled then finds
-- the step final and changes nothing more. The record is decoded only when
-- it names a workflow (a plain job pays one substring search).
--
-- Returns: {recovered ids, buried: flat id, time of death (ms), record
-- ('' when missing), reason}.

-- @include _clock.lua
-- @include _index.lua
-- @include _route.lua
-- @include _unique.lua
-- @include _wf.lua

local now = now_ms()
local ctx = {job_prefix = ARGV[5], result_prefix = ARGV[6], notify_prefix = ARGV[7],
  ready_prefix = ARGV[8], marker_prefix = ARGV[9], queues = KEYS[6], index = KEYS[8],
  dead = KEYS[4], dead_info = KEYS[5], now_ms = now, now_iso = ARGV[3],
  result_ttl = ARGV[4]}
local max_stalls = tonumber(ARGV[1])
local wf_ctx_now = nil
local ids = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, ARGV[2])
local recovered, buried, finished = {}, {}, {}
for _, id in ipairs(ids) do
  local lease = redis.call('HGET', KEYS[2], id)
  local queue = lease and string.match(lease, '^%S+ (.+)$')
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  local started = not lease or string.sub(lease, 1, 1) ~= '~'
  local stalls = started and redis.call('HINCRBY', KEYS[3], id, 1) or 0
  if started and stalls >= max_stalls then
    redis.call('HDEL', KEYS[3], id)
    local priority, name = nil, nil
    if queue then
      local member = string.sub(queue, #ARGV[8] + 1)
      priority, name = string.match(member, '^(%w+):(.*)$')
      if not valid_priority[priority] then -- a named route: route:priority:name
        priority, name = string.match(member, '^[%w_%-]+:(%w+):(.*)$')
      end
    end
    local reason = 'worker lost while running the job ' .. stalls ..
      ' times (MAX_STALLS=' .. max_stalls .. '): it may be crashing its worker'
    bury(ctx, id, reason, priority, name)
    finished[#finished + 1] = id
    local record = redis.call('GET', ARGV[5] .. id) or ''
    if string.find(record, '"wf"', 1, true) then
      local ok, fields = pcall(cjson.decode, record)
      if ok and type(fields) == 'table' and type(fields.wf) == 'string' then
        wf_ctx_now = wf_ctx_now or wf_ctx(ARGV[13])
        wf_settle(wf_ctx_now, fields.wf, id, 'failed', reason, now)
      end
    end
    buried[#buried + 1] = id
    buried[#buried + 1] = now
    buried[#buried + 1] = record
    buried[#buried + 1] = reason
  elseif queue then
    redis.call('RPUSH', queue, id)
    local member = string.sub(queue, #ARGV[8] + 1)
    redis.call('ZADD', ARGV[9] .. member, 0, '1')
    index_add(KEYS[8], member)
    recovered[#recovered + 1] = id
  else
    -- No record of where it came from: route it again from its record.
    if not route(ctx, id, nil) then finished[#finished + 1] = id end
    recovered[#recovered + 1] = id
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[7], 0, -1 - tonumber(ARGV[10]))
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. (now - tonumber(ARGV[11])))
index_bump(KEYS[8])
unique_release(KEYS[9], ARGV[12], finished)
return {recovered, buried}
