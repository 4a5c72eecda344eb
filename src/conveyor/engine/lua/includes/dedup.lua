-- Deduplication: a job added with a dedup key owns `<base>dedup:<key>`
-- (value: its id) until it finishes, or for a TTL when one was given
-- (then adds within the TTL meet it even after it finished). The job's
-- hash keeps the key in field 'dk'.
--@include base
local function dedup_key(prefix, dk)
  return queue_base(prefix) .. 'dedup:' .. dk
end

-- find_duplicate(prefix, dk): the id of the job holding `dk`, or nil.
local function find_duplicate(prefix, dk)
  local existing = redis.call('GET', dedup_key(prefix, dk))
  if existing and redis.call('EXISTS', prefix .. existing) == 1 then
    return existing
  end
  return nil
end

-- hold_dedup(prefix, dk, id, ttl): makes job `id` the holder of `dk`.
local function hold_dedup(prefix, dk, id, ttl)
  if ttl > 0 then
    redis.call('SET', dedup_key(prefix, dk), id, 'PX', ttl)
  else
    redis.call('SET', dedup_key(prefix, dk), id)
  end
  redis.call('HSET', prefix .. id, 'dk', dk)
end

-- release_dedup(prefix, id, dk): a job that finished or was removed frees
-- its key, unless the key lives out a TTL.
local function release_dedup(prefix, id, dk)
  if not dk then
    return
  end
  local key = dedup_key(prefix, dk)
  if redis.call('GET', key) == id and redis.call('PTTL', key) == -1 then
    redis.call('DEL', key)
  end
end
