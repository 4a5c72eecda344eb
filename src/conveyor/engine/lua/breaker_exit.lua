-- breaker_exit: reports how a call let out by breaker_enter went.
-- A success closes the breaker (a probe's success ends the outage). A
-- failure counts; at `threshold` consecutive failures, or for a failed
-- probe, the breaker opens for the cool-down.
-- KEYS: 1 breaker hash
-- ARGV: 1 now, 2 outcome ('ok' | 'fail'), 3 probe (0/1: the call was a probe),
--       4 threshold, 5 cooldown ms
-- Returns: the state after: 'closed' | 'open' | 'half'
--@include now

local now = now_ms(ARGV[1])
local st = redis.call('HGET', KEYS[1], 'st') or 'closed'
if ARGV[2] == 'ok' then
  if st == 'open' and ARGV[3] ~= '1' then
    return 'open'  -- a call that started before the outage: no news
  end
  if st ~= 'closed' or redis.call('HEXISTS', KEYS[1], 'f') == 1 then
    redis.call('DEL', KEYS[1])
  end
  return 'closed'
end
if st == 'open' and ARGV[3] ~= '1' then
  return 'open'
end
local failures = redis.call('HINCRBY', KEYS[1], 'f', 1)
if ARGV[3] == '1' or st == 'half' or failures >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'st', 'open', 'until', now + tonumber(ARGV[5]))
  redis.call('HDEL', KEYS[1], 'probe')
  return 'open'
end
return st
