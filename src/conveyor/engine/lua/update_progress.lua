-- update_progress: stores a running job's progress (JSON) and appends log
-- lines, for the holder of the current lock token only.
-- Guarantees: a stale worker's progress or log is rejected and changes nothing.
-- KEYS: 1 job hash, 2 job logs, 3 events stream
-- ARGV: 1 token, 2 progress (JSON, or '' unchanged), 3 keep logs (max lines,
--       0 = unbounded), 4 job id, 5 now ('' = Redis TIME), then log lines
-- Returns: 1 applied, -1 job missing, -2 token superseded
-- Event: progress (field data: the progress JSON), when progress is given
--@include now
--@include emit

local f = redis.call('HMGET', KEYS[1], 'tk', 'st')
if f[1] == false and f[2] == false then
  return -1
end
if f[1] ~= ARGV[1] or f[2] ~= 'active' then
  return -2
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'prog', ARGV[2])
  emit(KEYS[3], now_ms(ARGV[5]), 'progress', { ARGV[4] }, { 'data', ARGV[2] })
end
if #ARGV > 5 then
  for i = 6, #ARGV do
    redis.call('RPUSH', KEYS[2], ARGV[i])
  end
  redis.call('HSET', KEYS[1], 'lg', '1')
  local keep = tonumber(ARGV[3])
  if keep > 0 then
    redis.call('LTRIM', KEYS[2], -keep, -1)
  end
end
return 1
