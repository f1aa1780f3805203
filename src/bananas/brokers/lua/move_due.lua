#!lua
-- move_due: route scheduled jobs whose time has come (delayed enqueues and
-- retry back-offs) to their ready lists. Safe with any number of schedulers:
-- each id is removed from the sorted set and routed in the same script.
--
-- KEYS[1]  scheduled: sorted set bananas:queue:scheduled (score unix seconds)
-- KEYS[2]  queues: set of queue members "priority:name"
-- KEYS[3]  dead: sorted set id -> time of death (unix ms)
-- KEYS[4]  dead_info: hash id -> JSON dead info
-- KEYS[5]  index: hash of ready lists that may hold jobs (_index.lua)
-- KEYS[6]  held: hash id -> digest of the live jobs holding a unique key
-- ARGV[1]  limit: most jobs per call
-- ARGV[2]  now_iso: ISO 8601, for the failed result of a job that cannot be routed
-- ARGV[3]  ttl: result TTL (seconds)
-- ARGV[4]  job_prefix
-- ARGV[5]  result_prefix
-- ARGV[6]  notify_prefix
-- ARGV[7]  ready_prefix
-- ARGV[8]  marker_prefix
-- ARGV[9]  unique_prefix: the unique keys' prefix (_unique.lua)
--
-- "Due" is judged by the server's clock (TIME). A job buried because it
-- cannot be routed (its record gone or broken) frees the unique key it
-- holds (_unique.lua); nothing is looked up when none was buried.
--
-- Returns: {moved count, buried count, more due (1/0)}.

-- @include _clock.lua
-- @include _index.lua
-- @include _route.lua
-- @include _unique.lua

local now = now_ms()
local ctx = {job_prefix = ARGV[4], result_prefix = ARGV[5], notify_prefix = ARGV[6],
  ready_prefix = ARGV[7], marker_prefix = ARGV[8], queues = KEYS[2], index = KEYS[5],
  dead = KEYS[3], dead_info = KEYS[4], now_ms = now, now_iso = ARGV[2],
  result_ttl = ARGV[3]}
local ids = redis.call('ZRANGE', KEYS[1], '-inf', now / 1000, 'BYSCORE', 'LIMIT', 0, ARGV[1])
local moved, buried, dead = 0, 0, {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  if route(ctx, id, nil) then
    moved = moved + 1
  else
    buried = buried + 1
    dead[#dead + 1] = id
  end
end
unique_release(KEYS[6], ARGV[9], dead)
local more = 0
if #ids == tonumber(ARGV[1]) then more = 1 end
index_bump(KEYS[5])
return {moved, buried, more}
