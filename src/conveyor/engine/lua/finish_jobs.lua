-- finish_jobs: records the outcome of jobs a worker held, then (optionally)
-- claims the worker's next batch in the same round trip.
-- Outcomes: 'c' completed (value: JSON result), 'r' retry after `delay` ms
-- (value: attempt entry JSON), 'f' failed for good (value: attempt entry),
-- 'x' handed back to the front of wait without spending an attempt.
-- Guarantees: only the holder of the current lock token changes the job
-- (fencing); a repeated call with the same token changes nothing and reports
-- 0, so a worker may resend after a lost reply.
-- KEYS: 1 wait, 2 active, 3 marker, 4 meta, 5 delayed, 6 seq counter,
--       7 completed, 8 failed
-- ARGV: 1 job key prefix, 2 logs prefix, 3 now, 4 claim count, 5 lock ms,
--       6 worker id, 7 outcome count, then 7 per outcome:
--       id, token, kind, value, delay ms, keep count, keep age ms
-- Returns: { now, next delayed due or -1, code per outcome..., claimed jobs }
--   codes: 1 applied, 0 already applied by this token, -1 job missing,
--          -2 lock token superseded (stale worker)
--@include now
--@include wait_score
--@include enqueue_waiting
--@include promote_delayed
--@include claim
--@include remove_job_keys
--@include keep_finished
--@include fail_job

local prefix = ARGV[1]
local logs_prefix = ARGV[2]
local now = now_ms(ARGV[3])
local n = tonumber(ARGV[7])
local out = { now, -1 }
local requeued = false
for i = 0, n - 1 do
  local b = 7 + i * 7
  local id = ARGV[b + 1]
  local jk = prefix .. id
  local f = redis.call('HMGET', jk, 'tk', 'st')
  local code = 1
  if f[1] == false then
    code = (f[2] == false) and -1 or -2
  elseif f[1] ~= ARGV[b + 2] then
    code = -2
  elseif f[2] ~= 'active' then
    code = 0
  else
    redis.call('ZREM', KEYS[2], id)
    local kind = ARGV[b + 3]
    if kind == 'c' then
      redis.call('HSET', jk, 'st', 'completed', 'rv', ARGV[b + 4], 'fon', now)
      keep_finished(KEYS[7], prefix, logs_prefix, id, now,
        tonumber(ARGV[b + 6]), tonumber(ARGV[b + 7]))
    elseif kind == 'r' then
      record_attempt(jk, ARGV[b + 4])
      redis.call('HINCRBY', jk, 'atm', 1)
      local delay = tonumber(ARGV[b + 5])
      if delay > 0 then
        redis.call('HSET', jk, 'st', 'delayed', 'due', now + delay)
        redis.call('ZADD', KEYS[5], now + delay, id)
      else
        enqueue_waiting(KEYS[1], KEYS[6], jk, id, false)
      end
      requeued = true
    elseif kind == 'f' then
      redis.call('HINCRBY', jk, 'atm', 1)
      fail_job(KEYS[8], prefix, logs_prefix, id, now, ARGV[b + 4],
        tonumber(ARGV[b + 6]), tonumber(ARGV[b + 7]))
    else
      -- handed back: the attempt does not count, the job runs next
      redis.call('HDEL', jk, 'tk', 'cx')
      enqueue_waiting(KEYS[1], KEYS[6], jk, id, true)
      requeued = true
    end
  end
  out[#out + 1] = code
end
if requeued then
  redis.call('ZADD', KEYS[3], 0, '0')
end
local count = tonumber(ARGV[4])
if count > 0 then
  promote_delayed(KEYS[5], KEYS[1], KEYS[6], prefix, now, 1000)
  claim({ KEYS[1], KEYS[2], KEYS[3], KEYS[4] }, prefix, now, count,
    tonumber(ARGV[5]), ARGV[6], out)
end
local head = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
if #head > 0 then
  out[2] = tonumber(head[2])
end
return out
