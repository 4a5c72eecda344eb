-- replay_dead_events: moves dead-lettered entries back onto the stream,
-- addressed to the group that dead-lettered them (other groups skip them).
-- Guarantees: XADD and XDEL happen in one step, so replaying one entry
-- twice appends it once; entries dead-lettered without data (trimmed
-- before they were handled) stay where they are.
-- KEYS: 1 stream, 2 dead-letter stream
-- ARGV: 1 max length (0 = none), 2 '~' or '=', then dead-letter ids
-- Returns: per id, the new entry id, '' if not found, '-' if it has no data

local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local entry = redis.call('XRANGE', KEYS[2], id, id)[1]
  if not entry then
    out[#out + 1] = ''
  else
    local f = {}
    for j = 1, #entry[2], 2 do
      f[entry[2][j]] = entry[2][j + 1]
    end
    if not f['data'] or not f['type'] then
      out[#out + 1] = '-'
    else
      local args = { 'XADD', KEYS[1] }
      if tonumber(ARGV[1]) > 0 then
        args[#args + 1] = 'MAXLEN'
        args[#args + 1] = ARGV[2]
        args[#args + 1] = ARGV[1]
      end
      for _, v in ipairs({ '*', 'type', f['type'], 'data', f['data'], 'group', f['group'], 'replay', id }) do
        args[#args + 1] = v
      end
      out[#out + 1] = redis.call(unpack(args))
      redis.call('XDEL', KEYS[2], id)
    end
  end
end
return out
