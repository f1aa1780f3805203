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
-- A push onto a list that already held jobs skips the SADD and the index's
-- HSETNX (two of the five commands of a one-job call): every script that
-- makes a ready list non-empty names it in both (SADD here, in _route.lua
-- and replay.lua; requeue/recover put a job back on the list it came from),
-- the queue set never loses a member, and the index loses one only when a
-- dequeue finds the list empty (_index.lua). A list filled by a writer that
-- keeps no index (a Bananas before it) is found by the workers' full
-- dequeue once a second, as before. The wake marker is set on every push:
-- a wake-up may have taken it while the list held jobs (dequeue.lua pops
-- the first list of its order, not the one whose marker woke it).
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
for q, ids in pairs(ready) do
  -- More than these ids now: the list held jobs before, so a push already
  -- named it in the queue set and the index (see above), and it stays named.
  if redis.call('LPUSH', KEYS[2 + 2 * q], unpack(ids)) == #ids then
    redis.call('SADD', KEYS[1], ARGV[1 + q])
    index_add(KEYS[3], ARGV[1 + q])
  end
  redis.call('ZADD', KEYS[3 + 2 * q], 0, '1')
  used[q] = nil
end
for q in pairs(used) do -- queues of delayed jobs only
  redis.call('SADD', KEYS[1], ARGV[1 + q])
end
index_bump(KEYS[3])
return out
