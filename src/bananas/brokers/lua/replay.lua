#!lua
-- replay: take a job out of the dead-letter queue and make it ready again,
-- with a fresh retry budget.
--
-- KEYS[1]  dead: sorted set id -> time of death
-- KEYS[2]  dead_info: hash id -> JSON dead info
-- KEYS[3]  stalls: hash id -> lost-lease count
-- KEYS[4]  record_key: the job record key
-- KEYS[5]  result_key: the result hash key
-- KEYS[6]  ready: the ready list of its queue
-- KEYS[7]  marker: that list's wake marker
-- KEYS[8]  queues: set of queue members "priority:name"
-- KEYS[9]  index: hash of ready lists that may hold jobs (_index.lua)
-- KEYS[10] lock: the unique key's string of a unique job (any key of the
--          partition otherwise: it is then not touched)
-- KEYS[11] held: hash id -> digest of the live jobs holding a unique key
-- ARGV[1]  id
-- ARGV[2]  record: reset record JSON (attempts 0, status pending, no error)
-- ARGV[3]  member: queue member "priority:name"
-- ARGV[4]  digest: the unique key's digest from the record ('' for none)
-- ARGV[5]  ttl_ms: its unique_for, from now (server clock)
--
-- A unique job takes its key again (_unique.lua); if a newer job holds it
-- the replay is refused and the job stays a dead letter.
--
-- Returns: 1 replayed; 0 not in the dead-letter queue; or the id of the
-- job that holds its unique key (a conflict: nothing changed).

-- @include _index.lua
-- @include _unique_take.lua

local id = ARGV[1]
if not redis.call('ZSCORE', KEYS[1], id) then return 0 end
if ARGV[4] ~= '' then
  local holder = unique_take(KEYS[11], KEYS[10], id, ARGV[4], ARGV[5])
  if holder then return holder end
end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('SET', KEYS[4], ARGV[2])
redis.call('DEL', KEYS[5])
redis.call('LPUSH', KEYS[6], id)
redis.call('ZADD', KEYS[7], 0, '1')
redis.call('SADD', KEYS[8], ARGV[3])
index_add(KEYS[9], ARGV[3])
index_bump(KEYS[9])
return 1
