-- ack_events: acknowledges entries a consumer group handled.
-- Guarantees: an acknowledged entry is never delivered to the group again;
-- the error recorded by an earlier failed delivery is dropped with it.
-- KEYS: 1 stream, 2 the group's error hash
-- ARGV: 1 group, then entry ids
-- Returns: how many entries were still pending (and are now acknowledged)

local ids = { unpack(ARGV, 2) }
local n = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('HDEL', KEYS[2], unpack(ids))
return n
