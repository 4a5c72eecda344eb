-- Flows: a parent job waits in 'waiting-children' with its pending
-- children in `<base>deps:<id>` (a set of child job keys) and their
-- outcomes in `<base>kids:<id>` (r:<child key> result, f:<child key> error).
-- A child's hash holds 'par' (its parent's job key) and 'pfl' (flags: 'f'
-- fail the parent on failure, 'i' ignore the dependency on failure).
-- A child finishing for good writes an outbox entry in its own queue
-- (hash `<base>flow:outbox`, child id -> JSON); a worker relays it to the
-- parent's queue (child_done.lua) and deletes it, so the handoff survives
-- a crash between the two steps and works across Redis Cluster slots.

--@include base

-- to_outbox(prefix, id, jk, kind, value, now): records that job `id` (key
-- `jk`) finished ('c' with its result, 'f' with its error) when it has a
-- parent. Returns true when an entry was written.
local function to_outbox(prefix, id, jk, kind, value, now)
  local p = redis.call('HMGET', jk, 'par', 'pfl')
  if not p[1] then
    return false
  end
  redis.call('HSET', queue_base(prefix) .. 'flow:outbox', id, cjson.encode({
    parent = p[1], child = jk, kind = kind, value = value, flags = p[2] or '', at = now }))
  return true
end
