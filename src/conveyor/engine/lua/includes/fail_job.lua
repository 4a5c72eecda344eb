-- fail_job(failed_key, prefix, logs_prefix, id, now, entry, keep_count, keep_age):
-- marks a job failed for good with the attempt entry (JSON with error and
-- traceback), appends the entry to the job's history and applies retention.
-- Events: failed (fields error, attempt, and per job names and started);
-- then, when retention keeps the job
-- (with its data, options and every attempt's error) in the failed set,
-- which is the queue's dead-letter set, dead-lettered (same fields).
-- A job with a flow parent also gets an outbox entry (see flow.lua).
--@include emit
--@include dedup
--@include flow
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
  release_dedup(prefix, id, redis.call('HGET', jk, 'dk'))
  keep_finished(failed_key, prefix, logs_prefix, id, now, keep_count, keep_age)
  local who = redis.call('HMGET', jk, 'name', 'pon')
  local fields = { 'error', tostring(e['error'] or ''), 'attempt', tonumber(e['attempt']) or 0,
    'names', cjson.encode({ who[1] or '' }), 'started', '[' .. (tonumber(who[2]) or 0) .. ']' }
  to_outbox(prefix, id, jk, 'f', fields[2], now)
  local stream = events_key(prefix)
  emit(stream, now, 'failed', { id }, fields)
  if keep_count ~= 0 then
    emit(stream, now, 'dead-lettered', { id }, fields)
  end
end
