-- replay_dead_events: moves dead-lettered entries back onto the stream,
-- addressed to the group that dead-lettered them (other groups skip them).
-- Guarantees: XADD and XDEL happen in one step, so replaying one entry
-- twice appends it once; entries dead-lettered without data (trimmed
-- before they were handled) stay where they are. The new entry carries
-- the id the event was first published with and counts its replays (the
-- letter's count plus one); a dead letter keeps both from the entry it
-- came from, so a processor can cap replays per event.
-- KEYS: 1 stream, 2 dead-letter stream
-- ARGV: 1 max length (0 = none), 2 trim ('~' or '='), then dead-letter ids
-- Returns: per id, the new entry id, '' if not found, '-' if it has no data
--@include bus

local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local entry = redis.call('XRANGE', KEYS[2], id, id)[1]
  if not entry then
    out[#out + 1] = ''
  else
    local etype, data = field(entry[2], 'type'), field(entry[2], 'data')
    if not data or not etype then
      out[#out + 1] = '-'
    else
      local replays = (tonumber(field(entry[2], 'replays')) or 0) + 1
      local origin = field(entry[2], 'origin') or field(entry[2], 'event')
      out[#out + 1] = xadd(KEYS[1], tonumber(ARGV[1]), ARGV[2],
        { 'type', etype, 'data', data, 'group', field(entry[2], 'group'), 'replay', id,
          'replays', replays, 'origin', origin })
      redis.call('XDEL', KEYS[2], id)
    end
  end
end
return out
