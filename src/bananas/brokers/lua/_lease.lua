-- Shared lease helpers, spliced into scripts that say `-- @include _lease.lua`.
-- A lease is one hash field: id -> "<token> <ready list>".

-- The ready list of a lease value held with `token`, or nil if it is not ours
-- (or there is no lease: `lease` is false).
local function lease_list(lease, token)
  if lease and string.sub(lease, 1, #token + 1) == token .. ' ' then
    return string.sub(lease, #token + 2)
  end
  return nil
end

-- The ready list of a lease held with `token`, or nil if the lease is not ours.
local function lease_queue(leases, id, token)
  return lease_list(redis.call('HGET', leases, id), token)
end
