-- fail_event: records a failed delivery of one entry to a consumer group.
-- Guarantees: acts only while the entry is still pending on this consumer
-- (a consumer that lost it to a claim changes nothing). The entry is either
-- left pending, claimable by any consumer of the group after the retry
-- delay (its idle time is set so, without counting a delivery), or, on its
-- last allowed delivery or when forced (invalid payload), moved to the
-- dead-letter stream: XADD there and XACK here happen in one step, so the
-- entry is never in neither and never in both.
-- KEYS: 1 stream, 2 dead-letter stream, 3 errors (the group's error hash)
-- ARGV: 1 group, 2 consumer, 3 entry id, 4 max deliveries, 5 idle ms to
--       set (claim idle - retry delay), 6 error, 7 traceback, 8 dead-letter
--       cap, 9 at once ('1' to dead-letter now), 10 reason (the failure's: invalid,
--       discarded, transient or error)
-- Returns: 0 not pending on this consumer, 1 left for a retry,
--          2 dead-lettered
--@include bus

local stream, group, consumer, id = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local holder, deliveries = owner(stream, group, id)
if holder ~= consumer then
  return 0
end
if ARGV[9] == '1' or deliveries >= tonumber(ARGV[4]) then
  local entry = redis.call('XRANGE', stream, id, id)[1]
  dead_letter(KEYS[2], tonumber(ARGV[8]), id, entry and entry[2], group, consumer,
              deliveries, ARGV[6], ARGV[7], ARGV[10])
  redis.call('XACK', stream, group, id)
  redis.call('HDEL', KEYS[3], id)
  return 2
end
redis.call('HSET', KEYS[3], id,
  cjson.encode({ error = ARGV[6], traceback = ARGV[7], delivery = deliveries,
                reason = ARGV[10] }))
redis.call('XCLAIM', stream, group, consumer, 0, id, 'IDLE', ARGV[5], 'JUSTID')
return 1
