-- Unique jobs (docs/control.md), spliced into scripts that say
-- `-- @include _unique.lua`.
--
-- A unique job holds the string `<unique prefix><digest>` = its id, with a
-- TTL of its unique_for (PX, the server's clock), and an entry id -> digest
-- in the partition's `unique-held` hash while it is live. Every transition
-- that makes a job final calls unique_release with the ids it finished:
-- complete, bury, recover (burying after MAX_STALLS), delete_dead, and
-- cancel (the cancel script includes this file and calls it on the ids it
-- cancels: that is the hook for "cancelled").
--
-- unique_release(held, prefix, ids): free the keys `ids` hold. One EXISTS
--   when no job of the partition holds a key (the cost for everyone who
--   never uses unique jobs); else one HMGET for the batch, and per holder a
--   GET and DEL. The DEL is compare-and-delete: a key whose TTL passed and
--   that a newer job took since is that job's, and stays.
-- Taking a key is in _unique_take.lua (enqueue_unique, replay): apart, so
-- that the producer's script calls only the commands of its ACL rule.

local function unique_release(held, prefix, ids)
  if #ids == 0 or redis.call('EXISTS', held) == 0 then return end
  local gone = {}
  for i = 1, #ids, 4000 do
    local chunk = {unpack(ids, i, math.min(i + 3999, #ids))}
    local digests = redis.call('HMGET', held, unpack(chunk))
    for j, digest in ipairs(digests) do
      if digest then
        local lock = prefix .. digest
        if redis.call('GET', lock) == chunk[j] then redis.call('DEL', lock) end
        gone[#gone + 1] = chunk[j]
      end
    end
  end
  for i = 1, #gone, 4000 do
    redis.call('HDEL', held, unpack(gone, i, math.min(i + 3999, #gone)))
  end
end
