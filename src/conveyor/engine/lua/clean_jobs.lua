-- clean_jobs: removes up to `limit` jobs of one state (waiting, delayed,
-- completed or failed) older than `grace` ms, oldest first.
-- KEYS: 1 state set (the state's zset; for waiting: wait, and its line beside it)
-- ARGV: 1 job key prefix, 2 logs prefix, 3 now, 4 grace ms, 5 limit,
--       6 state name
-- Returns: the removed ids
-- Event: removed (reason 'clean')
--@include now
--@include remove_job_keys
--@include emit
--@include wait_line

local now = now_ms(ARGV[3])
local cutoff = now - tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
local removed = {}
local start = 0
while #removed < limit do
  local batch = redis.call('ZRANGE', KEYS[1], start, start + 499)
  if #batch == 0 then break end
  local kept = 0
  for _, id in ipairs(batch) do
    local jk = ARGV[1] .. id
    local f = redis.call('HMGET', jk, 'ts', 'fon')
    local t = tonumber(f[2] or f[1] or '0') or 0
    if ARGV[6] == 'waiting' or ARGV[6] == 'delayed' then
      t = tonumber(f[1] or '0') or 0
    end
    if f[1] == false and f[2] == false then
      redis.call('ZREM', KEYS[1], id)
    elseif t <= cutoff and #removed < limit then
      redis.call('ZREM', KEYS[1], id)
      remove_job_keys(ARGV[1], ARGV[2], id)
      removed[#removed + 1] = id
    else
      kept = kept + 1
    end
  end
  start = start + kept
end
if ARGV[6] == 'waiting' then
  local line = line_key(KEYS[1])
  start = 0
  while #removed < limit do
    local batch = redis.call('LRANGE', line, start, start + 499)
    if #batch == 0 then break end
    local kept, dropped = 0, 0
    for i, item in ipairs(batch) do
      local id = line_id(item)
      local ts = redis.call('HGET', ARGV[1] .. id, 'ts')
      local drop = ts == false
      if not drop and tonumber(ts) <= cutoff and #removed < limit then
        remove_job_keys(ARGV[1], ARGV[2], id)
        removed[#removed + 1] = id
        drop = true
      end
      if drop then  -- marked, then all marks of the batch removed in one pass
        redis.call('LSET', line, start + i - 1, '')
        dropped = dropped + 1
      else
        kept = kept + 1
      end
    end
    if dropped > 0 then
      redis.call('LREM', line, 0, '')
    end
    start = start + kept
  end
end
emit(events_key(ARGV[1]), now, 'removed', removed, { 'reason', 'clean' })
return removed
