#!lua
-- complete: acknowledge jobs that ran to completion and store their results.
-- One call settles a batch: the acks of one event-loop turn of a worker.
--
-- KEYS[1]  active: sorted set of leases
-- KEYS[2]  leases: hash id -> "<token> <ready list>"
-- KEYS[3]  stalls: hash id -> lost-lease count
-- KEYS[4]  completed: recent completions sorted set (trimmed by the recoverer)
-- KEYS[5..] per job: record_key, result_key
-- ARGV[1]  ttl: result TTL (seconds)
-- ARGV[2]  throughput_prefix: minute counter key prefix (minute from TIME)
-- ARGV[3]  throughput_keep: seconds a minute's counters are kept
-- ARGV[4]  publish: PUBLISH, or SPUBLISH on Redis Cluster (a sharded channel
--          stays on the shard of its slot; a plain PUBLISH is sent to every
--          node of a cluster)
-- ARGV[5..] per job: id, token, record, completed_at, duration_ms, duration_us, result,
--           notify
--
-- Per job: its updated record JSON (status completed), completed_at (ISO
-- 8601), duration_ms (whole milliseconds: the SDKs parse it as an integer),
-- duration_us (whole microseconds, Bananas' own), the result JSON text (''
-- when the handler returned None) and the channel to PUBLISH on.
-- No DEL of the result first: only bury writes an `error` field, and only
-- replay (which deletes the result) can bring a buried job back.
--
-- The result hash keeps the token of the ack that wrote it (`lease`): an ack
-- sent again because its reply was lost (or twice in one batch) finds it and
-- is answered 1, applied once.
--
-- Returns: per job, 1 done (or done already by this same lease); 0 refused
-- because the caller's lease is gone (stale ack: the job was recovered and
-- re-issued, so the new holder completes it); or the text "error: <reason>"
-- when writing that job's record or result failed. The shared structures
-- (active, leases, stalls, completions, throughput) take one variadic command
-- per batch.
-- The PUBLISH is best effort (pcall), and last: a user without channel
-- permission (Redis 7's default for a new ACL user) cannot make it fail the
-- script after the record and result were written (a failing script is not
-- rolled back). Waiters also poll the result; workers refuse to start
-- without the permission (brokers/redis/acl.py).

-- @include _clock.lua
-- @include _lease.lua
-- @include _bulk.lua

local ttl = ARGV[1]
local njobs = (#KEYS - 4) / 2
local ids = {}
for i = 0, njobs - 1 do
  ids[i + 1] = ARGV[5 + 8 * i]
end
local held = redis.call('HMGET', KEYS[2], unpack(ids))

-- The error text of a redis.pcall reply, or nil.
local function failed(reply)
  return type(reply) == 'table' and reply.err or nil
end

local now = now_ms()
local out, done, scored, seen = {}, {}, {}, {}
for i = 0, njobs - 1 do
  local a = 5 + 8 * i
  local id = ARGV[a]
  if not seen[id] and lease_list(held[i + 1], ARGV[a + 1]) then
    seen[id] = true
    local k = 5 + 2 * i
    -- pcall: one job's bad key (say, a user id colliding with a foreign key)
    -- fails that job alone, not the batch it shares a call with.
    local err = failed(redis.pcall('SET', KEYS[k], ARGV[a + 2], 'EX', ttl))
    if not err then
      local stored
      if ARGV[a + 6] ~= '' then
        stored = redis.pcall('HSET', KEYS[k + 1], 'status', 'completed',
          'completed_at', ARGV[a + 3], 'duration_ms', ARGV[a + 4], 'duration_us', ARGV[a + 5],
          'result', ARGV[a + 6], 'lease', ARGV[a + 1])
      else
        stored = redis.pcall('HSET', KEYS[k + 1], 'status', 'completed',
          'completed_at', ARGV[a + 3], 'duration_ms', ARGV[a + 4], 'duration_us', ARGV[a + 5],
          'lease', ARGV[a + 1])
      end
      err = failed(stored) or failed(redis.pcall('EXPIRE', KEYS[k + 1], ttl))
    end
    if err then
      out[i + 1] = 'error: ' .. err -- the lease stays: the job comes back by recovery
    else
      redis.pcall(ARGV[4], ARGV[a + 7], 'completed') -- best effort: see below
      done[#done + 1] = id
      scored[#scored + 1] = now
      scored[#scored + 1] = id
      out[i + 1] = 1
    end
  elseif redis.call('HGET', KEYS[6 + 2 * i], 'lease') == ARGV[a + 1] then
    out[i + 1] = 1 -- this lease's own ack, applied before (its reply was lost) or just now
  else
    out[i + 1] = 0
  end
end
if #done > 0 then
  bulk('ZREM', KEYS[1], done)
  bulk('HDEL', KEYS[2], done)
  bulk('HDEL', KEYS[3], done)
  bulk('ZADD', KEYS[4], scored)
  count_attempts(ARGV[2], now, 'completed', #done, ARGV[3])
end
return out
