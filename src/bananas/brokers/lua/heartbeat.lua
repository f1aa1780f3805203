#!lua flags=allow-oom
-- heartbeat: register or refresh a worker / scheduler registry entry, stamped
-- with the server's clock (prune_workers judges silence by the same clock).
--
-- KEYS[1]  workers: hash id -> JSON entry
-- KEYS[2]  seen: sorted set id -> last heartbeat (unix ms)
-- KEYS[3]  types: hash job type -> unix ms last registered (SDK routing reads it)
-- KEYS[4]  keyspace: the keyspace marker "<marker> <created unix ms>[ lost]"
-- ARGV[1]  id
-- ARGV[2]  entry: JSON registry entry (vocabulary.WorkerInfo)
-- ARGV[3]  marker: a fresh marker, stored if the keyspace has none
-- ARGV[4]  knew: '1' if the caller saw a marker before (then a missing one
--          means the keyspace was lost: the new marker says " lost")
-- ARGV[5..] per job_type: name
--
-- The job types are registered again on every heartbeat, so a keyspace that
-- came back empty (a restart without persistence, a flush) has them again
-- within one heartbeat. The marker tells the worker whether the keyspace it
-- heartbeats into is still the one it knew.
--
-- Returns: {heartbeat time (unix ms), the keyspace marker now stored}.

-- @include _clock.lua
-- @include _bulk.lua

local now = now_ms()
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
if #ARGV >= 5 then
  local fields = {}
  for i = 5, #ARGV do
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = now
  end
  bulk('HSET', KEYS[3], fields)
end
local marker = redis.call('GET', KEYS[4])
if not marker then
  marker = ARGV[3] .. ' ' .. now
  if ARGV[4] == '1' then marker = marker .. ' lost' end
  redis.call('SET', KEYS[4], marker)
end
return {now, marker}
