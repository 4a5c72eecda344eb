-- keep_finished(set_key, prefix, logs_prefix, id, now, keep_count, keep_age):
-- records a finished job in its state zset (score: finished at) and applies
-- the retention policy: keep_count 0 removes the job at once; a positive
-- keep_count trims the oldest beyond it (at most 1,000 per call, the rest on
-- later calls or the periodic sweep); a positive keep_age sets a TTL on the
-- job's keys so Redis removes them on time even if nothing else finishes.
local function keep_finished(set_key, prefix, logs_prefix, id, now, keep_count, keep_age)
  if keep_count == 0 then
    remove_job_keys(prefix, logs_prefix, id)
    return
  end
  redis.call('ZADD', set_key, now, id)
  if keep_age > 0 then
    redis.call('PEXPIRE', prefix .. id, keep_age)
    redis.call('PEXPIRE', logs_prefix .. id, keep_age)
  end
  if keep_count > 0 then
    local excess = redis.call('ZCARD', set_key) - keep_count
    if excess > 0 then
      if excess > 1000 then excess = 1000 end
      local old = redis.call('ZPOPMIN', set_key, excess)
      for i = 1, #old, 2 do
        remove_job_keys(prefix, logs_prefix, old[i])
      end
    end
  end
end
