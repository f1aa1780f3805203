-- Shared helpers, spliced into scripts that say `-- @include _route.lua`.
--
-- bury(ctx, id, reason, priority, name): dead-letter `id` with a reason,
--   record its failed result and publish it. Never touches the job record,
--   so a record that does not parse is kept as it was for inspection.
-- route(ctx, id, priority, rk): read the job record, take the job type from its
--   "name" and its route from "routing_key" (the SDKs' field; absent, empty
--   or "default": the default route) and push the id onto
--   ready:{priority}:{name}, or ready:{route}:{priority}:{name} on a named
--   route, with its wake marker. `rk` (the Go scheduler's per-route lists)
--   is the route when the record names none.
--   `priority` nil means "from the record". Records that cannot be routed
--   are buried with the reason. With ctx.types set, a type no worker ever
--   registered is buried as unknown (foreign records only).
--
-- ctx fields: job_prefix, result_prefix, notify_prefix, ready_prefix,
--   marker_prefix, queues (set key), index (hash key, _index.lua: include it
--   first and call index_bump(ctx.index) at the end), dead (zset key), dead_info (hash key),
--   types (hash key or nil), now_ms (server clock, _clock.lua), now_iso,
--   result_ttl.

local function bury(ctx, id, reason, priority, name)
  local info = cjson.encode({reason = reason, error = reason, failed_at = ctx.now_iso,
    priority = priority or '', name = name or '', source = 'broker'})
  redis.call('ZADD', ctx.dead, ctx.now_ms, id)
  redis.call('HSET', ctx.dead_info, id, info)
  local result_key = ctx.result_prefix .. id
  redis.call('DEL', result_key)
  redis.call('HSET', result_key, 'status', 'failed', 'completed_at', ctx.now_iso,
    'duration_ms', '0', 'duration_us', '0', 'error', reason)
  redis.call('EXPIRE', result_key, ctx.result_ttl)
  redis.pcall('PUBLISH', ctx.notify_prefix .. id, 'failed') -- best effort, as in bury.lua
  return false
end

local valid_priority = {high = true, normal = true, low = true}

-- The rule of routes.check_route: letters, digits, '_' and '-', 1..64, not a priority.
local function valid_route(r)
  return type(r) == 'string' and #r >= 1 and #r <= 64 and not string.find(r, '[^%w_%-]')
    and not valid_priority[r]
end

local function route(ctx, id, priority, rk)
  local raw = redis.call('GET', ctx.job_prefix .. id)
  if not raw then
    return bury(ctx, id, 'no job record stored for this id', priority, nil)
  end
  local ok, rec = pcall(cjson.decode, raw)
  if not ok or type(rec) ~= 'table' then
    return bury(ctx, id, 'record is not a JSON object', priority, nil)
  end
  local name = rec['name']
  if type(name) ~= 'string' or name == '' then
    return bury(ctx, id, "record has no job type (field 'name' missing or not a string)",
      priority, nil)
  end
  if priority == nil then
    priority = rec['priority']
    if priority == nil or priority == cjson.null then priority = 'normal' end
  end
  if not valid_priority[priority] then
    return bury(ctx, id, 'unknown priority ' .. tostring(priority) ..
      ' (expected high, normal or low)', nil, name)
  end
  if ctx.types and redis.call('HEXISTS', ctx.types, name) == 0 then
    if ctx.fresh then return nil end -- a new keyspace: workers are registering again
    return bury(ctx, id, "unknown job type '" .. name ..
      "': no worker has registered a handler for it", priority, name)
  end
  local lane = priority
  local r = rec['routing_key']
  if r == nil or r == cjson.null or r == '' then r = rk end
  if r ~= nil and r ~= 'default' then
    if not valid_route(r) then
      return bury(ctx, id, 'invalid routing_key ' .. tostring(r) ..
        " (allowed: letters, digits, '_' and '-', at most 64 characters)", priority, name)
    end
    lane = r .. ':' .. priority
  end
  local member = lane .. ':' .. name
  redis.call('LPUSH', ctx.ready_prefix .. member, id)
  redis.call('ZADD', ctx.marker_prefix .. member, 0, '1')
  redis.call('SADD', ctx.queues, member)
  index_add(ctx.index, member)
  return true
end
