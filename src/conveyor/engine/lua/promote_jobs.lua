-- promote_jobs: moves delayed jobs to wait now: the given ids, or (no ids)
-- up to `limit` of the soonest due.
-- KEYS: 1 delayed, 2 wait, 3 marker, 4 seq counter
-- ARGV: 1 job key prefix, 2 limit, then ids
-- Returns: the number of jobs moved
-- Event: waiting (reason 'promoted')
--@include wait_score
--@include enqueue_waiting
--@include now
--@include emit

local ids = {}
if #ARGV > 2 then
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
end
local moved = 0
local moved_ids = {}
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local jk = ARGV[1] .. id
    redis.call('HDEL', jk, 'due')
    enqueue_waiting(KEYS[2], KEYS[4], jk, id, false)
    moved = moved + 1
    moved_ids[moved] = id
  end
end
if moved > 0 then
  redis.call('ZADD', KEYS[3], '0', '0')
  emit(events_key(ARGV[1]), now_ms(''), 'waiting', moved_ids, { 'reason', 'promoted' })
end
return moved
