-- promote_delayed(delayed_key, wait_key, seq_key, prefix, now, limit):
-- moves delayed jobs whose time has come to wait. Returns how many moved.
--@include emit
local function promote_delayed(delayed_key, wait_key, seq_key, prefix, now, limit)
  local head = redis.call('ZRANGE', delayed_key, 0, 0, 'WITHSCORES')
  if #head == 0 or tonumber(head[2]) > now then
    return 0
  end
  local due = redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, limit)
  local moved = {}
  for _, id in ipairs(due) do
    local jk = prefix .. id
    local f = redis.call('HMGET', jk, 'st', 'lifo')
    if f[1] then  -- false: the hash is gone (removed), drop the orphan id
      enqueue_waiting(wait_key, seq_key, jk, id, f[2] == '1')
      moved[#moved + 1] = id
    end
  end
  redis.call('ZREMRANGEBYRANK', delayed_key, 0, #due - 1)
  emit(events_key(prefix), now, 'waiting', moved, { 'reason', 'due' })
  return #due
end
