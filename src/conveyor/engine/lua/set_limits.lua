-- set_limits: sets or clears the queue-wide limits every worker obeys (see
-- includes/claim.lua), then wakes idle workers so that a raised limit takes
-- effect at once.
-- KEYS: 1 meta, 2 marker, 3 limiter log, 4 limiter count
-- ARGV: 1 now, then field, value pairs; an empty value clears the field.
--       Fields: conc, rate ("<max>:<ms>"), hold (ms from now; 0 = release),
--       and for each group gconc, grate
-- Returns: the time until which the queue is held (0: not held)
--@include now
--@include num_text

local now = now_ms(ARGV[1])
for i = 2, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if field == 'rate' or field == 'grate' then
    local f = field == 'rate' and { 'rlm', 'rld' } or { 'grlm', 'grld' }
    if value == '' then
      redis.call('HDEL', KEYS[1], f[1], f[2])
    else
      local max, ms = string.match(value, '^(%d+):(%d+)$')
      redis.call('HSET', KEYS[1], f[1], max, f[2], ms)
    end
    if field == 'rate' then
      -- a new window starts from scratch
      redis.call('DEL', KEYS[3], KEYS[4])
    end
  elseif field == 'hold' then
    if tonumber(value) > 0 then
      redis.call('HSET', KEYS[1], 'hold', now + tonumber(value))
    else
      redis.call('HDEL', KEYS[1], 'hold')
    end
  elseif value == '' then
    redis.call('HDEL', KEYS[1], field)
  else
    redis.call('HSET', KEYS[1], field, value)
  end
end
redis.call('ZADD', KEYS[2], '0', '0')
local hold = count_of(redis.call('HGET', KEYS[1], 'hold')) or 0
if hold <= now then
  return 0
end
return hold
