-- extend_locks: renews the lease of every job a worker still holds and
-- reports the ones it no longer holds and the ones asked to cancel.
-- Guarantees: a lease is extended only for the current token of an active
-- job, so a stale worker cannot revive a job another worker reclaimed.
-- KEYS: 1 active
-- ARGV: 1 job key prefix, 2 now, 3 lock ms, then id, token pairs
-- Returns: a flat list: the lost ids, '', then id, reason pairs of cancelled jobs
--@include now

local prefix = ARGV[1]
local deadline = now_ms(ARGV[2]) + tonumber(ARGV[3])
local lost = {}
local cancel = {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local f = redis.call('HMGET', prefix .. id, 'tk', 'st', 'cx')
  if f[1] == ARGV[i + 1] and f[2] == 'active' then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
    if f[3] then
      cancel[#cancel + 1] = id
      cancel[#cancel + 1] = f[3]
    end
  else
    lost[#lost + 1] = id
  end
end
lost[#lost + 1] = ''
for _, v in ipairs(cancel) do
  lost[#lost + 1] = v
end
return lost
