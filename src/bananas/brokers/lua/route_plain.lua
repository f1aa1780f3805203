#!lua
-- route_plain: route jobs that SDK clients LPUSHed onto a plain priority list
-- (bananas:queue:{priority}) to the ready list of their job type.
--
-- KEYS[1]  routing: ids a worker BLMOVEd off the plain list and has not
--          routed yet (a crash there loses nothing, the next call routes them)
-- KEYS[2]  plain: the list bananas:queue:{priority}
-- KEYS[3]  types: hash of registered job types
-- KEYS[4]  queues: set of queue members "priority:name"
-- KEYS[5]  dead: sorted set id -> time of death (unix ms)
-- KEYS[6]  dead_info: hash id -> JSON dead info
-- ARGV[1]  priority
-- ARGV[2]  limit: most ids taken off the plain list in this call
-- ARGV[3]  now_iso: ISO 8601, for the failed result of a job that cannot be routed
-- ARGV[4]  ttl: result TTL (seconds)
-- ARGV[5]  job_prefix
-- ARGV[6]  result_prefix
-- ARGV[7]  notify_prefix
-- ARGV[8]  ready_prefix
-- ARGV[9]  marker_prefix
--
-- Records that cannot be routed (no record, not JSON, no type, a type no
-- worker ever registered) are dead-lettered with the reason.
--
-- Returns: {routed count, buried count, plain list left non-empty (1/0)}.

-- @include _clock.lua
-- @include _route.lua

local ctx = {job_prefix = ARGV[5], result_prefix = ARGV[6], notify_prefix = ARGV[7],
  ready_prefix = ARGV[8], marker_prefix = ARGV[9], queues = KEYS[4],
  dead = KEYS[5], dead_info = KEYS[6], types = KEYS[3], now_ms = now_ms(),
  now_iso = ARGV[3], result_ttl = ARGV[4]}
local priority = ARGV[1]
local routed, buried = 0, 0
local pending = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
-- The routing list holds LPUSH order too (BLMOVE RIGHT LEFT); oldest at the right.
for i = #pending, 1, -1 do
  if route(ctx, pending[i], priority) then routed = routed + 1 else buried = buried + 1 end
end
local ids = redis.call('RPOP', KEYS[2], tonumber(ARGV[2]))
if ids then
  for _, id in ipairs(ids) do
    if route(ctx, id, priority) then routed = routed + 1 else buried = buried + 1 end
  end
end
local more = 0
if redis.call('LLEN', KEYS[2]) > 0 then more = 1 end
return {routed, buried, more}
