#!lua
-- fail_stalled: mark the record of a job recover buried for stalling as
-- failed (written by the client: cjson would re-encode its payload).
--
-- KEYS[1]  dead: sorted set id -> time of death (unix ms)
-- KEYS[2]  record_key: the job record key
-- ARGV[1]  id
-- ARGV[2]  died_ms: its time of death as recover reported it
-- ARGV[3]  record: the failed record JSON
--
-- Only while the job is still that same dead letter: a replay (or a replay
-- and a second death) in between keeps the newer record.
--
-- Returns: 1 written; 0 the job is no longer that dead letter.

local died = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not died or tonumber(died) ~= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
return 1
