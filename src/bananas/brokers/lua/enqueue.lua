-- enqueue: store new job records and make them ready or scheduled, atomically.
--
-- KEYS[1]  queues set (members "priority:name")
-- KEYS[2]  scheduled sorted set (bananas:queue:scheduled)
-- then per job i (0-based), at 3 + 3*i:
--   job record key, ready list key, marker key
-- ARGV per job i, at 1 + 4*i:
--   id, record JSON, due (unix seconds; '' = ready now), queue member "priority:name"
--
-- A job whose record key already exists is left alone (idempotent enqueue by
-- id: a cron firing or a client retry never creates a second job).
-- Returns: array of 1 (enqueued) / 0 (id already existed), in job order.

local out = {}
local njobs = (#KEYS - 2) / 3
for i = 0, njobs - 1 do
  local k = 3 + 3 * i
  local a = 1 + 4 * i
  local id, record, due, member = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  if redis.call('SET', KEYS[k], record, 'NX') then
    if due == '' then
      redis.call('LPUSH', KEYS[k + 1], id)
      redis.call('ZADD', KEYS[k + 2], 0, '1')
    else
      redis.call('ZADD', KEYS[2], due, id)
    end
    redis.call('SADD', KEYS[1], member)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
