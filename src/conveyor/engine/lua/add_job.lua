-- add_job: adds one job; the same transition as add_jobs without the
-- msgpack framing, for the one-at-a-time path.
-- With a dedup key (see includes/dedup.lua) an add that meets the key's
-- holder returns it (created 0), or with debounce replaces it (created 2).
-- Guarantees: as add_jobs (an existing id is left untouched and reported as
-- not created; the new job is in exactly one of wait or delayed; idle
-- workers are woken through the marker).
-- KEYS: 1 wait (and its line, see wait_line), 2 delayed, 3 marker, 4 id counter, 5 seq counter
-- ARGV: 1 job key prefix, 2 now ('' = Redis TIME), 3 id ('' = next auto id),
--       4 name, 5 data, 6 opts, 7 priority, 8 lifo (0/1), 9 delay (see
--       add_jobs), 10 dedup key ('' none), 11 dedup ttl ms (0: until the
--       job finishes), 12 debounce (0/1), 13 group ('' none)
-- Returns: { now, id, created (1, 0 or 2) }
-- Events: added or delayed (field due, as in add_jobs); deduplicated or
--   debounced (field key)
--@include now
--@include wait_score
--@include insert_job
--@include emit
--@include dedup_add

local prefix = ARGV[1]
local now = now_ms(ARGV[2])
local id = ARGV[3]
if id ~= '' and redis.call('EXISTS', prefix .. id) == 1 then
  return { now, id, 0 }
end
local dk = ARGV[10]
if dk ~= '' then
  local found, code = dedup_add(prefix, now, { KEYS[1], KEYS[2], KEYS[5] }, dk, tonumber(ARGV[11]),
    tonumber(ARGV[12]), ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]),
    tonumber(ARGV[9]), ARGV[13])
  if found then
    if code == 2 then
      redis.call('ZADD', KEYS[3], '0', '0')
    end
    return { now, found, code }
  end
end
if id == '' then
  id = string.format('%d', redis.call('INCR', KEYS[4]))
end
local waiting = {}
local delayed = {}
local kind = insert_job(prefix, now, redis.call('INCR', KEYS[5]), id, ARGV[4], ARGV[5], ARGV[6],
  tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), waiting, delayed, ARGV[13])
if dk ~= '' then
  hold_dedup(prefix, dk, id, tonumber(ARGV[11]))
end
if kind ~= 'd' then
  if kind == 'w' then
    wait_put(KEYS[1], nil, waiting[1], id)
  end
  emit(events_key(prefix), now, 'added', { id })
else
  redis.call('ZADD', KEYS[2], delayed[1], id)
  emit(events_key(prefix), now, 'delayed', { id }, { 'due', '[' .. delayed[1] .. ']' })
end
redis.call('ZADD', KEYS[3], '0', '0')
return { now, id, 1 }
