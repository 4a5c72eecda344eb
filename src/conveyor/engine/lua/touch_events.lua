-- touch_events: a consumer's heartbeat over the entries it holds, or their
-- release (on shutdown) so that another consumer can claim them at once.
-- Guarantees: only entries still pending on this consumer are touched; the
-- delivery count does not change (JUSTID).
-- KEYS: 1 stream
-- ARGV: 1 group, 2 consumer, 3 idle ms to set (0 = just delivered,
--       claim idle = claimable now), then entry ids
-- Returns: the ids this consumer no longer holds
--@include bus

local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local lost = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if owner(stream, group, id) == consumer then
    redis.call('XCLAIM', stream, group, consumer, 0, id, 'IDLE', ARGV[3], 'JUSTID')
  else
    lost[#lost + 1] = id
  end
end
return lost
