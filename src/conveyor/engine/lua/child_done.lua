-- child_done: tells a flow's parent (in the parent's queue) how one of its
-- children finished. Idempotent: a child counts once, so an outbox entry
-- relayed twice changes nothing the second time.
-- completed: the result is kept for the parent; the last child to finish
--   moves the parent to waiting.
-- failed for good: with flag 'i' it counts as finished (its error kept);
--   with 'f' the parent fails at once (and tells its own parent in turn);
--   otherwise the parent keeps waiting (the child may be retried).
-- KEYS: 1 wait (and its line, see wait_line), 2 marker, 3 seq counter, 4 waiting-children, 5 failed
-- ARGV: 1 job key prefix, 2 logs prefix, 3 now, 4 parent id, 5 child key,
--       6 kind ('c' | 'f'), 7 value (result JSON or error text), 8 flags,
--       9 failed keep count, 10 failed keep age ms
-- Returns: 1 parent released, 2 parent failed, 3 recorded (others
--          pending), 0 nothing to do (already counted, or no such parent)
-- Events: waiting (reason 'children completed'), failed
--@include now
--@include wait_score
--@include enqueue_waiting
--@include remove_job_keys
--@include keep_finished
--@include fail_job

local prefix = ARGV[1]
local now = now_ms(ARGV[3])
local pid, child, kind, value, flags = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local pk = prefix .. pid
local deps = queue_base(prefix) .. 'deps:' .. pid
local kids = queue_base(prefix) .. 'kids:' .. pid
if kind == 'f' and not string.find(flags, '[fi]') then
  return 0
end
if redis.call('SREM', deps, child) == 0 then
  return 0
end
if redis.call('HGET', pk, 'st') ~= 'waiting-children' then
  return 0
end
if kind == 'c' then
  redis.call('HSET', kids, 'r:' .. child, value)
elseif string.find(flags, 'f') then
  redis.call('ZREM', KEYS[4], pid)
  local entry = cjson.encode({ attempt = 0, error = 'child ' .. child .. ' failed: ' .. value,
    traceback = '', at = now })
  -- the parent's own retention for failed jobs, else the default passed in
  local ok, o = pcall(cjson.decode, redis.call('HGET', pk, 'opts') or '{}')
  local rf = ok and type(o) == 'table' and o['rf'] or { tonumber(ARGV[9]), tonumber(ARGV[10]) }
  fail_job(KEYS[5], prefix, ARGV[2], pid, now, entry, tonumber(rf[1]), tonumber(rf[2]))
  return 2
else
  redis.call('HSET', kids, 'f:' .. child, value)
end
if redis.call('SCARD', deps) > 0 then
  return 3
end
redis.call('ZREM', KEYS[4], pid)
enqueue_waiting(KEYS[1], KEYS[3], pk, pid, false)
redis.call('ZADD', KEYS[2], '0', '0')
emit(events_key(prefix), now, 'waiting', { pid }, { 'reason', 'children completed' })
return 1
