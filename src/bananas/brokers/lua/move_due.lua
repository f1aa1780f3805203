-- move_due: route scheduled jobs whose time has come (delayed enqueues and
-- retry back-offs) to their ready lists. Safe with any number of schedulers:
-- each id is removed from the sorted set and routed in the same script.
--
-- KEYS[1]  scheduled sorted set (bananas:queue:scheduled, score unix seconds)
-- KEYS[2]  queues set
-- KEYS[3]  dead sorted set
-- KEYS[4]  dead info hash
-- ARGV[1]  now (unix seconds)
-- ARGV[2]  max jobs per call
-- ARGV[3]  now (unix ms), ARGV[4] now (ISO 8601), ARGV[5] result TTL (seconds)
-- ARGV[6]  job key prefix, ARGV[7] result key prefix, ARGV[8] notify prefix
-- ARGV[9]  ready list key prefix, ARGV[10] marker key prefix
--
-- Returns: {moved count, buried count, more due (1/0)}.

-- @include _route.lua

local ctx = {job_prefix = ARGV[6], result_prefix = ARGV[7], notify_prefix = ARGV[8],
  ready_prefix = ARGV[9], marker_prefix = ARGV[10], queues = KEYS[2],
  dead = KEYS[3], dead_info = KEYS[4], now_ms = ARGV[3], now_iso = ARGV[4],
  result_ttl = ARGV[5]}
local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])
local moved, buried = 0, 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  if route(ctx, id, nil) then moved = moved + 1 else buried = buried + 1 end
end
local more = 0
if #ids == tonumber(ARGV[2]) then more = 1 end
return {moved, buried, more}
