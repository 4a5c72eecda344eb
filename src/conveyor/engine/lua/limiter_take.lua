-- limiter_take: takes `n` starts from a shared sliding-window limiter (see
-- includes/window.lua), or none when fewer than `n` are left.
-- KEYS: 1 log, 2 count
-- ARGV: 1 now, 2 max, 3 window ms, 4 n
-- Returns: { until (0 when taken, else the time at which to ask again), now }
--@include now
--@include window

local now = now_ms(ARGV[1])
local max, dur, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if window_room(KEYS[1], KEYS[2], now, max, dur) >= n then
  window_record(KEYS[1], KEYS[2], now, dur, n)
  return { 0, now }
end
return { window_free_at(KEYS[1], dur), now }
