#!lua
-- claim: take or keep a Redis Cluster partition's upkeep (recovery, due
-- jobs) for one scheduler, so concurrent schedulers share the partitions
-- and none runs twice per round (partitioned.py).
--
-- KEYS[1]  claim: the partition's claim key for one kind of upkeep
-- ARGV[1]  owner: the calling scheduler's id (unique per process)
-- ARGV[2]  ms: how long the claim holds without the owner coming back
--
-- The owner keeps its claim by coming back within `ms`; a scheduler that
-- died loses it after `ms` and another takes the partition over. Refused
-- at maxmemory like the upkeep it guards (recover.lua, move_due.lua).
--
-- Returns: 1 when the caller holds the claim now, else 0.

local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
