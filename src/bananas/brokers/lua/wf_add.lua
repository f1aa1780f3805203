#!lua
-- wf_add: add one step to a running workflow, after steps already in it
-- (`fn.enqueue(_depends_on=[...])`, docs/workflows.md).
--
-- KEYS[1]  wf: the workflow's hash
-- KEYS[2]  steps: hash step -> state
-- KEYS[3]  info: hash step -> static JSON
-- KEYS[4]  wait: hash step -> dependencies not final yet
-- KEYS[5]  rec: hash step -> job record of a step not released yet
-- KEYS[6]  queue: hash step -> queue member "lane:type"
-- KEYS[7]  next: hash step -> comma-separated dependents
-- KEYS[8]  queues: set of queue members "lane:type"
-- KEYS[9]  index: hash of ready lists that may hold jobs (_index.lua)
-- ARGV[1]  id: the workflow id
-- ARGV[2]  step: the new step's id (in the workflow's partition)
-- ARGV[3]  record: its job record (with `wf`)
-- ARGV[4]  member: its queue member "lane:type"
-- ARGV[5]  info_json: its static JSON {name, deps, in, shape, seq}
-- ARGV[6]  job_prefix: the job record keys' prefix
-- ARGV[7]  ready_prefix: the ready lists' prefix
-- ARGV[8]  marker_prefix: the wake markers' prefix
-- ARGV[9..] per dep: dep
--
-- The step waits for the dependencies not final yet; when all are final
-- already (a `continue` workflow keeps running past a failed one) it is
-- made ready here. A workflow that is final takes no new step: its answer
-- is its state, and the caller says so.
--
-- Returns: 'added' (waiting), 'released' (ready now), the workflow's final
-- state, 'building', 'unknown', or 'no_step' (a dependency not in it).

-- @include _clock.lua
-- @include _index.lua

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'unknown' end
if state ~= 'running' then return state end
for a = 9, #ARGV do
  if not redis.call('HGET', KEYS[2], ARGV[a]) then return 'no_step' end
end
local step = ARGV[2]
if redis.call('HEXISTS', KEYS[2], step) == 1 then return 'added' end -- sent again
redis.call('HSET', KEYS[2], step, 'waiting')
redis.call('HSET', KEYS[3], step, ARGV[5])
redis.call('HSET', KEYS[5], step, ARGV[3])
redis.call('HSET', KEYS[6], step, ARGV[4])
redis.call('HINCRBY', KEYS[1], 'total', 1)
local open = 0
for a = 9, #ARGV do
  local dep = ARGV[a]
  local st = redis.call('HGET', KEYS[2], dep)
  if st ~= 'completed' and st ~= 'failed' and st ~= 'cancelled' then
    open = open + 1
    local cur = redis.call('HGET', KEYS[7], dep)
    redis.call('HSET', KEYS[7], dep, cur and (cur .. ',' .. step) or step)
  end
end
if open > 0 then
  redis.call('HSET', KEYS[4], step, open)
  return 'added'
end
-- Released as _wf.lua's wf_release does (inlined: a producer's ACL rule
-- then needs none of the workflow-stopping commands).
local member = ARGV[4]
redis.call('SET', ARGV[6] .. step, ARGV[3])
redis.call('LPUSH', ARGV[7] .. member, step)
redis.call('ZADD', ARGV[8] .. member, 0, '1')
redis.call('SADD', KEYS[8], member)
index_add(KEYS[9], member)
redis.call('HDEL', KEYS[5], step)
redis.call('HSET', KEYS[2], step, 'queued')
index_bump(KEYS[9])
return 'released'
