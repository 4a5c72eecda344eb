-- claim(ckeys, prefix, now, count, lock_ms, worker_id, jobs): moves up to
-- `count` waiting jobs to active, each under a new lock token
-- "<attempts started>:<worker id>" and a lease deadline (the active zset's
-- score). Appends one row per job to `jobs`:
--   { id, token, attempts started (the fencing number), name, data, opts,
--     attempts made, created at }
-- Returns the number claimed and the time until which the queue is held
-- (0: not held; the caller should not ask again before that time).
-- The queue's limits, from its meta hash, hold across all workers:
--   paused      nothing is claimed
--   hold        nothing is claimed before this time (RateLimited, hold())
--   conc        at most this many jobs active at once
--   rlm, rld    at most rlm jobs started in any window of rld ms
--   gconc, grlm, grld   the same for each group (see groups.lua)
-- A field that is no whole number of at least 1 (a hand edit: set_limits
-- writes only those) counts as unset, as does a rate with half its pair.
-- Ids whose hash is missing are dropped. When jobs are left in wait and
-- another worker could take one, the marker is set again to wake it.
-- Event: active (field worker).
-- ckeys: { wait, active, marker, meta, limiter log, limiter count }
--@include chunked
--@include emit
--@include window
--@include wait_score
--@include wait_line
--@include groups
--@include job_data
--@include num_text
--@include wide_set

-- pick(ckeys, prefix, now, count, m): takes up to `count` ids off the line:
-- ungrouped jobs from wait and, at each group token's turn, one job of
-- that group. Returns the ids and whether jobs are left in line.
local function pick(ckeys, prefix, now, count, m)
  local base = queue_base(prefix)
  local ring = base .. 'groups:ring'
  if redis.call('ZCARD', base .. 'groups:held') > 0 then
    group_unhold(base, now)
  end
  if redis.call('ZCARD', ring) == 0 then
    local ids = wait_take(ckeys[1], nil, count)
    return ids, #ids == count and wait_count(ckeys[1]) > 0
  end
  local limits = { count_of(m[6]), pair_of(m[7], m[8]) }
  local ids = {}
  for _ = 1, count * 3 + 3 do
    local need = count - #ids
    if need <= 0 then
      break
    end
    local head = redis.call('ZRANGE', ring, 0, 0, 'WITHSCORES')
    if #head == 0 then
      for _, id in ipairs(wait_take(ckeys[1], nil, need)) do ids[#ids + 1] = id end
      break
    end
    local before = wait_take(ckeys[1], tonumber(head[2]), need)
    if #before > 0 then
      for _, id in ipairs(before) do ids[#ids + 1] = id end
    else
      redis.call('ZREM', ring, head[1])
      local id = group_take(base, head[1], now, limits)
      if id then ids[#ids + 1] = id end
    end
  end
  return ids, #ids == count and (wait_count(ckeys[1]) > 0 or redis.call('ZCARD', ring) > 0)
end

-- next_turn(delayed_key, prefix): when the next delayed job is due or a
-- held group may start again (-1: neither), for the worker's wake-up timer.
local function next_turn(delayed_key, prefix)
  local at = -1
  for _, key in ipairs({ delayed_key, queue_base(prefix) .. 'groups:held' }) do
    local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if #head > 0 and (at < 0 or tonumber(head[2]) < at) then
      at = tonumber(head[2])
    end
  end
  return at
end

-- in_line(ckeys, prefix): whether any job waits its turn (ungrouped, or
-- in a group that has a turn).
local function in_line(ckeys, prefix)
  return wait_count(ckeys[1]) > 0 or redis.call('ZCARD', queue_base(prefix) .. 'groups:ring') > 0
end

local function claim(ckeys, prefix, now, count, lock_ms, worker_id, jobs)
  local m = redis.call('HMGET', ckeys[4], 'paused', 'hold', 'conc', 'rlm', 'rld', 'gconc', 'grlm', 'grld')
  if m[1] then
    return 0, 0
  end
  local hold = count_of(m[2])
  if hold and hold > now then
    return 0, hold
  end
  local limited = false
  local conc = count_of(m[3])
  if conc then
    local free = conc - redis.call('ZCARD', ckeys[2])
    if free <= count then
      count = free
      limited = true
    end
  end
  local rlm, rld = pair_of(m[4], m[5])
  local room = 0
  if rlm and count > 0 then
    room = window_room(ckeys[5], ckeys[6], now, rlm, rld)
    if room <= 0 then
      if in_line(ckeys, prefix) then
        return 0, window_free_at(ckeys[5], rld)
      end
      return 0, 0
    end
    if room <= count then
      count = room
      limited = true
    end
  end
  if count <= 0 then
    return 0, 0
  end
  local picked, more = pick(ckeys, prefix, now, count, m)
  local deadline = num_text(now + lock_ms)
  local started = num_text(now)
  local leases = {}
  for _, id in ipairs(picked) do
    local jk = prefix .. id
    local f = redis.call('HMGET', jk, 'name', 'data', 'opts', 'atm', 'ts', 'ats', 'dn')
    if f[1] ~= false or f[2] ~= false then
      if f[7] then
        f[2] = whole_data(jk, f[2], f[7])
      end
      local ats = (tonumber(f[6]) or 0) + 1
      local ats_text = num_text(ats)
      local token = ats_text .. ':' .. worker_id
      redis.call('HSET', jk, 'st', 'active', 'tk', token, 'pon', started, 'ats', ats_text)
      leases[#leases + 1] = deadline
      leases[#leases + 1] = id
      jobs[#jobs + 1] = { id, token, ats, f[1] or '', f[2] or '', f[3] or '',
        tonumber(f[4]) or 0, num_of(f[5]) or 0 }
    end
  end
  local n = #leases / 2
  if n > 0 then
    local widened = set_widen(ckeys[2], n)
    call_chunked({ 'ZADD', ckeys[2] }, leases)
    if widened then
      set_unwiden(ckeys[2])
    end
    local ids = {}
    for i = 2, #leases, 2 do ids[#ids + 1] = leases[i] end
    emit(events_key(prefix), now, 'active', ids, { 'worker', worker_id })
  end
  local held = 0
  if rlm and n > 0 then
    window_record(ckeys[5], ckeys[6], now, rld, n)
    if n >= room and (more or in_line(ckeys, prefix)) then
      held = window_free_at(ckeys[5], rld)
    end
  end
  if not limited and more then
    redis.call('ZADD', ckeys[3], '0', '0')
  end
  return n, held
end

-- wake_for_slot(ckeys, prefix): after jobs left active without their worker
-- asking for more, wakes another worker when the queue's concurrency limit
-- had kept jobs waiting.
local function wake_for_slot(ckeys, prefix)
  if redis.call('HEXISTS', ckeys[4], 'conc') == 1 and in_line(ckeys, prefix) then
    redis.call('ZADD', ckeys[3], '0', '0')
  end
end
