-- Groups: a job added with a group waits in its group's zset
-- `<base>group:<g>` (scored as in wait) instead of wait. The ring
-- `<base>groups:ring` holds one token per group that may run now, scored
-- like a waiting job, so tokens and ungrouped jobs share one line: claim
-- serves them in score order, one job per token turn, and puts the token
-- back at the end of the line. Groups take turns whatever their backlog.
-- A group at its concurrency limit is parked (`groups:parked`) until one
-- of its jobs leaves active; a group whose rate window is full waits in
-- `groups:held` (score: when it may start again).
-- Bookkeeping: `groups:waiting` counts grouped jobs waiting, hash
-- `groups:active` counts each group's active jobs, set `groups:all` names
-- every group seen. Limits every group gets (meta): gconc, grlm and grld.
--@include base
--@include wait_score
--@include window

-- group_token(base, g, score): puts group g's token in line at `score`,
-- unless it is in line, parked or held already.
local function group_token(base, g, score)
  if redis.call('SISMEMBER', base .. 'groups:parked', g) == 1
    or redis.call('ZSCORE', base .. 'groups:held', g)
    or redis.call('ZSCORE', base .. 'groups:ring', g) then
    return
  end
  redis.call('ZADD', base .. 'groups:ring', score, g)
end

-- group_requeue_token(base, g): the token's next turn, at the end of the
-- line at the priority of the group's next job; none when it has none.
local function group_requeue_token(base, g)
  local head = redis.call('ZRANGE', base .. 'group:' .. g, 0, 0, 'WITHSCORES')
  if #head == 0 then
    return
  end
  local pr = math.floor(tonumber(head[2]) / PRIO_STEP)
  group_token(base, g, wait_score(base .. 'seq', pr, false))
end

-- group_push(prefix, id, g, score): job `id` waits in group g.
local function group_push(prefix, id, g, score)
  local base = queue_base(prefix)
  if redis.call('ZADD', base .. 'group:' .. g, score, id) == 1 then
    redis.call('INCR', base .. 'groups:waiting')
  end
  redis.call('SADD', base .. 'groups:all', g)
  group_token(base, g, score)
end

-- group_unlist(prefix, id, jk): takes a waiting grouped job out of its
-- group (for remove, cancel, debounce); a no-op for other jobs.
local function group_unlist(prefix, id, jk)
  local g = redis.call('HGET', jk, 'gr')
  if g and redis.call('ZREM', queue_base(prefix) .. 'group:' .. g, id) == 1 then
    redis.call('DECR', queue_base(prefix) .. 'groups:waiting')
  end
end

-- group_release(prefix, g, marker_key): one of group g's jobs left active;
-- a group parked at its limit gets its turn back.
local function group_release(prefix, g, marker_key)
  local base = queue_base(prefix)
  if redis.call('HINCRBY', base .. 'groups:active', g, -1) <= 0 then
    redis.call('HDEL', base .. 'groups:active', g)
  end
  if redis.call('SREM', base .. 'groups:parked', g) == 1 then
    group_requeue_token(base, g)
    redis.call('ZADD', marker_key, '0', '0')
  end
end

-- group_unhold(base, now): groups whose rate window opened get a turn.
local function group_unhold(base, now)
  local held = base .. 'groups:held'
  local due = redis.call('ZRANGEBYSCORE', held, '-inf', now, 'LIMIT', 0, 100)
  for _, g in ipairs(due) do
    redis.call('ZREM', held, g)
    group_requeue_token(base, g)
  end
end

-- group_take(base, g, now, limits): one job of group g for the token's
-- turn, or nil. Parks or holds the group when it reaches its limits, else
-- puts its token back in line. limits: { gconc, grlm, grld } (nil: none)
local function group_take(base, g, now, limits)
  local conc, rlm, rld = limits[1], limits[2], limits[3]
  local active = tonumber(redis.call('HGET', base .. 'groups:active', g)) or 0
  if conc and active >= conc then
    redis.call('SADD', base .. 'groups:parked', g)
    return nil
  end
  local log, count = base .. 'glimit:' .. g, base .. 'gcount:' .. g
  local room = 0
  if rlm then
    room = window_room(log, count, now, rlm, rld)
    if room <= 0 then
      redis.call('ZADD', base .. 'groups:held', window_free_at(log, rld), g)
      return nil
    end
  end
  local popped = redis.call('ZPOPMIN', base .. 'group:' .. g)
  if #popped == 0 then
    return nil  -- the group ran empty: its token lapses
  end
  redis.call('DECR', base .. 'groups:waiting')
  redis.call('HINCRBY', base .. 'groups:active', g, 1)
  if rlm then
    window_record(log, count, now, rld, 1)
  end
  if redis.call('ZCARD', base .. 'group:' .. g) > 0 then
    if conc and active + 1 >= conc then
      redis.call('SADD', base .. 'groups:parked', g)
    elseif rlm and room <= 1 then
      redis.call('ZADD', base .. 'groups:held', window_free_at(log, rld), g)
    else
      group_requeue_token(base, g)
    end
  end
  return popped[1]
end
