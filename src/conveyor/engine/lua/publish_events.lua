-- publish_events: appends events to a bus stream and trims it.
-- Guarantees: the entries of one call are appended together, in order;
-- trimming by length is approximate (whole stream nodes) unless asked exact;
-- trimming by age drops entries older than `now - max_age`.
-- KEYS: 1 stream
-- ARGV: 1 max length (0 = none), 2 max age ms (0 = none), 3 now ('' = Redis
--       TIME), 4 trim ('~' approximate or '=' exact), then per event four
--       values: type, data (JSON), target group ('' = every group),
--       replayed dead-letter id ('' = none)
-- Returns: the new entry ids, in order
--@include now
--@include bus

local max_len = tonumber(ARGV[1])
local max_age = tonumber(ARGV[2])
local how = ARGV[4]
local ids = {}
for i = 5, #ARGV, 4 do
  local entry = { 'type', ARGV[i], 'data', ARGV[i + 1] }
  if ARGV[i + 2] ~= '' then
    entry[#entry + 1] = 'group'
    entry[#entry + 1] = ARGV[i + 2]
  end
  if ARGV[i + 3] ~= '' then
    entry[#entry + 1] = 'replay'
    entry[#entry + 1] = ARGV[i + 3]
  end
  ids[#ids + 1] = xadd(KEYS[1], max_len, how, entry)
end
if max_age > 0 then
  local oldest = now_ms(ARGV[3]) - max_age
  if oldest > 0 then
    redis.call('XTRIM', KEYS[1], 'MINID', how, oldest .. '-0')
  end
end
return ids
