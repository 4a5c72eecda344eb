-- claim(keys, prefix, now, count, lock_ms, worker_id, out): moves up to
-- `count` waiting jobs to active, each under a new lock token
-- "<attempts started>:<worker id>" and a lease deadline (the active zset's
-- score). Appends 8 fields per job to `out`:
--   id, token, attempts started (the fencing number), name, data, opts,
--   attempts made, created at.
-- Ids whose hash is missing are dropped. When jobs are left in wait after a
-- full batch, the marker is set again so that another idle worker wakes.
-- ckeys: { wait, active, marker, meta }
local function claim(ckeys, prefix, now, count, lock_ms, worker_id, out)
  if count <= 0 then
    return 0
  end
  if redis.call('HEXISTS', ckeys[4], 'paused') == 1 then
    return 0
  end
  local popped = redis.call('ZPOPMIN', ckeys[1], count)
  local claimed = 0
  local deadline = now + lock_ms
  for i = 1, #popped, 2 do
    local id = popped[i]
    local jk = prefix .. id
    local f = redis.call('HMGET', jk, 'name', 'data', 'opts', 'atm', 'ts')
    if f[1] ~= false or f[2] ~= false then
      local ats = redis.call('HINCRBY', jk, 'ats', 1)
      local token = ats .. ':' .. worker_id
      redis.call('HSET', jk, 'st', 'active', 'tk', token, 'pon', now, 'wid', worker_id)
      redis.call('ZADD', ckeys[2], deadline, id)
      local n = #out
      out[n + 1] = id
      out[n + 2] = token
      out[n + 3] = ats
      out[n + 4] = f[1] or ''
      out[n + 5] = f[2] or ''
      out[n + 6] = f[3] or ''
      out[n + 7] = f[4] or '0'
      out[n + 8] = f[5] or '0'
      claimed = claimed + 1
    end
  end
  if #popped == count * 2 and redis.call('ZCARD', ckeys[1]) > 0 then
    redis.call('ZADD', ckeys[3], 0, '0')
  end
  return claimed
end
