-- enqueue: store new job records and make them ready or scheduled, atomically.
--
-- KEYS[1]  queues set (members "priority:name")
-- KEYS[2]  scheduled sorted set (bananas:queue:scheduled)
-- then per distinct queue q (1-based), at 1 + 2*q and 2 + 2*q:
--   ready list key, marker key
-- then per job i (0-based), at 3 + 2*nq + i:
--   job record key
-- ARGV[1]  nq, the number of distinct queues
-- ARGV[1 + q]  queue member "priority:name" of queue q
-- then per job i (0-based), at 2 + nq + 4*i:
--   id, record JSON, due (unix seconds; '' = ready now), queue number q
--
-- Jobs are grouped by queue so that a batch costs one LPUSH, one marker ZADD
-- and one SADD per queue rather than per job; the LPUSH takes the ids in job
-- order, which leaves the list exactly as one LPUSH per job would.
-- A job whose record key already exists is left alone (idempotent enqueue by
-- id: a cron firing or a client retry never creates a second job).
-- Returns: array of 1 (enqueued) / 0 (id already existed), in job order.

local nq = tonumber(ARGV[1])
local first_job_key = 3 + 2 * nq
local njobs = #KEYS - first_job_key + 1
local ready = {}
local used = {}
local out = {}
for i = 0, njobs - 1 do
  local a = 2 + nq + 4 * i
  local id, due = ARGV[a], ARGV[a + 2]
  if redis.call('SET', KEYS[first_job_key + i], ARGV[a + 1], 'NX') then
    local q = tonumber(ARGV[a + 3])
    if due == '' then
      local ids = ready[q]
      if ids == nil then
        ids = {}
        ready[q] = ids
      end
      ids[#ids + 1] = id
    else
      redis.call('ZADD', KEYS[2], due, id)
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
  redis.call('LPUSH', KEYS[1 + 2 * q], unpack(ids))
  redis.call('ZADD', KEYS[2 + 2 * q], 0, '1')
end
return out
