#!lua
-- route_plain: route jobs that SDK clients LPUSHed onto a plain priority list
-- (bananas:queue:{priority}), or the Go scheduler moved to a route's list
-- (bananas:route:{key}:queue:{priority}), to the ready list of their route
-- and job type.
--
-- KEYS[1]  routing: ids a worker BLMOVEd off the plain list and has not
--          routed yet (a crash there loses nothing, the next call routes them)
-- KEYS[2]  plain: the list bananas:queue:{priority} or bananas:route:{key}:queue:{priority}
-- KEYS[3]  types: hash of registered job types
-- KEYS[4]  queues: set of queue members "priority:name"
-- KEYS[5]  dead: sorted set id -> time of death (unix ms)
-- KEYS[6]  dead_info: hash id -> JSON dead info
-- KEYS[7]  keyspace: the keyspace marker "<marker> <created unix ms>[ lost]"
-- KEYS[8]  index: hash of ready lists that may hold jobs (_index.lua)
-- ARGV[1]  priority
-- ARGV[2]  limit: most ids taken off the plain list in this call
-- ARGV[3]  now_iso: ISO 8601, for the failed result of a job that cannot be routed
-- ARGV[4]  ttl: result TTL (seconds)
-- ARGV[5]  job_prefix
-- ARGV[6]  result_prefix
-- ARGV[7]  notify_prefix
-- ARGV[8]  ready_prefix
-- ARGV[9]  marker_prefix
-- ARGV[10] grace_ms: how long a keyspace found lost (no marker yet, or a
--          " lost" one this young) waits for workers to register types again
-- ARGV[11] route: the route of KEYS[2] ('' for a plain list): a record's own
--          routing_key wins, this is the route of records naming none
--
-- A record of a type no worker registered is left for the next call while the
-- keyspace was just found lost (ARGV[10]): after a flush or an empty restart the types come
-- back with the workers' heartbeats, and jobs of live types must not be
-- dead-lettered in between. Otherwise records that cannot be routed (no
-- record, not JSON, no type, a type no worker registered) are dead-lettered
-- with the reason.
--
-- Returns: {routed count, buried count, plain list left non-empty (1/0)}.

-- @include _clock.lua
-- @include _index.lua
-- @include _route.lua

local ctx = {job_prefix = ARGV[5], result_prefix = ARGV[6], notify_prefix = ARGV[7],
  ready_prefix = ARGV[8], marker_prefix = ARGV[9], queues = KEYS[4], index = KEYS[8],
  dead = KEYS[5], dead_info = KEYS[6], types = KEYS[3], now_ms = now_ms(),
  now_iso = ARGV[3], result_ttl = ARGV[4]}
local marker = redis.call('GET', KEYS[7])
local born = marker and tonumber(string.match(marker, '^%S+ (%d+)'))
local lost = marker and string.sub(marker, -5) == ' lost'
ctx.fresh = not born or (lost and ctx.now_ms - born < tonumber(ARGV[10]))
local priority = ARGV[1]
local rk = ARGV[11] ~= '' and ARGV[11] or nil
local routed, buried, deferred = 0, 0, {}
local function take(id)
  local done = route(ctx, id, priority, rk)
  if done == nil then deferred[#deferred + 1] = id
  elseif done then routed = routed + 1 else buried = buried + 1 end
end
local pending = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
-- The routing list holds LPUSH order too (BLMOVE RIGHT LEFT); oldest at the right.
for i = #pending, 1, -1 do take(pending[i]) end
local ids = redis.call('RPOP', KEYS[2], tonumber(ARGV[2]))
if ids then
  for _, id in ipairs(ids) do take(id) end
end
-- Unknown types in a new keyspace wait in the routing list for the next call
-- (oldest still at the right).
for _, id in ipairs(deferred) do redis.call('LPUSH', KEYS[1], id) end
local more = 0
if redis.call('LLEN', KEYS[2]) > 0 then more = 1 end
index_bump(KEYS[8])
return {routed, buried, more}
