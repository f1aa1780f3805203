-- prune_workers: drop registry entries whose last heartbeat is too old
-- (the worker was killed or lost its network), and list the live ones.
--
-- KEYS[1]  workers hash (id -> JSON entry)
-- KEYS[2]  workers seen sorted set (id -> last heartbeat, unix ms)
-- ARGV[1]  cutoff (unix ms): entries last seen before it are removed
--
-- Returns: flat array id, JSON entry, last seen (ms) of the live entries.

local stale = redis.call('ZRANGE', KEYS[2], '-inf', '(' .. ARGV[1], 'BYSCORE')
for _, id in ipairs(stale) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
local out = {}
local live = redis.call('ZRANGE', KEYS[2], ARGV[1], '+inf', 'BYSCORE', 'WITHSCORES')
for i = 1, #live, 2 do
  local entry = redis.call('HGET', KEYS[1], live[i])
  if entry then
    out[#out + 1] = live[i]
    out[#out + 1] = entry
    out[#out + 1] = live[i + 1]
  end
end
return out
