#!lua
-- dequeue: take up to `count` ready jobs, in the order of the lists given,
-- and lease each one to the caller.
--
-- KEYS[1]  active: sorted set id -> lease deadline (unix ms, server clock)
-- KEYS[2]  leases: hash id -> "<token> <ready list the job came from>"
-- KEYS[3]  last: this worker's last dequeue ("<token prefix> <JSON array of
--          the ids it leased>"), kept for a lease so a call repeated after a
--          lost reply is answered again instead of leasing more jobs to nobody
-- KEYS[4]  index: hash of ready lists that may hold jobs (_index.lua)
-- KEYS[5..] per queue: ready
-- KEYS[..] per queue: marker
-- ARGV[1]  count: most jobs to lease
-- ARGV[2]  lease_ms: lease length (ms); the deadline is TIME + lease_ms
-- ARGV[3]  token_prefix: unique per call (worker id + sequence, no spaces);
--          token = prefix .. n. A worker whose call failed sends it again
--          (and redis-py re-sends a call whose connection dropped).
-- ARGV[4]  job_prefix: job record key prefix
-- ARGV[5]  start: how many of the jobs the worker starts at once (its free
--          slots); the others are leased as not started ("~<token>"), marked
--          started by the heartbeat when they start (extend.lua)
-- ARGV[6]  version: the index version the caller's copy is of ('' for none)
-- ARGV[7]  index_limit: most index members to return
-- ARGV[8]  ready_prefix: ready list key prefix (a list's index member is
--          its key without it)
--
-- The caller sends only the lists of its order that its copy of the index
-- names (all of them while it has none, and once a second, which finds
-- lists filled without the index): see _index.lua. A list popped empty
-- leaves the index; so do the lists found empty on the way when the call
-- names at most PRUNE lists (a caller sending its whole order would pay one
-- HDEL per empty list on every call).
-- The n ready lists come first and their n markers after them, so one LMPOP
-- (Redis 7) finds the first non-empty list among all those left, in C.
-- The leases and the record reads of the batch are one ZADD, one HSET and one
-- MGET, not three calls per job. Record keys are built from the ids popped
-- (they cannot be known before the pop).
-- A list left non-empty gets its marker back so another idle worker wakes up.
--
-- Returns: {version, index, then id, record (nil when missing), token per
-- job}. version: the index version now ('' when there is none); index: nil
-- when the version is the caller's, else the members (an array), or 'many'
-- when there are more than index_limit. For a repeated call: the jobs it
-- leased that are still leased with its tokens.

-- @include _clock.lua
-- @include _bulk.lua
-- @include _lease.lua
-- @include _index.lua

local PRUNE = 32

local function index_remove(index, member)
  if redis.call('HDEL', index, member) == 1 then index_changed = true end
end

-- {version, index} as the caller's copy needs it (see Returns).
local function index_reply()
  local version = redis.call('HGET', KEYS[4], '#') or ''
  if version == ARGV[6] then return {version, false} end
  if redis.call('HLEN', KEYS[4]) - 1 > tonumber(ARGV[7]) then return {version, 'many'} end
  local members = {}
  for _, field in ipairs(redis.call('HKEYS', KEYS[4])) do
    if field ~= '#' then members[#members + 1] = field end
  end
  return {version, members}
end

-- `last` is "<token prefix> <JSON array of the ids>": the prefix is compared
-- before anything is decoded, so the usual call (a new prefix) pays one GET.
local last = redis.call('GET', KEYS[3])
if last and string.sub(last, 1, #ARGV[3] + 1) == ARGV[3] .. ' ' then
  -- the same call again: its reply was lost
  local prev = cjson.decode(string.sub(last, #ARGV[3] + 2))
  local out = index_reply()
  for n, id in ipairs(prev) do
    local token = ARGV[3] .. n
    if lease_queue(KEYS[2], id, token) then
      out[#out + 1] = id
      out[#out + 1] = redis.call('GET', ARGV[4] .. id) or false
      out[#out + 1] = token
    end
  end
  return out
end

local count = tonumber(ARGV[1])
local start = tonumber(ARGV[5])
local deadline = nil
local ids, tokens, deadlines, leases, records = {}, {}, {}, {}, {}
local n = (#KEYS - 4) / 2
local first, final = 5, 4 + n
local ready_prefix_len = #ARGV[8]
local prune = n <= PRUNE
local function drop(from, to) -- KEYS[from..to] were found empty
  if not prune then return end
  for i = from, to do index_remove(KEYS[4], string.sub(KEYS[i], ready_prefix_len + 1)) end
end
local CHUNK = 4000  -- keys per LMPOP: unpack() is bounded by Lua's C stack
while #ids < count and first <= final do
  local upto = math.min(final, first + CHUNK - 1)
  local args = {upto - first + 1}
  for i = first, upto do args[#args + 1] = KEYS[i] end
  args[#args + 1] = 'RIGHT'
  args[#args + 1] = 'COUNT'
  args[#args + 1] = count - #ids
  local got = redis.call('LMPOP', unpack(args))
  if not got then
    drop(first, upto)
    first = upto + 1
  else
    local key, popped = got[1], got[2]
    local skipped = first
    while KEYS[first] ~= key do first = first + 1 end
    drop(skipped, first - 1)
    deadline = deadline or now_ms() + tonumber(ARGV[2])
    for _, id in ipairs(popped) do
      local m = #ids + 1
      ids[m] = id
      tokens[m] = ARGV[3] .. m
      deadlines[#deadlines + 1] = deadline
      deadlines[#deadlines + 1] = id
      leases[#leases + 1] = id
      leases[#leases + 1] = (m > start and '~' or '') .. tokens[m] .. ' ' .. key
      records[m] = ARGV[4] .. id
    end
    if redis.call('LLEN', key) > 0 then
      redis.call('ZADD', KEYS[first + n], 0, '1')
      -- A list filled by a writer that does not keep the index (a Bananas
      -- before it, during a rolling upgrade) is named from now on.
      index_add(KEYS[4], string.sub(key, ready_prefix_len + 1))
    else
      index_remove(KEYS[4], string.sub(key, ready_prefix_len + 1))
    end
    first = first + 1
  end
end
index_bump(KEYS[4])
if #ids == 0 then return index_reply() end
bulk('ZADD', KEYS[1], deadlines)
bulk('HSET', KEYS[2], leases)
local bodies = bulk_mget(records)
redis.call('SET', KEYS[3], ARGV[3] .. ' ' .. cjson.encode(ids), 'PX', ARGV[2])
local out = index_reply()
for n, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = bodies[n]
  out[#out + 1] = tokens[n]
end
return out
