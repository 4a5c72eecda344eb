-- insert_job(prefix, now, n, id, name, data, opts, pr, lifo, delay, waiting,
-- delayed, group): writes a new job's hash and appends { score, id } to
-- `waiting` (n: the job's sequence number, see wait_score) or `delayed` for
-- the caller's ZADD; a job of a group (non-empty `group`) that can wait at
-- once goes straight into its group instead. delay: ms from now, or
-- -(absolute ms) for run_at, or 0. Returns 'w', 'd' or 'g' accordingly.
-- Options, priority and lifo at their defaults ('{}', PRIO_DEFAULT, 0)
-- are not stored; a job for the line gets its 'sq' here (the caller puts
-- it in line with wait_put(..., nil, ...), see wait_line).
--@include wait_score
--@include wait_line
--@include groups
--@include job_data
--@include num_text
local function insert_job(prefix, now, n, id, name, data, opts, pr, lifo, delay, waiting, delayed, group)
  local run_at = 0
  if delay < 0 then
    run_at = -delay
  elseif delay > 0 then
    run_at = now + delay
  end
  local jk = prefix .. id
  if group and group ~= '' then
    redis.call('HSET', jk, 'gr', group)
  else
    group = nil
  end
  local fields = { 'HSET', jk, 'name', name }
  data_fields(fields, data)
  if opts ~= '{}' and opts ~= '' then
    fields[#fields + 1] = 'opts'
    fields[#fields + 1] = opts
  end
  if lifo == 1 then
    fields[#fields + 1] = 'lifo'
    fields[#fields + 1] = '1'
  end
  fields[#fields + 1] = 'ts'
  fields[#fields + 1] = num_text(now)
  if pr ~= PRIO_DEFAULT then
    fields[#fields + 1] = 'pr'
    fields[#fields + 1] = num_text(pr)
  end
  fields[#fields + 1] = 'st'
  if run_at > now then
    fields[#fields + 1] = 'delayed'
    fields[#fields + 1] = 'due'
    fields[#fields + 1] = num_text(run_at)
    redis.call(unpack(fields))
    delayed[#delayed + 1] = run_at
    delayed[#delayed + 1] = id
    return 'd'
  end
  fields[#fields + 1] = 'waiting'
  local seq = n
  if lifo == 1 then
    seq = -n
  end
  local score = pr * PRIO_STEP + SEQ_MID + seq
  local in_line, n = line_item(score, id)
  if not group and in_line then  -- it waits in the line (see wait_line)
    fields[#fields + 1] = 'sq'
    fields[#fields + 1] = n
  end
  redis.call(unpack(fields))
  if group then
    group_push(prefix, id, group, score)
    return 'g'
  end
  waiting[#waiting + 1] = score
  waiting[#waiting + 1] = id
  return 'w'
end
