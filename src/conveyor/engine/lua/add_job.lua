-- add_job: adds one job; the same transition as add_jobs without the
-- msgpack framing, for the one-at-a-time path.
-- Guarantees: as add_jobs (an existing id is left untouched and reported as
-- not created; the new job is in exactly one of wait or delayed; idle
-- workers are woken through the marker).
-- KEYS: 1 wait, 2 delayed, 3 marker, 4 id counter, 5 seq counter
-- ARGV: 1 job key prefix, 2 now ('' = Redis TIME), 3 id ('' = next auto id),
--       4 name, 5 data, 6 opts, 7 priority, 8 lifo (0/1), 9 delay (see
--       add_jobs)
-- Returns: { now, id, created (1 or 0) }
-- Events: added or delayed (field due, as in add_jobs)
--@include now
--@include wait_score
--@include insert_job
--@include emit

local prefix = ARGV[1]
local now = now_ms(ARGV[2])
local id = ARGV[3]
if id == '' then
  id = tostring(redis.call('INCR', KEYS[4]))
elseif redis.call('EXISTS', prefix .. id) == 1 then
  return { now, id, 0 }
end
local waiting = {}
local delayed = {}
insert_job(prefix, now, redis.call('INCR', KEYS[5]), id, ARGV[4], ARGV[5], ARGV[6],
  tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), waiting, delayed)
if #waiting > 0 then
  redis.call('ZADD', KEYS[1], waiting[1], id)
  emit(events_key(prefix), now, 'added', { id })
else
  redis.call('ZADD', KEYS[2], delayed[1], id)
  emit(events_key(prefix), now, 'delayed', { id }, { 'due', '[' .. delayed[1] .. ']' })
end
redis.call('ZADD', KEYS[3], 0, '0')
return { now, id, 1 }
