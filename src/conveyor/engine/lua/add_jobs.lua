-- add_jobs: adds one or more jobs atomically.
-- Guarantees: a job id that already exists is left untouched and reported
-- as not created (idempotent ids); each new job is in exactly one of wait or
-- delayed; idle workers are woken through the marker.
-- KEYS: 1 wait, 2 delayed, 3 marker, 4 id counter, 5 seq counter
-- ARGV: 1 job key prefix, 2 now ('' = Redis TIME), 3 job count,
--       then 7 per job: id ('' = next auto id), name, data, opts,
--       priority, lifo ('1' or '0'), delay in ms or '' | '@<absolute ms>'
-- Returns: flat list of id, created (1 or 0) per job, then the time used.
--@include now
--@include wait_score

local prefix = ARGV[1]
local now = now_ms(ARGV[2])
local n = tonumber(ARGV[3])
local out = {}
local woke = false
for i = 0, n - 1 do
  local b = 3 + i * 7
  local id = ARGV[b + 1]
  local created = 1
  if id == '' then
    id = tostring(redis.call('INCR', KEYS[4]))
  elseif redis.call('EXISTS', prefix .. id) == 1 then
    created = 0
  end
  if created == 1 then
    local jk = prefix .. id
    local pr = tonumber(ARGV[b + 5])
    local lifo = ARGV[b + 6]
    local delay = ARGV[b + 7]
    local run_at = 0
    if string.sub(delay, 1, 1) == '@' then
      run_at = tonumber(string.sub(delay, 2))
    elseif delay ~= '' then
      run_at = now + tonumber(delay)
    end
    redis.call('HSET', jk, 'name', ARGV[b + 2], 'data', ARGV[b + 3], 'opts', ARGV[b + 4],
      'ts', now, 'pr', pr)
    if lifo == '1' then
      redis.call('HSET', jk, 'lifo', '1')
    end
    if run_at > now then
      redis.call('HSET', jk, 'st', 'delayed', 'due', run_at)
      redis.call('ZADD', KEYS[2], run_at, id)
    else
      redis.call('HSET', jk, 'st', 'waiting')
      redis.call('ZADD', KEYS[1], wait_score(KEYS[5], pr, lifo == '1'), id)
    end
    woke = true
  end
  out[#out + 1] = id
  out[#out + 1] = created
end
if woke then
  redis.call('ZADD', KEYS[3], 0, '0')
end
out[#out + 1] = now
return out
