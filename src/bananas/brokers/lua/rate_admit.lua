#!lua
-- rate_admit: reserve start slots in one rate-limit bucket (docs/control.md,
-- "Rate limits"): GCRA, i.e. virtual scheduling without burst.
--
-- KEYS[1]  bucket: string, the bucket's theoretical arrival time (TAT, unix ms)
-- ARGV[1]  interval_ms: milliseconds between two starts (the limit's spacing)
-- ARGV[2]  count: how many slots to reserve, in order
--
-- The TAT is when the bucket's next free slot is. Each slot reserved is
-- max(TAT, now) and moves the TAT one interval on: a reservation, so a job
-- told to wait until its slot starts then without asking again, and
-- concurrent callers (any number of workers) get distinct slots. The key
-- expires once its TAT has passed (an idle bucket costs no memory; absent
-- means "free now"). Judged by the server's clock (TIME).
--
-- Returns: {now_ms, delay_us...}: the server time, then one delay per slot,
-- whole microseconds from now (0: the slot is now).

-- @include _clock.lua

local now = now_ms()
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
local out = {now}
for i = 1, tonumber(ARGV[2]) do
  out[i + 1] = math.floor((tat - now) * 1000)
  tat = tat + interval
end
redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.max(1, math.ceil(tat - now)))
return out
