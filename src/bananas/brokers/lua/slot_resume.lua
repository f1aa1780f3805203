#!lua
-- slot_resume: a parked job handed a slot goes to the head of its ready list
-- (docs/control.md).
--
-- KEYS[1]  scheduled: sorted set id -> due time (unix seconds)
-- KEYS[2]  index: hash of ready lists that may hold jobs (_index.lua)
-- KEYS[3..] per job: ready, marker
-- ARGV[1..] per job: id, member
--
-- Only a job still parked moves (one in the scheduled set: its re-check may
-- have moved it already, or a cancel removed it).
--
-- Returns: flags, 1 per job resumed.

-- @include _index.lua

local flags = {}
for i = 1, #ARGV, 2 do
  local n = (i + 1) / 2
  local ready, marker = KEYS[1 + 2 * n], KEYS[2 + 2 * n]
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('RPUSH', ready, ARGV[i])
    redis.call('ZADD', marker, 0, '1')
    index_add(KEYS[2], ARGV[i + 1])
    flags[#flags + 1] = 1
  else
    flags[#flags + 1] = 0
  end
end
index_bump(KEYS[2])
return flags
