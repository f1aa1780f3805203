#!lua
-- enqueue: store new job records and make them ready or scheduled, atomically.
--
-- KEYS[1]  queues: set of queue members "priority:name"
-- KEYS[2]  scheduled: sorted set bananas:queue:scheduled (score unix seconds)
-- KEYS[3]  index: hash of ready lists that may hold jobs (_index.lua)
-- KEYS[4..] per queue: ready, marker
-- KEYS[..] per job: record_key
-- ARGV[1]  nq: the number of distinct queues
-- ARGV[2..] per queue: member
-- ARGV[..] per job: id, record, delay, at, queue_number
--
-- Per queue: its ready list, its wake marker and its member "priority:name".
-- Per job: `delay` is seconds from now on the server's clock and `at` unix
-- seconds ('' for neither; `at` wins); with neither the job is ready now.
-- `queue_number` is the 1-based number of the job's queue in this call.
-- Jobs are grouped by queue so that a batch costs one LPUSH, one marker ZADD
-- and one SADD per queue rather than per job; the LPUSH takes the ids in job
-- order, which leaves the list exactly as one LPUSH per job would.
-- A job whose record key already exists is left alone (idempotent enqueue by
-- id: a cron firing or a client retry never creates a second job).
--
-- Returns: array of 1 (enqueued) / 0 (id already existed), in job order.

-- @include _clock.lua
-- @include _index.lua

local nq = tonumber(ARGV[1])
local first_job_key = 4 + 2 * nq
local njobs = #KEYS - first_job_key + 1
local ready = {}
local used = {}
local out = {}
local now = nil -- read once, only when a job is delayed
for i = 0, njobs - 1 do
  local a = 2 + nq + 5 * i
  local id, delay, at = ARGV[a], ARGV[a + 2], ARGV[a + 3]
  if redis.call('SET', KEYS[first_job_key + i], ARGV[a + 1], 'NX') then
    local q = tonumber(ARGV[a + 4])
    if at ~= '' then
      redis.call('ZADD', KEYS[2], at, id)
    elseif delay ~= '' then
      now = now or now_ms()
      redis.call('ZADD', KEYS[2], now / 1000 + tonumber(delay), id)
    else
      local ids = ready[q]
      if ids == nil then
        ids = {}
        ready[q] = ids
      end
      ids[#ids + 1] = id
    end
    used[q] = true
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
for q in pairs(used) do
  redis.call('SADD', KEYS[1], ARGV[1 + q])
end
for q, ids in pairs(ready) do
  redis.call('LPUSH', KEYS[2 + 2 * q], unpack(ids))
  redis.call('ZADD', KEYS[3 + 2 * q], 0, '1')
  index_add(KEYS[3], ARGV[1 + q])
end
index_bump(KEYS[3])
return out
