-- breaker_enter: asks a shared circuit breaker whether a call may go out.
-- State (hash): st closed|open|half, f consecutive failures, until (open:
-- when probing may start), probe (half: when the probe in flight expires).
-- closed: every call goes. open: none until `until`; then the breaker is
-- half-open and lets one probe through at a time (a probe that never
-- reports back expires after the probe timeout).
-- KEYS: 1 breaker hash
-- ARGV: 1 now, 2 probe timeout ms
-- Returns: { state ('closed' | 'probe' | 'open'), retry at ms (open), now }
--@include now

local now = now_ms(ARGV[1])
local b = redis.call('HMGET', KEYS[1], 'st', 'until', 'probe')
local st = b[1] or 'closed'
if st == 'closed' then
  return { 'closed', 0, now }
end
if st == 'open' then
  local reopen = tonumber(b[2]) or 0
  if now < reopen then
    return { 'open', reopen, now }
  end
  st = 'half'
end
local probe = tonumber(b[3]) or 0
if probe > now then
  return { 'open', probe, now }
end
redis.call('HSET', KEYS[1], 'st', 'half', 'probe', now + tonumber(ARGV[2]))
return { 'probe', 0, now }
