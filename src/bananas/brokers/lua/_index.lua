-- The index of ready lists that may hold jobs, spliced into scripts that say
-- `-- @include _index.lua`.
--
-- KEYS "index" is a hash: field "priority:name" -> "1" for every routed
-- ready list a script pushed to and no dequeue has yet found empty, and field
-- "#" -> the index version. A worker sends its dequeue only the lists of its
-- order that are in the index (RedisBroker keeps a copy and refreshes it when
-- the version moves), not every list it serves: with hundreds of job types
-- the 2 keys per list per call cost a third of its drain rate.
--
-- Every script that pushes to a ready list calls index_add (enqueue.lua
-- only when the list was empty: one that held jobs is named already), and
-- bumps the version once at its end (index_bump), so a worker's copy is
-- never missing a list that holds jobs for longer than one dequeue reply. An extra member
-- (a list emptied by something other than dequeue) only costs a key in a
-- call; dequeue drops it when it finds the list empty (its own HDEL, not
-- here: the producer's ACL rule has no HDEL).
-- The version starts from the server's clock in microseconds when the hash
-- is new (after a flush or an empty restart), so a worker's copy from the
-- keyspace before cannot match it by chance: one bump per script call is
-- far fewer than one per microsecond.

local index_changed = false

local function index_add(index, member)
  if redis.call('HSETNX', index, member, '1') == 1 then index_changed = true end
end

local function index_bump(index)
  if not index_changed then return end
  if redis.call('HINCRBY', index, '#', 1) == 1 then
    local t = redis.call('TIME')
    redis.call('HSET', index, '#', t[1] .. string.format('%06d', tonumber(t[2])))
  end
end
