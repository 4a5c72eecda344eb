-- enqueue_waiting(wait_key, seq_key, job_key, id, front): put a job that
-- already has a hash into the wait zset at its priority and mark it waiting.
local function enqueue_waiting(wait_key, seq_key, job_key, id, front)
  local pr = tonumber(redis.call('HGET', job_key, 'pr') or '0') or 0
  redis.call('ZADD', wait_key, wait_score(seq_key, pr, front), id)
  redis.call('HSET', job_key, 'st', 'waiting')
end
