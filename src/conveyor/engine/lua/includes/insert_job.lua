-- insert_job(prefix, now, n, id, name, data, opts, pr, lifo, delay, waiting,
-- delayed): writes a new job's hash and appends { score, id } to `waiting`
-- (n: the job's sequence number, see wait_score) or `delayed` for the
-- caller's ZADD. delay: ms from now, or -(absolute ms) for run_at, or 0.
local function insert_job(prefix, now, n, id, name, data, opts, pr, lifo, delay, waiting, delayed)
  local run_at = 0
  if delay < 0 then
    run_at = -delay
  elseif delay > 0 then
    run_at = now + delay
  end
  local jk = prefix .. id
  if run_at > now then
    redis.call('HSET', jk, 'name', name, 'data', data, 'opts', opts, 'ts', now,
      'pr', pr, 'lifo', lifo, 'st', 'delayed', 'due', run_at)
    delayed[#delayed + 1] = run_at
    delayed[#delayed + 1] = id
  else
    redis.call('HSET', jk, 'name', name, 'data', data, 'opts', opts, 'ts', now,
      'pr', pr, 'lifo', lifo, 'st', 'waiting')
    if lifo == 1 then
      waiting[#waiting + 1] = pr * PRIO_STEP + SEQ_MID - n
    else
      waiting[#waiting + 1] = pr * PRIO_STEP + SEQ_MID + n
    end
    waiting[#waiting + 1] = id
  end
end
