-- _wf.lua: a workflow member's final state reaches its workflow in the same
-- script that settles the job (docs/workflows.md). Included by
-- wf_complete.lua, bury.lua, cancelled.lua, cancel.lua, fail_stalled.lua,
-- delete_dead.lua and wf_cancel.lua; needs _index.lua. A script calls it
-- only when the job is a member (its caller read `wf` from the record), so
-- a plain job pays one string comparison.
--
-- The workflow's keys (keys.WF_PARTS) and the ready lists it releases into
-- are built from the prefixes of `wf_context` (keys.Keys.wf_context: one
-- tab-separated ARGV): they are the partition's keys, and every member of a
-- workflow is in its partition (the ids are chosen so on a cluster).

local function wf_split(s, sep)
  local out, start = {}, 1
  while true do
    local i = string.find(s, sep, start, true)
    if not i then
      out[#out + 1] = string.sub(s, start)
      return out
    end
    out[#out + 1] = string.sub(s, start, i - 1)
    start = i + #sep
  end
end

local function wf_ctx(packed)
  local p = wf_split(packed, '\t')
  return {
    wf = p[1], job = p[2], result = p[3], ready = p[4], marker = p[5], queues = p[6],
    index = p[7], active = p[8], scheduled = p[9], cancels = p[10], cancelled = p[11],
    workflows = p[12], counts = p[13], notify = p[14], publish = p[15], ttl = p[16],
    iso = p[17]
  }
end

local WF_PARTS = { 'steps', 'info', 'wait', 'rec', 'queue', 'next', 'res' }

-- A job that never ran (a waiting or queued step of a stopped workflow):
-- cancelled as cancel.lua cancels a queued job (result `failed`,
-- `cancelled` 1), its record kept until it expires.
local function wf_cancel_job(c, id, now)
  local rk = c.result .. id
  redis.call('DEL', rk)
  redis.call('HSET', rk, 'status', 'failed', 'cancelled', '1', 'completed_at', c.iso,
    'duration_ms', '0', 'duration_us', '0', 'error', 'cancelled')
  redis.call('EXPIRE', rk, c.ttl)
  redis.call('EXPIRE', c.job .. id, c.ttl)
  redis.call('ZADD', c.cancelled, now, id)
  redis.pcall(c.publish, c.notify .. id, 'failed')
end

-- The workflow reached a final state: its own result hash (what handles
-- wait on), the counters, and every key of it expires after RESULT_TTL.
local function wf_finish(c, wf, wk, state, now, failed_step, err)
  redis.call('HSET', wk, 'state', state, 'finished_ms', now, 'failed_step', failed_step or '',
    'error', err or '')
  redis.call('ZREM', c.workflows, wf)
  redis.call('HINCRBY', c.counts, 'running', -1)
  redis.call('HINCRBY', c.counts, state, 1)
  local rk = c.result .. wf
  redis.call('DEL', rk)
  local created = tonumber(redis.call('HGET', wk, 'created_ms')) or now
  redis.call('HSET', rk, 'status', state == 'completed' and 'completed' or 'failed',
    'completed_at', c.iso, 'duration_ms', tostring(math.max(0, now - created)),
    'error', err or '', 'workflow', state)
  redis.call('EXPIRE', rk, c.ttl)
  redis.call('EXPIRE', wk, c.ttl)
  for _, part in ipairs(WF_PARTS) do
    redis.call('EXPIRE', wk .. ':' .. part, c.ttl)
  end
  redis.pcall(c.publish, c.notify .. wf, state)
end

-- Stop a running workflow (a failing step, or a cancel): waiting steps and
-- queued or scheduled ones are cancelled now; running ones are asked to
-- stop (cancel.lua's flag: their workers settle them cancelled).
local function wf_stop(c, wf, wk, state, now, failed_step, err)
  local steps = redis.call('HGETALL', wk .. ':steps')
  local stopped = 0
  for i = 1, #steps, 2 do
    local s, st = steps[i], steps[i + 1]
    if st == 'waiting' then
      redis.call('HSET', wk .. ':steps', s, 'cancelled')
      redis.call('HDEL', wk .. ':rec', s)
      redis.call('HDEL', wk .. ':wait', s)
      wf_cancel_job(c, s, now)
      stopped = stopped + 1
    elseif st == 'queued' then
      local member = redis.call('HGET', wk .. ':queue', s)
      if (member and redis.call('LREM', c.ready .. member, 0, s) > 0)
          or redis.call('ZREM', c.scheduled, s) > 0 then
        redis.call('HSET', wk .. ':steps', s, 'cancelled')
        wf_cancel_job(c, s, now)
        stopped = stopped + 1
      elseif redis.call('ZSCORE', c.active, s) then
        redis.call('HSET', c.cancels, s, now)
      end
    end
  end
  if stopped > 0 then redis.call('HINCRBY', wk, 'done', stopped) end
  wf_finish(c, wf, wk, state, now, failed_step, err)
end

-- Make a waiting step ready: its record written, pushed to its ready list.
local function wf_release(c, wk, s)
  local rec = redis.call('HGET', wk .. ':rec', s)
  local member = redis.call('HGET', wk .. ':queue', s)
  if not rec or not member then return end
  redis.call('SET', c.job .. s, rec)
  redis.call('LPUSH', c.ready .. member, s)
  redis.call('ZADD', c.marker .. member, 0, '1')
  redis.call('SADD', c.queues, member)
  index_add(c.index, member)
  redis.call('HDEL', wk .. ':rec', s)
  redis.call('HDEL', wk .. ':wait', s)
  redis.call('HSET', wk .. ':steps', s, 'queued')
end

-- Step `id` of workflow `wf` ended in `state` (completed / failed /
-- cancelled); `value` is its result JSON ('' for None) or its error text.
-- Applied once per step: a step already final is left alone (a settle sent
-- again, a replayed member completing, a dead letter deleted after its bury).
local function wf_settle(c, wf, id, state, value, now)
  local wk = c.wf .. wf
  local wstate = redis.call('HGET', wk, 'state')
  if not wstate then return end -- unknown, or expired after it was final
  local was = redis.call('HGET', wk .. ':steps', id)
  if not was or was == 'completed' or was == 'failed' or was == 'cancelled' then return end
  redis.call('HSET', wk .. ':steps', id, state)
  local done = redis.call('HINCRBY', wk, 'done', 1)
  if wstate ~= 'running' then return end -- stopped before: nothing more to release
  if state == 'completed' then
    redis.call('HSET', wk .. ':res', id, value == '' and 'null' or value)
  elseif redis.call('HGET', wk, 'policy') == 'continue' then
    redis.call('HSET', wk .. ':res', id, cjson.encode({ error = value, step = id, state = state }))
  else
    wf_stop(c, wf, wk, 'failed', now, id, value)
    index_bump(c.index)
    return
  end
  local nexts = redis.call('HGET', wk .. ':next', id)
  if nexts then
    for _, s in ipairs(wf_split(nexts, ',')) do
      if redis.call('HINCRBY', wk .. ':wait', s, -1) <= 0 then wf_release(c, wk, s) end
    end
  end
  index_bump(c.index)
  if done >= tonumber(redis.call('HGET', wk, 'total')) then
    wf_finish(c, wf, wk, 'completed', now)
  end
end
