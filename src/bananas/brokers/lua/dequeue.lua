#!lua
-- dequeue: take up to `count` ready jobs, in the order of the lists given,
-- and lease each one to the caller.
--
-- KEYS[1]  active: sorted set id -> lease deadline (unix ms, server clock)
-- KEYS[2]  leases: hash id -> "<token> <ready list the job came from>"
-- KEYS[3]  last: this worker's last dequeue (the token prefix and ids it
--          leased), kept for a lease so a call repeated after a lost reply is
--          answered again instead of leasing more jobs to nobody
-- KEYS[4..] per queue: ready, marker
-- ARGV[1]  count: most jobs to lease
-- ARGV[2]  lease_ms: lease length (ms); the deadline is TIME + lease_ms
-- ARGV[3]  token_prefix: unique per call (worker id + sequence, no spaces);
--          token = prefix .. n. A worker whose call failed sends it again
--          (and redis-py re-sends a call whose connection dropped).
-- ARGV[4]  job_prefix: job record key prefix
-- ARGV[5]  start: how many of the jobs the worker starts at once (its free
--          slots); the others are leased as not started ("~<token>"), marked
--          started by the heartbeat when they start (extend.lua)
--
-- The leases and the record reads of the batch are one ZADD, one HSET and one
-- MGET, not three calls per job. Record keys are built from the ids popped
-- (they cannot be known before the pop).
-- A list left non-empty gets its marker back so another idle worker wakes up.
--
-- Returns: flat array id, record (nil when missing), token per job. For a
-- repeated call: the jobs it leased that are still leased with its tokens.

-- @include _clock.lua
-- @include _bulk.lua
-- @include _lease.lua

local last = redis.call('GET', KEYS[3])
if last then
  local prev = cjson.decode(last)
  if prev[1] == ARGV[3] then -- the same call again: its reply was lost
    local out = {}
    for n = 2, #prev do
      local id, token = prev[n], ARGV[3] .. (n - 1)
      if lease_queue(KEYS[2], id, token) then
        out[#out + 1] = id
        out[#out + 1] = redis.call('GET', ARGV[4] .. id) or false
        out[#out + 1] = token
      end
    end
    return out
  end
end

local count = tonumber(ARGV[1])
local start = tonumber(ARGV[5])
local deadline = nil
local ids, tokens, deadlines, leases, records = {}, {}, {}, {}, {}
for i = 4, #KEYS, 2 do
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
      leases[#leases + 1] = (n > start and '~' or '') .. tokens[n] .. ' ' .. KEYS[i]
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
local call = {ARGV[3]}
for n, id in ipairs(ids) do call[n + 1] = id end
redis.call('SET', KEYS[3], cjson.encode(call), 'PX', ARGV[2])
local out = {}
for n, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = bodies[n]
  out[#out + 1] = tokens[n]
end
return out
