-- remove_job: deletes a job that is not running, from whatever state it is in.
-- Guarantees: an active job is never removed under its worker (cancel it).
-- KEYS: 1 wait (and its line, see wait_line), 2 delayed, 3 completed, 4 failed, 5 waiting-children
-- ARGV: 1 job key prefix, 2 logs prefix, 3 id
-- Returns: 1 removed, -1 missing, -4 job is active
-- Event: removed
--@include remove_job_keys
--@include groups
--@include wait_line
--@include now
--@include emit

local jk = ARGV[1] .. ARGV[3]
local st = redis.call('HGET', jk, 'st')
if st == false then
  return -1
end
if st == 'active' then
  return -4
end
group_unlist(ARGV[1], ARGV[3], jk)
if st == 'waiting' then
  wait_remove(KEYS[1], jk, ARGV[3])
end
for i = 2, 5 do
  redis.call('ZREM', KEYS[i], ARGV[3])
end
remove_job_keys(ARGV[1], ARGV[2], ARGV[3])
emit(events_key(ARGV[1]), now_ms(''), 'removed', { ARGV[3] })
return 1
