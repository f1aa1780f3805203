#!lua flags=allow-oom
-- delete_dead: remove a dead-lettered job and everything stored for it.
--
-- KEYS[1]  dead: sorted set id -> time of death
-- KEYS[2]  dead_info: hash id -> JSON dead info
-- KEYS[3]  stalls: hash id -> lost-lease count
-- KEYS[4]  record_key: the job record key
-- KEYS[5]  result_key: the result hash key
-- KEYS[6]  held: hash id -> digest of the live jobs holding a unique key
-- ARGV[1]  id
-- ARGV[2]  unique_prefix: the unique keys' prefix (_unique.lua)
-- ARGV[3]  wf: the workflow the job is a step of ("" for none: nothing more)
-- ARGV[4]  wf_context: the workflow's prefixes (keys.Keys.wf_context, _wf.lua)
--
-- Its bury freed the unique key the job held; this frees it too, should a
-- path have buried it without (a foreign router), so a deleted dead letter
-- never holds a key: one EXISTS when no job holds one.
--
-- A member's bury already failed its step in its workflow; the settle here
-- is a no-op then, and settles a step whose bury never reached it (a stalled
-- member whose fail_stalled.lua never ran).
--
-- Returns: 1 deleted; 0 not in the dead-letter queue.

-- @include _clock.lua
-- @include _unique.lua
-- @include _index.lua
-- @include _wf.lua

local id = ARGV[1]
if redis.call('ZREM', KEYS[1], id) == 0 then return 0 end
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('DEL', KEYS[4], KEYS[5])
unique_release(KEYS[6], ARGV[2], {id})
if ARGV[3] ~= '' then
  wf_settle(wf_ctx(ARGV[4]), ARGV[3], id, 'failed', 'deleted from the dead letters', now_ms())
end
return 1
