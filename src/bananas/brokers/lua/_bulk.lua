-- Variadic commands over long argument lists, spliced into scripts that say
-- `-- @include _bulk.lua`. One ZADD/HSET/MGET for a whole batch costs a
-- fraction of one call per job; the chunking keeps `unpack` far below Lua's
-- C-stack limit (8,000 values) whatever the batch size.

local BULK = 4000 -- even, so score/member and field/value pairs never split

-- redis.call(cmd, key, args...) in chunks; nothing when args is empty.
local function bulk(cmd, key, args)
  for i = 1, #args, BULK do
    redis.call(cmd, key, unpack(args, i, math.min(i + BULK - 1, #args)))
  end
end

-- MGET of `keys`, in order, in chunks.
local function bulk_mget(keys)
  local out = {}
  for i = 1, #keys, BULK do
    local got = redis.call('MGET', unpack(keys, i, math.min(i + BULK - 1, #keys)))
    for j = 1, #got do
      out[#out + 1] = got[j]
    end
  end
  return out
end
