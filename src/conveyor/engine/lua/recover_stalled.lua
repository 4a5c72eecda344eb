-- recover_stalled: the periodic check for jobs whose lease ran out (the
-- worker died, hung or lost Redis). Each goes back to the front of wait, or
-- fails with "stalled" once it has stalled more than max_stalled times.
-- Runs at most once per interval across all workers (guard key, PX).
-- Also sweeps finished-job zsets of ids whose hash expired (retention by
-- age) so counts stay true without new jobs finishing, and the claims hash
-- of records past their lock duration (see finish_jobs).
-- KEYS: 1 active, 2 wait, 3 marker, 4 seq counter, 5 failed, 6 completed,
--       7 guard
-- ARGV: 1 job key prefix, 2 logs prefix, 3 now, 4 max stalled,
--       5 guard ms, 6 failed keep count, 7 failed keep age ms
-- Returns: a flat list: the requeued ids, '', then the failed ids; or false if another
--          worker ran the check within the interval.
-- Events: stalled (the requeued jobs), failed
--@include now
--@include wait_score
--@include enqueue_waiting
--@include remove_job_keys
--@include keep_finished
--@include fail_job
--@include emit
--@include claim_records

local prefix = ARGV[1]
local logs_prefix = ARGV[2]
local now = now_ms(ARGV[3])
if tonumber(ARGV[5]) > 0 then
  if not redis.call('SET', KEYS[7], now, 'NX', 'PX', tonumber(ARGV[5])) then
    return false
  end
end
local max_stalled = tonumber(ARGV[4])
local requeued = {}
local failed = {}
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  local jk = prefix .. id
  redis.call('ZREM', KEYS[1], id)
  if redis.call('EXISTS', jk) == 1 then
    local stc = redis.call('HINCRBY', jk, 'stc', 1)
    redis.call('HDEL', jk, 'tk', 'cx')
    local group = redis.call('HGET', jk, 'gr')
    if group then
      group_release(prefix, group, KEYS[3])
    end
    if stc > max_stalled then
      local entry = cjson.encode({ error = 'stalled more than ' .. max_stalled .. ' times', traceback = '', at = now, attempt = tonumber(redis.call('HGET', jk, 'ats') or '0') })
      redis.call('HINCRBY', jk, 'atm', 1)
      fail_job(KEYS[5], prefix, logs_prefix, id, now, entry,
        tonumber(ARGV[6]), tonumber(ARGV[7]))
      failed[#failed + 1] = id
    else
      enqueue_waiting(KEYS[2], KEYS[4], jk, id, true)
      requeued[#requeued + 1] = id
    end
  end
end
if #requeued > 0 then
  redis.call('ZADD', KEYS[3], '0', '0')
  emit(events_key(prefix), now, 'stalled', requeued)
end
-- retention sweep: drop ids whose job hash expired, oldest first
for _, set_key in ipairs({ KEYS[6], KEYS[5] }) do
  local oldest = redis.call('ZRANGE', set_key, 0, 199)
  for _, id in ipairs(oldest) do
    if redis.call('EXISTS', prefix .. id) == 0 then
      redis.call('ZREM', set_key, id)
    end
  end
end
-- claim records of calls older than a lock (see claim_records)
local claims = queue_base(prefix) .. 'claims'
if redis.call('HLEN', claims) > 0 then
  local all = redis.call('HGETALL', claims)
  for i = 1, #all, 2 do
    local live = false
    for _, r in ipairs(claim_records(all[i + 1])) do
      live = live or r[3] > now
    end
    if not live then
      redis.call('HDEL', claims, all[i])
    end
  end
end
requeued[#requeued + 1] = ''
for _, id in ipairs(failed) do
  requeued[#requeued + 1] = id
end
return requeued
