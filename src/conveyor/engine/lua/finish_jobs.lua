-- finish_jobs: records the outcome of jobs a worker held, then (optionally)
-- claims the worker's next batch in the same round trip.
-- Outcomes: 'c' completed (value: JSON result), 'r' retry after `delay` ms
-- (value: attempt entry JSON), 'f' failed for good (value: attempt entry),
-- 'x' handed back to the front of wait without spending an attempt, 'l'
-- rate limited: handed back, and the whole queue held for `delay` ms.
-- Guarantees: only the holder of the current lock token changes the job
-- (fencing); a repeated call with the same token changes nothing and reports
-- 0, so a worker may resend after a lost reply. A call that claimed jobs
-- records their ids in the claims hash under the worker's and the call's
-- ids (valid for one lock duration; see claim_call): a
-- resend of that call gets the same jobs back, still under their tokens,
-- instead of claiming others and leaving those to lapse unseen.
-- KEYS: 1 wait (and its line, see wait_line), 2 active, 3 marker, 4 meta, 5 delayed, 6 seq counter,
--       7 completed, 8 failed, 9 limiter log, 10 limiter count,
--       11 claims (hash: '<worker id>|<call id>' -> msgpack { call id, job ids, valid until })
-- ARGV: 1 job key prefix, 2 logs prefix, 3 now, 4 claim count, 5 lock ms,
--       6 worker id, 7 outcomes (msgpack array of rows:
--       { id, token, kind, value, delay ms, keep count, keep age ms }),
--       8 call id ('<tag>:<n>', n counting the worker's calls; unique per
--       call of this worker)
-- Returns: msgpack { now, next due (the next delayed job's due time, a
--          held group's turn, or -1), codes, claimed (rows), held until
--          (0: not held), relay (ids of flow children that finished: their
--          outbox entries are for the worker to relay), grouped (jobs
--          waiting for their group's turn, counted when the claim fell short) }
-- Events: completed (fields results, names, started: JSON arrays), retrying (error, attempt,
--   delay), failed, waiting (reason 'handed back' or 'rate limited'), and
--   those of claiming
--   codes: 1 applied, 0 already applied by this token, -1 job missing,
--          -2 lock token superseded (stale worker)
--@include chunked
--@include now
--@include wait_score
--@include enqueue_waiting
--@include promote_delayed
--@include window
--@include claim
--@include dedup
--@include remove_job_keys
--@include keep_finished
--@include fail_job
--@include emit
--@include timings
--@include num_text
--@include claim_call

local prefix = ARGV[1]
local logs_prefix = ARGV[2]
local now = now_ms(ARGV[3])
local now_text = num_text(now)
local rows = cmsgpack.unpack(ARGV[7])
local codes = {}
local released = {}
local done = {}
local keep_done = -1
local requeued = false
local stream = events_key(prefix)
local done_ids, results, handed, limited = {}, {}, {}, {}
local names, started = {}, {}
local hold = 0
local outbox = {}
local failed_n = 0
local timings = timing_new()
for i, row in ipairs(rows) do
  local id = row[1]
  local jk = prefix .. id
  local f = redis.call('HMGET', jk, 'tk', 'st', 'lg', 'dk', 'par', 'gr', 'ts', 'pon', 'name')
  local code = 1
  if f[1] == false then
    code = (f[2] == false) and -1 or -2
  elseif f[1] ~= row[2] then
    code = -2
  elseif f[2] ~= 'active' then
    code = 0
  else
    released[#released + 1] = id
    if f[6] then
      group_release(prefix, f[6], KEYS[3])
    end
    local kind = row[3]
    if kind == 'c' then
      local keep_count = row[6]
      done_ids[#done_ids + 1] = id
      timing_add(timings, num_of(f[7]), num_of(f[8]), now)
      if f[5] then
        to_outbox(prefix, id, jk, 'c', row[4], now)
        outbox[#outbox + 1] = id
      end
      results[#results + 1] = row[4]
      names[#names + 1] = f[9] or ''
      started[#started + 1] = f[8] or '0'
      if keep_count == 0 then
        remove_job_keys(prefix, logs_prefix, id)
      else
        release_dedup(prefix, id, f[4])
        redis.call('HSET', jk, 'st', 'completed', 'rv', row[4], 'fon', now_text)
        expire_job(jk, f[3] and logs_prefix .. id, row[7])
        done[#done + 1] = now_text
        done[#done + 1] = id
        if keep_count > 0 and (keep_done < 0 or keep_count < keep_done) then
          keep_done = keep_count
        end
      end
    elseif kind == 'r' then
      local e = record_attempt(jk, row[4])
      redis.call('HINCRBY', jk, 'atm', 1)
      local delay = row[5]
      if delay > 0 then
        local due = num_text(now + delay)
        redis.call('HSET', jk, 'st', 'delayed', 'due', due)
        redis.call('ZADD', KEYS[5], due, id)
      else
        enqueue_waiting(KEYS[1], KEYS[6], jk, id, false)
      end
      requeued = true
      emit(stream, now, 'retrying', { id }, { 'error', tostring(e['error'] or ''),
        'attempt', tonumber(e['attempt']) or 0, 'delay', delay })
    elseif kind == 'f' then
      failed_n = failed_n + 1
      redis.call('HINCRBY', jk, 'atm', 1)
      fail_job(KEYS[8], prefix, logs_prefix, id, now, row[4], row[6], row[7])
      if f[5] then
        outbox[#outbox + 1] = id
      end
    else
      -- handed back or rate limited: the attempt does not count, the job runs next
      redis.call('HDEL', jk, 'tk', 'cx')
      enqueue_waiting(KEYS[1], KEYS[6], jk, id, true)
      requeued = true
      if kind == 'l' then
        limited[#limited + 1] = id
        if now + row[5] > hold then hold = now + row[5] end
      else
        handed[#handed + 1] = id
      end
    end
  end
  codes[i] = code
end
if #released > 0 then
  call_chunked({ 'ZREM', KEYS[2] }, released)
end
if #done > 0 then
  call_chunked({ 'ZADD', KEYS[7] }, done)
  trim_finished(KEYS[7], prefix, logs_prefix, keep_done)
end
if #done_ids > 0 then
  redis.call('HINCRBY', queue_base(prefix) .. 'stats', 'completed', #done_ids)
  timing_flush(queue_base(prefix) .. 'stats', timings)
end
if failed_n > 0 then
  redis.call('HINCRBY', queue_base(prefix) .. 'stats', 'failed', failed_n)
end
-- results are JSON already: the array is assembled, not re-encoded
emit(stream, now, 'completed', done_ids, { 'results', '[' .. table.concat(results, ',') .. ']',
  'names', cjson.encode(names), 'started', '[' .. table.concat(started, ',') .. ']' })
emit(stream, now, 'waiting', handed, { 'reason', 'handed back' })
emit(stream, now, 'waiting', limited, { 'reason', 'rate limited', 'until', hold })
if hold > 0 and hold > (count_of(redis.call('HGET', KEYS[4], 'hold')) or 0) then
  redis.call('HSET', KEYS[4], 'hold', hold)
end
if requeued then
  redis.call('ZADD', KEYS[3], '0', '0')
end
local jobs, held, grouped = claim_call(prefix, now, #released > 0)
return cmsgpack.pack({ now, next_turn(KEYS[5], prefix), codes, jobs, held, outbox, grouped })
