-- drain: removes every waiting job, grouped ones included (and delayed
-- ones when asked), up to `limit` per call; running jobs are left alone.
-- KEYS: 1 wait (and its line, see wait_line), 2 delayed
-- ARGV: 1 job key prefix, 2 logs prefix, 3 limit, 4 include delayed ('1'/'0')
-- Returns: jobs removed in this call
-- Event: removed (reason 'drain')
--@include remove_job_keys
--@include now
--@include emit
--@include wait_line

local limit = tonumber(ARGV[3])
local removed = 0
local base = queue_base(ARGV[1])
local sets = { KEYS[1] }
for _, g in ipairs(redis.call('SMEMBERS', base .. 'groups:all')) do
  sets[#sets + 1] = base .. 'group:' .. g
end
if ARGV[4] == '1' then sets[#sets + 1] = KEYS[2] end
local line = line_key(KEYS[1])
while removed < limit do
  local items = redis.call('LRANGE', line, 0, math.min(499, limit - removed - 1))
  if #items == 0 then break end
  local ids = {}
  for i, item in ipairs(items) do
    ids[i] = line_id(item)
    remove_job_keys(ARGV[1], ARGV[2], ids[i])
  end
  emit(events_key(ARGV[1]), now_ms(''), 'removed', ids, { 'reason', 'drain' })
  redis.call('LTRIM', line, #items, -1)
  removed = removed + #ids
end
for s, set_key in ipairs(sets) do
  while removed < limit do
    local ids = redis.call('ZRANGE', set_key, 0, 499)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      remove_job_keys(ARGV[1], ARGV[2], id)
    end
    emit(events_key(ARGV[1]), now_ms(''), 'removed', ids, { 'reason', 'drain' })
    redis.call('ZREMRANGEBYRANK', set_key, 0, #ids - 1)
    if s > 1 and set_key ~= KEYS[2] then
      redis.call('DECRBY', base .. 'groups:waiting', #ids)
    end
    removed = removed + #ids
  end
end
return removed
