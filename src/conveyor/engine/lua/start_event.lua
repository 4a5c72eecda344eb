-- start_event: counts the start of a handler on an entry this consumer
-- claimed, and gives the entry; or, when the entry has already been started
-- `max deliveries` times, moves it to the dead-letter stream instead (with
-- the last recorded error, or a note that its consumers never finished it).
-- Guarantees: acts only while the entry is pending on this consumer; an
-- entry is started at most `max deliveries` times; XADD to the dead-letter
-- stream and XACK happen in one step.
-- KEYS: 1 stream, 2 dead-letter stream, 3 errors (the group's error hash)
-- ARGV: 1 group, 2 consumer, 3 entry id, 4 max deliveries, 5 dead-letter cap
-- Returns: by its first value: {0} not pending on this consumer; {1, deliveries, fields} start
--          it; {2, type or '', error, reason} dead-lettered
--@include bus

local stream, group, consumer, id = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local holder, deliveries = owner(stream, group, id)
if holder ~= consumer then
  return { 0 }
end
local entry = redis.call('XRANGE', stream, id, id)[1]
local err, tb, reason
if not entry then
  err, tb, reason = 'trimmed from the stream before the group acknowledged it', '', 'trimmed'
elseif deliveries >= tonumber(ARGV[4]) then
  err = 'started ' .. deliveries .. ' times without finishing'
    .. ' (its consumers crashed, froze or were cut off)'
  tb, reason = '', 'unfinished'
  local last = redis.call('HGET', KEYS[3], id)
  if last then
    local d = cjson.decode(last)
    if tonumber(d['delivery']) == deliveries then
      err, tb, reason = d['error'], d['traceback'], d['reason'] or 'error'
    end
  end
end
if err then
  local fields = entry and entry[2]
  dead_letter(KEYS[2], tonumber(ARGV[5]), id, fields, group, consumer, deliveries, err, tb,
              reason)
  redis.call('XACK', stream, group, id)
  redis.call('HDEL', KEYS[3], id)
  return { 2, fields and field(fields, 'type') or '', err, reason }
end
-- JUSTID alone leaves the count as it is; RETRYCOUNT counts this start.
redis.call('XCLAIM', stream, group, consumer, 0, id, 'RETRYCOUNT', deliveries + 1, 'JUSTID')
return { 1, deliveries + 1, entry[2] }
