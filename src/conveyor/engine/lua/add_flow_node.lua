-- add_flow_node: adds one job of a flow. A job with children waits in
-- 'waiting-children' until child_done.lua has seen each of them finish; a
-- child remembers its parent. Adding an id that exists changes nothing, so
-- a flow added again after a failure fills in only what is missing.
-- KEYS: 1 wait (and its line, see wait_line), 2 delayed, 3 marker, 4 seq counter, 5 waiting-children
-- ARGV: 1 job key prefix, 2 now, 3 id, 4 name, 5 data, 6 opts, 7 priority,
--       8 lifo (0/1), 9 delay (as in add_jobs), 10 parent job key ('' none),
--       11 flags ('f' fail parent on failure, 'i' ignore on failure),
--       12... child keys (the job keys of its children)
-- Returns: { now, created (1 or 0) }
-- Events: added, delayed or waiting-children
--@include chunked
--@include now
--@include wait_score
--@include insert_job
--@include emit
--@include flow

local prefix = ARGV[1]
local now = now_ms(ARGV[2])
local id = ARGV[3]
local jk = prefix .. id
if redis.call('EXISTS', jk) == 1 then
  return { now, 0 }
end
local waiting, delayed = {}, {}
insert_job(prefix, now, redis.call('INCR', KEYS[4]), id, ARGV[4], ARGV[5], ARGV[6],
  tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), waiting, delayed)
if ARGV[10] ~= '' then
  redis.call('HSET', jk, 'par', ARGV[10], 'pfl', ARGV[11])
end
local stream = events_key(prefix)
if #ARGV > 11 then
  local children = {}
  for i = 12, #ARGV do children[#children + 1] = ARGV[i] end
  call_chunked({ 'SADD', queue_base(prefix) .. 'deps:' .. id }, children)
  redis.call('HSET', jk, 'st', 'waiting-children')
  redis.call('HDEL', jk, 'due')
  redis.call('ZADD', KEYS[5], now, id)
  emit(stream, now, 'waiting-children', { id }, { 'children', #children })
elseif #waiting > 0 then
  wait_put(KEYS[1], nil, waiting[1], id)
  redis.call('ZADD', KEYS[3], '0', '0')
  emit(stream, now, 'added', { id })
else
  redis.call('ZADD', KEYS[2], delayed[1], id)
  redis.call('ZADD', KEYS[3], '0', '0')
  emit(stream, now, 'delayed', { id }, { 'due', '[' .. delayed[1] .. ']' })
end
return { now, 1 }
