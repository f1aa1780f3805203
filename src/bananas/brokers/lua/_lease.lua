-- Shared lease helpers, spliced into scripts that say `-- @include _lease.lua`.
-- A lease is one hash field: id -> "<token> <ready list>", or
-- "~<token> <ready list>" while the job has not started (it was leased into a
-- worker's prefetch buffer): the recoverer charges no stall for such a lease.

-- The ready list of a lease value held with `token`, or nil if it is not ours
-- (or there is no lease: `lease` is false).
local function lease_list(lease, token)
  if not lease then return nil end
  local from = string.sub(lease, 1, 1) == '~' and 2 or 1
  if string.sub(lease, from, from + #token) == token .. ' ' then
    return string.sub(lease, from + #token + 1)
  end
  return nil
end

-- The ready list of a lease held with `token`, or nil if the lease is not ours.
local function lease_queue(leases, id, token)
  return lease_list(redis.call('HGET', leases, id), token)
end
