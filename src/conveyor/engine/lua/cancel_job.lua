-- cancel_job: asks for a job to stop. An active job is flagged; its worker
-- sees the flag at its next lease renewal, cancels the handler and fails the
-- job with the reason. A waiting or delayed job fails at once.
-- KEYS: 1 wait (and its line, see wait_line), 2 delayed, 3 failed
-- ARGV: 1 job key prefix, 2 logs prefix, 3 id, 4 reason, 5 now,
--       6 failed keep count, 7 failed keep age ms
-- Returns: 1 flagged (active), 2 failed now, 0 already finished, -1 missing
--@include now
--@include remove_job_keys
--@include groups
--@include wait_line
--@include keep_finished
--@include fail_job

local jk = ARGV[1] .. ARGV[3]
local st = redis.call('HGET', jk, 'st')
if st == false then
  return -1
end
if st == 'active' then
  redis.call('HSET', jk, 'cx', ARGV[4])
  return 1
end
if st == 'waiting' or st == 'delayed' then
  if st == 'waiting' then
    wait_remove(KEYS[1], jk, ARGV[3])
  else
    redis.call('ZREM', KEYS[2], ARGV[3])
  end
  group_unlist(ARGV[1], ARGV[3], jk)
  local now = now_ms(ARGV[5])
  local entry = cjson.encode({ error = ARGV[4], traceback = '', at = now, attempt = 0 })
  fail_job(KEYS[3], ARGV[1], ARGV[2], ARGV[3], now, entry,
    tonumber(ARGV[6]), tonumber(ARGV[7]))
  return 2
end
return 0
