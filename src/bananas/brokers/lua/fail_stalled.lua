#!lua
-- fail_stalled: mark the record of a job recover buried for stalling as
-- failed (written by the client: cjson would re-encode its payload).
--
-- KEYS[1]  dead: sorted set id -> time of death (unix ms)
-- KEYS[2]  record_key: the job record key
-- ARGV[1]  id
-- ARGV[2]  died_ms: its time of death as recover reported it
-- ARGV[3]  record: the failed record JSON
-- ARGV[4]  wf: the workflow the job is a step of ("" for none: nothing more)
-- ARGV[5]  wf_context: the workflow's prefixes (keys.Keys.wf_context, _wf.lua)
-- ARGV[6]  reason: why it was buried (the member's error in its workflow)
--
-- Only while the job is still that same dead letter: a replay (or a replay
-- and a second death) in between keeps the newer record.
--
-- A member's step was settled by recover.lua already (in the script that
-- buried it); settling it here again changes nothing (_wf.lua ignores a
-- final step) and covers a record recover could not decode.
--
-- Returns: 1 written; 0 the job is no longer that dead letter.

-- @include _clock.lua
-- @include _index.lua
-- @include _wf.lua

local died = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not died or tonumber(died) ~= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
if ARGV[4] ~= '' then wf_settle(wf_ctx(ARGV[5]), ARGV[4], ARGV[1], 'failed', ARGV[6], now_ms()) end
return 1
