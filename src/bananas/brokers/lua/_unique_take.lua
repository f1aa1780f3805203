-- Taking a unique key (docs/control.md), spliced into scripts that say
-- `-- @include _unique_take.lua` (enqueue_unique, replay); freeing one is
-- _unique.lua.
--
-- unique_take(held, lock, id, digest, ttl_ms): take the key `lock` for
--   `id` (SET NX PX: the TTL runs on the server's clock) and note it in the
--   `held` hash; returns nil (taken, or already held by `id`) or the id of
--   the job that holds it (nothing changed).

local function unique_take(held, lock, id, digest, ttl_ms)
  local holder = redis.call('SET', lock, id, 'NX', 'PX', ttl_ms, 'GET')
  if holder and holder ~= id then return holder end
  redis.call('HSET', held, id, digest)
  return nil
end
