#!lua
-- cancel_check: which of the caller's leased jobs someone cancelled.
--
-- KEYS[1]  cancels: hash id -> unix ms: running jobs someone cancelled
-- ARGV[1]  job_prefix: record key prefix (the same partition's)
-- ARGV[2]  result_prefix: result key prefix (the same partition's)
-- ARGV[3..] per job: id
--
-- The ids are the leased jobs the caller holds.
--
-- The worker sends this only when `cancels` exists (its own EXISTS first,
-- once per check: nothing per job while nobody cancels). Here the requests
-- of jobs that finished anyway (a result stored, or the record gone) are
-- dropped first, so the hash is gone again once no cancelled job runs. A
-- request for a job put back in its queue (its worker stopped or died) stays:
-- the next worker to lease it stops it.
--
-- Returns: the ids of ARGV[3..] with a cancel request.

if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[2] .. id) == 1 or redis.call('EXISTS', ARGV[1] .. id) == 0 then
    redis.call('HDEL', KEYS[1], id)
  end
end
local out = {}
if #ARGV < 3 then return out end
local ids = {}
for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
local flags = redis.call('HMGET', KEYS[1], unpack(ids))
for i, flag in ipairs(flags) do
  if flag then out[#out + 1] = ids[i] end
end
return out
