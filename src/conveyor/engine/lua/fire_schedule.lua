-- fire_schedule: enqueues the job of one schedule tick and moves the
-- schedule to its next run, as one compare-and-set: it happens only if the
-- schedule's next run is still `tick` and its spec is still `spec`. Any
-- number of schedulers may race on a tick; exactly one of them fires it
-- (and the tick's job id is deterministic besides).
-- KEYS: 1 schedules, 2 next runs, 3 runs (n:<key> -> count, last:<key> -> ms),
--       4 wait, 5 marker, 6 seq counter
-- ARGV: 1 job key prefix, 2 now, 3 key, 4 tick ms, 5 new next ms (-1: the
--       schedule ends), 6 spec, 7 job id ('' = advance without a job),
--       8 name, 9 data, 10 opts, 11 priority
-- Returns: 1 fired (or advanced), 0 lost the race or the schedule changed
-- Events: added (field schedule)
--@include now
--@include wait_score
--@include insert_job
--@include emit

local key = ARGV[3]
local at = redis.call('ZSCORE', KEYS[2], key)
if not at or tonumber(at) ~= tonumber(ARGV[4]) then
  return 0
end
if redis.call('HGET', KEYS[1], key) ~= ARGV[6] then
  return 0
end
local prefix = ARGV[1]
local now = now_ms(ARGV[2])
local id = ARGV[7]
if id ~= '' then
  if redis.call('EXISTS', prefix .. id) == 0 then
    local waiting, delayed = {}, {}
    insert_job(prefix, now, redis.call('INCR', KEYS[6]), id, ARGV[8], ARGV[9], ARGV[10],
      tonumber(ARGV[11]), 0, 0, waiting, delayed)
    wait_put(KEYS[4], nil, waiting[1], id)
    redis.call('ZADD', KEYS[5], '0', '0')
    emit(events_key(prefix), now, 'added', { id }, { 'schedule', key })
  end
  redis.call('HINCRBY', KEYS[3], 'n:' .. key, 1)
  redis.call('HSET', KEYS[3], 'last:' .. key, ARGV[4])
end
local nxt = tonumber(ARGV[5])
if nxt >= 0 then
  redis.call('ZADD', KEYS[2], nxt, key)
else
  redis.call('ZREM', KEYS[2], key)
end
return 1
