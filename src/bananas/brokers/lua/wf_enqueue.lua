#!lua
-- wf_enqueue: write one chunk of a workflow's steps; the last chunk starts
-- it (docs/workflows.md).
--
-- KEYS[1]  wf: the workflow's hash (state, policy, total, done, output, created_ms)
-- KEYS[2]  steps: hash step -> state
-- KEYS[3]  info: hash step -> static JSON {name, deps, in, shape}
-- KEYS[4]  wait: hash step -> dependencies not final yet
-- KEYS[5]  rec: hash step -> job record of a step not released yet
-- KEYS[6]  queue: hash step -> queue member "lane:type"
-- KEYS[7]  next: hash step -> comma-separated dependents
-- KEYS[8]  res: hash step -> result JSON (only expired here while building)
-- KEYS[9]  workflows: sorted set of running workflows (score unix ms)
-- KEYS[10] counts: hash state -> number of workflows
-- KEYS[11] queues: set of queue members "lane:type"
-- KEYS[12] index: hash of ready lists that may hold jobs (_index.lua)
-- ARGV[1]  id: the workflow id
-- ARGV[2]  policy: fail or continue
-- ARGV[3]  total: the number of steps
-- ARGV[4]  output: the output shape JSON
-- ARGV[5]  start: 1 on the last chunk (the workflow starts), 0 before
-- ARGV[6]  ttl: seconds a workflow left half-written expires after
-- ARGV[7]  job_prefix: the job record keys' prefix
-- ARGV[8]  ready_prefix: the ready lists' prefix
-- ARGV[9]  marker_prefix: the wake markers' prefix
-- ARGV[10..] per step: step, record, member, deps, next, info
--
-- A workflow is written in chunks (a 10,000-step chord is not one script)
-- and stays `building` until its last chunk: nothing of it runs before, and
-- a writer that dies half-way leaves keys that expire after `ttl`. The start
-- makes every step without dependencies ready (as enqueue.lua does) and the
-- workflow `running`, with no TTL until it is final.
--
-- Returns: 1 written; 0 the workflow had already started (a chunk sent again).

-- @include _clock.lua
-- @include _index.lua

local wf = ARGV[1]
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'building' then return 0 end
local now = now_ms()
if not state then
  redis.call('HSET', KEYS[1], 'state', 'building', 'policy', ARGV[2], 'total', ARGV[3],
    'done', 0, 'output', ARGV[4], 'created_ms', now)
end
for a = 10, #ARGV, 6 do
  local s = ARGV[a]
  redis.call('HSET', KEYS[2], s, 'waiting')
  redis.call('HSET', KEYS[3], s, ARGV[a + 5])
  redis.call('HSET', KEYS[5], s, ARGV[a + 1])
  redis.call('HSET', KEYS[6], s, ARGV[a + 2])
  redis.call('HSET', KEYS[4], s, ARGV[a + 3])
  if ARGV[a + 4] ~= '' then redis.call('HSET', KEYS[7], s, ARGV[a + 4]) end
end
if ARGV[5] ~= '1' then
  for k = 1, 8 do redis.call('EXPIRE', KEYS[k], ARGV[6]) end
  return 1
end
for k = 1, 8 do redis.call('PERSIST', KEYS[k]) end
redis.call('HSET', KEYS[1], 'state', 'running')
redis.call('ZADD', KEYS[9], now, wf)
redis.call('HINCRBY', KEYS[10], 'running', 1)
local waits = redis.call('HGETALL', KEYS[4])
local ready = {}
for i = 1, #waits, 2 do
  if tonumber(waits[i + 1]) <= 0 then
    local s = waits[i]
    local member = redis.call('HGET', KEYS[6], s)
    redis.call('SET', ARGV[7] .. s, redis.call('HGET', KEYS[5], s))
    redis.call('HDEL', KEYS[5], s)
    redis.call('HDEL', KEYS[4], s)
    redis.call('HSET', KEYS[2], s, 'queued')
    local ids = ready[member]
    if not ids then
      ids = {}
      ready[member] = ids
    end
    ids[#ids + 1] = s
  end
end
for member, ids in pairs(ready) do
  for i = 1, #ids, 1000 do
    redis.call('LPUSH', ARGV[8] .. member, unpack(ids, i, math.min(i + 999, #ids)))
  end
  redis.call('ZADD', ARGV[9] .. member, 0, '1')
  redis.call('SADD', KEYS[11], member)
  index_add(KEYS[12], member)
end
index_bump(KEYS[12])
return 1
