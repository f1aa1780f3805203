-- delete_dead: remove a dead-lettered job and everything stored for it.
--
-- KEYS[1]  dead sorted set
-- KEYS[2]  dead info hash
-- KEYS[3]  stalls hash
-- KEYS[4]  job record key
-- KEYS[5]  result hash key
-- ARGV[1]  id
--
-- Returns: 1 deleted; 0 not in the dead-letter queue.

local id = ARGV[1]
if redis.call('ZREM', KEYS[1], id) == 0 then return 0 end
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('DEL', KEYS[4], KEYS[5])
return 1
