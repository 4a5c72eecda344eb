--@include insert_job
--@include emit
--@include dedup
-- dedup_add(prefix, now, keys, dk, ttl, debounce, name, data, opts, pr,
-- lifo, delay, group): what an add with dedup key `dk` meets. Returns nil when the
-- add should create its job, else (id, 0) for a duplicate left as it is, or
-- (id, 2) when debounce replaced the pending job's name, data, options and
-- delay (keeping its id and creation time). A debounced add that finds its
-- job already running or finished creates a new one.
-- keys: { wait, delayed, seq counter }
local function dedup_add(prefix, now, keys, dk, ttl, debounce, name, data, opts, pr, lifo, delay, group)
  local existing = find_duplicate(prefix, dk)
  if not existing then
    return nil
  end
  local stream = events_key(prefix)
  if debounce ~= 1 then
    emit(stream, now, 'deduplicated', { existing }, { 'key', dk })
    return existing, 0
  end
  local jk = prefix .. existing
  local f = redis.call('HMGET', jk, 'st', 'ts')
  if f[1] ~= 'waiting' and f[1] ~= 'delayed' then
    return nil
  end
  if f[1] == 'waiting' then
    wait_remove(keys[1], jk, existing)
  else
    redis.call('ZREM', keys[2], existing)
  end
  group_unlist(prefix, existing, jk)
  drop_data(jk)
  redis.call('HDEL', jk, 'due', 'gr', 'opts', 'lifo')
  local waiting, delayed = {}, {}
  local kind = insert_job(prefix, now, redis.call('INCR', keys[3]), existing, name, data, opts, pr,
    lifo, delay, waiting, delayed, group)
  redis.call('HSET', jk, 'ts', f[2])
  if kind == 'w' then
    wait_put(keys[1], nil, waiting[1], existing)
  elseif kind == 'd' then
    redis.call('ZADD', keys[2], delayed[1], existing)
  end
  hold_dedup(prefix, dk, existing, ttl)
  emit(stream, now, 'debounced', { existing }, { 'key', dk })
  return existing, 2
end
