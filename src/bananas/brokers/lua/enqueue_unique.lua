#!lua
-- enqueue_unique: enqueue.lua for batches holding a unique job
-- (docs/control.md): each such job's lock is taken in the same atomic step
-- that writes it. A batch without one runs enqueue.lua, unchanged.
--
-- KEYS[1]  queues: set of queue members "priority:name"
-- KEYS[2]  scheduled: sorted set bananas:queue:scheduled (score unix seconds)
-- KEYS[3]  index: hash of ready lists that may hold jobs (_index.lua)
-- KEYS[4]  held: hash id -> digest of the live jobs holding a key (_unique.lua)
-- KEYS[5..] per queue: ready, marker
-- KEYS[..] per job: record_key, lock
-- ARGV[1]  nq: the number of distinct queues
-- ARGV[2..] per queue: member
-- ARGV[..] per job: id, record, delay, at, queue_number, digest, ttl_ms
--
-- As enqueue.lua, plus per job: `lock` is the key's string (the unique
-- prefix and `digest`), `ttl_ms` its unique_for; a job of the batch that is
-- not unique has digest '' (its `lock` is its record key, not touched as a
-- lock) and is enqueued exactly as enqueue.lua does. A job whose id already
-- has a record is left alone (0) without touching any lock (an enqueue
-- repeated after a lost reply); else, if another job holds the lock, the
-- job is not written and the reply is that job's id; else the lock is set
-- to the id (PX ttl_ms, server clock) and the job written. Two jobs of one
-- key in one batch: the first is created, the second answered with it.
-- (On Redis Cluster the job's id was chosen in the lock's partition, so
-- the record and the lock share a slot: brokers/redis/unique_place.py.)
--
-- Returns: array, in job order, of 1 (enqueued), 0 (id already existed) or
-- the id of the job that holds the key (a duplicate: nothing written; its
-- record is written by SET NX and deleted again in the same script, which
-- keeps to the commands of the producer's ACL rule, docs/deployment.md).

-- @include _clock.lua
-- @include _index.lua
-- @include _unique_take.lua

local nq = tonumber(ARGV[1])
local first_job_key = 5 + 2 * nq
local njobs = (#KEYS - first_job_key + 1) / 2
local ready = {}
local used = {}
local out = {}
local now = nil -- read once, only when a job is delayed
for i = 0, njobs - 1 do
  local a = 2 + nq + 7 * i
  local k = first_job_key + 2 * i
  local id, delay, at = ARGV[a], ARGV[a + 2], ARGV[a + 3]
  local holder = nil
  if not redis.call('SET', KEYS[k], ARGV[a + 1], 'NX') then
    out[#out + 1] = 0
  else
    if ARGV[a + 5] ~= '' then
      holder = unique_take(KEYS[4], KEYS[k + 1], id, ARGV[a + 5], ARGV[a + 6])
    end
    if holder then
      redis.call('DEL', KEYS[k]) -- not a job after all (unseen: one atomic script)
      out[#out + 1] = holder
    else
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
    end
  end
end
for q in pairs(used) do
  redis.call('SADD', KEYS[1], ARGV[1 + q])
end
for q, ids in pairs(ready) do
  redis.call('LPUSH', KEYS[3 + 2 * q], unpack(ids))
  redis.call('ZADD', KEYS[4 + 2 * q], 0, '1')
  index_add(KEYS[3], ARGV[1 + q])
end
index_bump(KEYS[3])
return out
