-- recover: return jobs whose lease expired (their worker died or hung) to the
-- head of their ready list; after `max_stalls` such recoveries, bury the job:
-- it probably kills its worker (OOM, segfault, os._exit). Also trims the
-- recent-completions index (here, not on every ack, to keep acks cheap).
--
-- KEYS[1]  active sorted set
-- KEYS[2]  leases hash (id -> "<token> <ready list>")
-- KEYS[3]  stalls hash
-- KEYS[4]  dead sorted set
-- KEYS[5]  dead info hash
-- KEYS[6]  queues set
-- KEYS[7]  recent completions sorted set
-- ARGV[1]  now (unix ms)
-- ARGV[2]  max stalls
-- ARGV[3]  max jobs to recover in this call
-- ARGV[4]  now (ISO 8601)
-- ARGV[5]  result TTL (seconds)
-- ARGV[6]  job key prefix, ARGV[7] result key prefix, ARGV[8] notify channel prefix
-- ARGV[9]  ready list key prefix, ARGV[10] marker key prefix
-- ARGV[11] how many recent completions to keep
-- ARGV[12] oldest completion kept (unix ms): older ones' records have expired
--
-- Returns: {recovered ids, buried ids}.

-- @include _route.lua

local ctx = {job_prefix = ARGV[6], result_prefix = ARGV[7], notify_prefix = ARGV[8],
  ready_prefix = ARGV[9], marker_prefix = ARGV[10], queues = KEYS[6],
  dead = KEYS[4], dead_info = KEYS[5], now_ms = ARGV[1], now_iso = ARGV[4],
  result_ttl = ARGV[5]}
local max_stalls = tonumber(ARGV[2])
local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
local recovered, buried = {}, {}
for _, id in ipairs(ids) do
  local lease = redis.call('HGET', KEYS[2], id)
  local queue = lease and string.match(lease, '^%S+ (.+)$')
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  local stalls = redis.call('HINCRBY', KEYS[3], id, 1)
  if stalls >= max_stalls then
    redis.call('HDEL', KEYS[3], id)
    bury(ctx, id, 'worker lost while running the job ' .. stalls ..
      ' times (MAX_STALLS=' .. max_stalls .. '): it may be crashing its worker', nil, nil)
    buried[#buried + 1] = id
  elseif queue then
    redis.call('RPUSH', queue, id)
    redis.call('ZADD', ARGV[10] .. string.sub(queue, #ARGV[9] + 1), 0, '1')
    recovered[#recovered + 1] = id
  else
    -- No record of where it came from: route it again from its record.
    route(ctx, id, nil)
    recovered[#recovered + 1] = id
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[7], 0, -1 - tonumber(ARGV[11]))
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. ARGV[12])
return {recovered, buried}
