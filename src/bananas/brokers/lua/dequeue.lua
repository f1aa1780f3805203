#!lua
-- dequeue: take up to `count` ready jobs, in the order of the lists given,
-- and lease each one to the caller.
--
-- KEYS[1]  active: sorted set id -> lease deadline (unix ms, server clock)
-- KEYS[2]  leases: hash id -> "<token> <ready list the job came from>"
-- KEYS[3..] per queue: ready
-- KEYS[..] per queue: marker
-- ARGV[1]  count: most jobs to lease
-- ARGV[2]  lease_ms: lease length (ms); the deadline is TIME + lease_ms
-- ARGV[3]  token_prefix: unique per call (worker id + sequence, no spaces);
--          token = prefix .. n
-- ARGV[4]  job_prefix: job record key prefix
--
-- The n ready lists come first and their n markers after them, so one LMPOP
-- (Redis 7) finds the first non-empty list among all those left, in C: a
-- worker with hundreds of job types looks at hundreds of empty lists per
-- fetch, and one redis.call per list cost a third of its drain rate.
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
local n = (#KEYS - 2) / 2
local first, last = 3, 2 + n
local CHUNK = 4000  -- keys per LMPOP: unpack() is bounded by Lua's C stack
while #ids < count and first <= last do
  local upto = math.min(last, first + CHUNK - 1)
  local args = {upto - first + 1}
  for i = first, upto do args[#args + 1] = KEYS[i] end
  args[#args + 1] = 'RIGHT'
  args[#args + 1] = 'COUNT'
  args[#args + 1] = count - #ids
  local got = redis.call('LMPOP', unpack(args))
  if not got then
    first = upto + 1
  else
    local key, popped = got[1], got[2]
    while KEYS[first] ~= key do first = first + 1 end
    deadline = deadline or now_ms() + tonumber(ARGV[2])
    for _, id in ipairs(popped) do
      local m = #ids + 1
      ids[m] = id
      tokens[m] = ARGV[3] .. m
      deadlines[#deadlines + 1] = deadline
      deadlines[#deadlines + 1] = id
      leases[#leases + 1] = id
      leases[#leases + 1] = tokens[m] .. ' ' .. key
      records[m] = ARGV[4] .. id
    end
    if redis.call('LLEN', key) > 0 then
      redis.call('ZADD', KEYS[first + n], 0, '1')
    end
    first = first + 1
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
