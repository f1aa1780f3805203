#!lua
-- progress: store what a running job reports of its progress, if the caller
-- still holds its lease. Sent only for jobs whose handler calls
-- `current_job().set_progress` (throttled by worker/progress.py), never on
-- the per-job path of the others.
--
-- KEYS[1]  leases: hash id -> "<token> <ready list>"
-- KEYS[2]  progress: hash {fraction, message, attempt, updated_at} of the job
-- ARGV[1]  id: the job id
-- ARGV[2]  token: the caller's lease token
-- ARGV[3]  fraction: 0..1, as text
-- ARGV[4]  message: text (size-capped by the caller)
-- ARGV[5]  attempt: the attempt reporting it (1 on the first run)
-- ARGV[6]  ttl: seconds to keep it (the result TTL plus the job's timeout,
--          so it never expires before the job's result does)
--
-- The token check keeps a worker that lost the lease (its job was recovered
-- and re-issued) or a handler still running after its job settled (a thread
-- left running past its timeout) from writing over the current holder's.
-- updated_at is the server's clock (TIME), unix ms.
--
-- Returns: 1 written; 0 refused, the caller does not hold the lease.

-- @include _clock.lua
-- @include _lease.lua

if not lease_queue(KEYS[1], ARGV[1], ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[2], 'fraction', ARGV[3], 'message', ARGV[4],
  'attempt', ARGV[5], 'updated_at', now_ms())
redis.call('EXPIRE', KEYS[2], ARGV[6])
return 1
