#!lua
-- dequeue: take up to `count` ready jobs, in the order of the lists given,
-- and lease each one to the caller.
--
-- KEYS[1]  active: sorted set id -> lease deadline (unix ms, server clock)
-- KEYS[2]  leases: hash id -> "<token> <ready list the job came from>"
-- KEYS[3..] per queue: ready, marker
-- ARGV[1]  count: most jobs to lease
-- ARGV[2]  lease_ms: lease length (ms); the deadline is TIME + lease_ms
-- ARGV[3]  token_prefix: unique per call (worker id + sequence, no spaces);
--          token = prefix .. n
-- ARGV[4]  job_prefix: job record key prefix
--
-- The leases and the record reads of the batch are one ZADD, one HSET and one
-- MGET, not three calls per job. Record keys are built from the ids popped
-- (they cannot be known before the pop).
-- A list left non-empty gets its marker back so another idle worker wakes up.
--
-- Returns: flat array id, record (nil when missing), token per job.

-- @include _clock.lua
-- @include _bulk.lua

local count = tonumber(ARGV[1])
local deadline = nil
local ids, tokens, deadlines, leases, records = {}, {}, {}, {}, {}
for i = 3, #KEYS, 2 do
  if #ids >= count then break end
  local popped = redis.call('RPOP', KEYS[i], count - #ids)
  if popped then
    deadline = deadline or now_ms() + tonumber(ARGV[2])
    for _, id in ipairs(popped) do
      local n = #ids + 1
      ids[n] = id
      tokens[n] = ARGV[3] .. n
      deadlines[#deadlines + 1] = deadline
      deadlines[#deadlines + 1] = id
      leases[#leases + 1] = id
      leases[#leases + 1] = tokens[n] .. ' ' .. KEYS[i]
      records[n] = ARGV[4] .. id
    end
    if redis.call('LLEN', KEYS[i]) > 0 then
      redis.call('ZADD', KEYS[i + 1], 0, '1')
    end
  end
end
if #ids == 0 then return {} end
bulk('ZADD', KEYS[1], deadlines)
bulk('HSET', KEYS[2], leases)
local bodies = bulk_mget(records)
local out = {}
for n, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = bodies[n]
  out[#out + 1] = tokens[n]
end
return out
