-- claim_events: takes over entries of a consumer group that stayed pending
-- longer than `min idle` (their consumer died or froze, or they wait out a
-- retry delay). Claiming does not count as a delivery (JUSTID): the count
-- goes up only when a handler starts (start_event), so entries that a dead
-- consumer had read ahead but never started lose nothing.
-- Entries trimmed from the stream while pending are moved to the
-- dead-letter stream (as ids without data), so none disappears silently.
-- KEYS: 1 stream, 2 dead-letter stream, 3 errors (the group's error hash)
-- ARGV: 1 group, 2 consumer, 3 min idle ms, 4 cursor, 5 count,
--       6 dead-letter cap
-- Returns: { next cursor, claimed ({id, clean}...), dead ({id, '', error, reason}...) } where
--   clean is 1 when the last start of the entry ended in a recorded
--   failure (not a crash), and the last list holds the dead-lettered ids
--@include bus

local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local r = redis.call('XAUTOCLAIM', stream, group, consumer, ARGV[3], ARGV[4],
                     'COUNT', ARGV[5], 'JUSTID')
local claimed, dead = {}, {}
for _, id in ipairs(r[2]) do
  local _, deliveries = owner(stream, group, id)
  local clean = 0
  local last = redis.call('HGET', KEYS[3], id)
  if last and tonumber(cjson.decode(last)['delivery']) == deliveries then
    clean = 1
  end
  claimed[#claimed + 1] = { id, clean }
end
-- Redis 7 removes ids of deleted entries from the PEL and lists them here.
for _, id in ipairs(r[3] or {}) do
  local err = 'trimmed from the stream before the group acknowledged it'
  dead_letter(KEYS[2], tonumber(ARGV[6]), id, nil, group, consumer, 0, err, '', 'trimmed')
  redis.call('HDEL', KEYS[3], id)
  dead[#dead + 1] = { id, '', err, 'trimmed' }
end
return { r[1], claimed, dead }
