-- fail_job(failed_key, prefix, logs_prefix, id, now, entry, keep_count, keep_age):
-- marks a job failed with the attempt entry (JSON with error and traceback),
-- appends the entry to the job's history and applies retention.
-- Event: failed (fields error, attempt). Needs the emit include.
--@include emit
local function record_attempt(jk, entry)
  local e = cjson.decode(entry)
  local hist = redis.call('HGET', jk, 'hist')
  if hist then
    hist = string.sub(hist, 1, -2) .. ',' .. entry .. ']'
  else
    hist = '[' .. entry .. ']'
  end
  redis.call('HSET', jk, 'err', tostring(e['error'] or ''), 'tb', tostring(e['traceback'] or ''), 'hist', hist)
  return e
end

local function fail_job(failed_key, prefix, logs_prefix, id, now, entry, keep_count, keep_age)
  local jk = prefix .. id
  local e = record_attempt(jk, entry)
  redis.call('HSET', jk, 'st', 'failed', 'fon', now)
  keep_finished(failed_key, prefix, logs_prefix, id, now, keep_count, keep_age)
  emit(events_key(prefix), now, 'failed', { id },
    { 'error', tostring(e['error'] or ''), 'attempt', tonumber(e['attempt']) or 0 })
end
