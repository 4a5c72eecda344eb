-- ack_events: acknowledges entries a consumer group handled.
-- Guarantees: an acknowledged entry is never delivered to the group again;
-- the error recorded by an earlier failed delivery is dropped with it.
-- KEYS: 1 stream, 2 errors (the group's error hash)
-- ARGV: 1 group, then entry ids
-- Returns: how many entries were still pending (and are now acknowledged)
--@include chunked

local ids = {}
for i = 2, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
local n = call_chunked({ 'XACK', KEYS[1], ARGV[1] }, ids)
call_chunked({ 'HDEL', KEYS[2] }, ids)
return n
