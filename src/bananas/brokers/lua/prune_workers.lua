#!lua flags=allow-oom
-- prune_workers: drop registry entries whose last heartbeat is too old
-- (the worker was killed or lost its network), and list the live ones.
--
-- KEYS[1]  workers: hash id -> JSON entry
-- KEYS[2]  seen: sorted set id -> last heartbeat (unix ms, server clock)
-- ARGV[1]  expiry_ms: entries not heard from for longer (by TIME) are removed
--
-- Returns: flat array id, JSON entry, last seen (ms) of the live entries,
-- oldest heartbeat first.

-- @include _clock.lua

local cutoff = now_ms() - tonumber(ARGV[1])
local stale = redis.call('ZRANGE', KEYS[2], '-inf', '(' .. cutoff, 'BYSCORE')
for _, id in ipairs(stale) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
local out = {}
local live = redis.call('ZRANGE', KEYS[2], cutoff, '+inf', 'BYSCORE', 'WITHSCORES')
for i = 1, #live, 2 do
  local entry = redis.call('HGET', KEYS[1], live[i])
  if entry then
    out[#out + 1] = live[i]
    out[#out + 1] = entry
    out[#out + 1] = live[i + 1]
  end
end
return out
