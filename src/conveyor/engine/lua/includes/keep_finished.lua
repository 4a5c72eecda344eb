-- Retention of finished jobs (completed or failed).
-- expire_job(jk, lk, keep_age): a positive keep_age (ms) sets a TTL on the
-- job's hash (and its logs `lk`, unless nil), so Redis removes them on time
-- even if nothing else ever finishes.
-- trim_finished(set_key, prefix, logs_prefix, keep_count): keeps the newest
-- keep_count ids of a finished zset, deleting the oldest beyond it (at most
-- 1,000 per call, in one DEL; later calls and the periodic sweep do the rest).
-- keep_finished(...): both, for one job; keep_count 0 removes it at once.
--@include chunked
--@include num_text

local function expire_job(jk, lk, keep_age)
  if keep_age > 0 then
    local ms = num_text(keep_age)
    redis.call('PEXPIRE', jk, ms)
    if lk then
      redis.call('PEXPIRE', lk, ms)
    end
  end
end

local function trim_finished(set_key, prefix, logs_prefix, keep_count)
  if keep_count < 0 then
    return
  end
  local excess = redis.call('ZCARD', set_key) - keep_count
  if excess > 0 then
    if excess > 1000 then excess = 1000 end
    local old = redis.call('ZPOPMIN', set_key, excess)
    local doomed = {}
    for i = 1, #old, 2 do
      doomed[#doomed + 1] = prefix .. old[i]
      doomed[#doomed + 1] = logs_prefix .. old[i]
    end
    call_chunked({ 'DEL' }, doomed)
  end
end

local function keep_finished(set_key, prefix, logs_prefix, id, now, keep_count, keep_age)
  if keep_count == 0 then
    remove_job_keys(prefix, logs_prefix, id)
    return
  end
  redis.call('ZADD', set_key, num_text(now), id)
  expire_job(prefix .. id, logs_prefix .. id, keep_age)
  trim_finished(set_key, prefix, logs_prefix, keep_count)
end
