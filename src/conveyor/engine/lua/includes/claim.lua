-- claim(ckeys, prefix, now, count, lock_ms, worker_id, jobs): moves up to
-- `count` waiting jobs to active, each under a new lock token
-- "<attempts started>:<worker id>" and a lease deadline (the active zset's
-- score). Appends one row per job to `jobs`:
--   { id, token, attempts started (the fencing number), name, data, opts,
--     attempts made, created at }
-- Ids whose hash is missing are dropped. When jobs are left in wait after a
-- full batch, the marker is set again so that another idle worker wakes.
-- Event: active (field worker). Needs the emit include.
-- ckeys: { wait, active, marker, meta }
--@include emit
local function claim(ckeys, prefix, now, count, lock_ms, worker_id, jobs)
  if count <= 0 then
    return 0
  end
  if redis.call('HEXISTS', ckeys[4], 'paused') == 1 then
    return 0
  end
  local popped = redis.call('ZPOPMIN', ckeys[1], count)
  local deadline = now + lock_ms
  local leases = {}
  for i = 1, #popped, 2 do
    local id = popped[i]
    local jk = prefix .. id
    local f = redis.call('HMGET', jk, 'name', 'data', 'opts', 'atm', 'ts', 'ats')
    if f[1] ~= false or f[2] ~= false then
      local ats = (tonumber(f[6]) or 0) + 1
      local token = ats .. ':' .. worker_id
      redis.call('HSET', jk, 'st', 'active', 'tk', token, 'pon', now, 'ats', ats)
      leases[#leases + 1] = deadline
      leases[#leases + 1] = id
      jobs[#jobs + 1] = { id, token, ats, f[1] or '', f[2] or '', f[3] or '',
        tonumber(f[4]) or 0, tonumber(f[5]) or 0 }
    end
  end
  if #leases > 0 then
    redis.call('ZADD', ckeys[2], unpack(leases))
    local ids = {}
    for i = 2, #leases, 2 do ids[#ids + 1] = leases[i] end
    emit(events_key(prefix), now, 'active', ids, { 'worker', worker_id })
  end
  if #popped == count * 2 and redis.call('ZCARD', ckeys[1]) > 0 then
    redis.call('ZADD', ckeys[3], 0, '0')
  end
  return #leases / 2
end
