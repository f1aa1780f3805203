-- dequeue: take up to `count` ready jobs, in the order of the lists given,
-- and lease each one to the caller.
--
-- KEYS[1]  active sorted set (id -> lease deadline, unix ms)
-- KEYS[2]  leases hash (id -> "<token> <ready list the job came from>")
-- KEYS[3..] pairs: ready list, its wake marker
-- ARGV[1]  count
-- ARGV[2]  lease deadline (unix ms)
-- ARGV[3]  token prefix, unique per call (worker id + sequence, no spaces);
--          token = prefix .. n
-- ARGV[4]  job record key prefix
--
-- A list left non-empty gets its marker back so another idle worker wakes up.
-- Returns: flat array id, record (nil when missing), token per job.

local count = tonumber(ARGV[1])
local deadline = ARGV[2]
local out = {}
local n = 0
for i = 3, #KEYS, 2 do
  if n >= count then break end
  local ids = redis.call('RPOP', KEYS[i], count - n)
  if ids then
    for _, id in ipairs(ids) do
      n = n + 1
      local token = ARGV[3] .. n
      redis.call('ZADD', KEYS[1], deadline, id)
      redis.call('HSET', KEYS[2], id, token .. ' ' .. KEYS[i])
      out[#out + 1] = id
      out[#out + 1] = redis.call('GET', ARGV[4] .. id)
      out[#out + 1] = token
    end
    if redis.call('LLEN', KEYS[i]) > 0 then
      redis.call('ZADD', KEYS[i + 1], 0, '1')
    end
  end
end
return out
