-- enqueue_waiting(wait_key, seq_key, job_key, id, front): put a job that
-- already has a hash back in line at its priority and mark it waiting:
-- into wait, or into its group (see groups.lua).
--@include groups
--@include wait_line
local function enqueue_waiting(wait_key, seq_key, job_key, id, front)
  local f = redis.call('HMGET', job_key, 'pr', 'gr')
  local score = wait_score(seq_key, tonumber(f[1]) or PRIO_DEFAULT, front)
  if f[2] then
    group_push(string.sub(job_key, 1, #job_key - #id), id, f[2], score)
  else
    wait_put(wait_key, job_key, score, id)
  end
  redis.call('HSET', job_key, 'st', 'waiting')
end
