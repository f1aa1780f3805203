-- The server's clock, spliced into scripts that say `-- @include _clock.lua`.
-- Every lease deadline, due time, minute bucket and registry time is read
-- here: clients send durations, never their own time, so hosts whose
-- clocks disagree still agree on what has expired. Redis 7 replicates a
-- script by its effects, so replicas store the values computed here.

-- Now, unix milliseconds (an integer).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Count one more finished attempt of kind `field` (completed / failed) in
-- the current minute's hash `prefix .. minute`, expiring after `keep` s.
local function count_attempts(prefix, now, field, n, keep)
  local key = prefix .. math.floor(now / 60000)
  if redis.call('HINCRBY', key, field, n) == n then
    redis.call('EXPIRE', key, keep)
  end
end
