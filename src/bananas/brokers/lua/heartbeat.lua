#!lua flags=allow-oom
-- heartbeat: register or refresh a worker / scheduler registry entry, stamped
-- with the server's clock (prune_workers judges silence by the same clock).
--
-- KEYS[1]  workers: hash id -> JSON entry
-- KEYS[2]  seen: sorted set id -> last heartbeat (unix ms)
-- ARGV[1]  id
-- ARGV[2]  entry: JSON registry entry (vocabulary.WorkerInfo)
--
-- Returns: the heartbeat time (unix ms).

-- @include _clock.lua

local now = now_ms()
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
return now
