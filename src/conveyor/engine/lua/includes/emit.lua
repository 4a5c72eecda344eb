-- Queue events: every transition appends one entry to the queue's stream
-- `<base>events`, capped (approximately) at the meta field 'events-max'
-- (default 10,000). Entries of a batch transition hold all its jobs.
-- Entry ids count events: an entry holding k jobs gets id `<last>-0`, where
-- `last` is the ordinal of its last job event (counter `<base>events:seq`),
-- so a consumer knows exactly how many events a trimmed range held.
-- Fields: e (event name), jobs (JSON array of ids), t (ms), then extras.
--@include base
--@include num_text

-- events_key(prefix): the stream key from a job key prefix (`<base>job:`).
local function events_key(prefix)
  return queue_base(prefix) .. 'events'
end

local events_cap = nil

-- emit(stream, now, name, ids, extra): appends one entry for `ids`
-- (nothing for an empty list); `extra` is a flat list of field, value.
local function emit(stream, now, name, ids, extra)
  local k = #ids
  if k == 0 then
    return
  end
  local base = string.sub(stream, 1, -7)
  if events_cap == nil then
    -- a count, as set_events_max writes it; a value written by hand that
    -- is no whole number (NaN, inf, 12.5, text) is the default, rather than
    -- an XADD that fails the transition after its writes
    local cap = tonumber(redis.call('HGET', base .. 'meta', 'events-max'))
    if not cap or cap ~= cap or cap ~= math.floor(cap) or cap == math.huge or cap == -math.huge then
      cap = 10000
    end
    events_cap = cap
  end
  if events_cap <= 0 then
    return
  end
  local last = redis.call('INCRBY', stream .. ':seq', k)
  local args = { 'XADD', stream, 'MAXLEN', '~', num_text(events_cap), num_text(last) .. '-0',
    'e', name, 'jobs', cjson.encode(ids), 't', num_text(now) }
  if extra then
    for i = 1, #extra do
      args[#args + 1] = extra[i]
    end
  end
  local ok = redis.pcall(unpack(args))
  if type(ok) == 'table' and ok.err then
    -- The counter fell behind the stream (a key deleted by hand): resync it
    -- rather than fail the transition this event belongs to.
    local top = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
    last = tonumber(string.match(top[1][1], '^(%d+)')) + k
    redis.call('SET', stream .. ':seq', last)
    args[6] = num_text(last) .. '-0'
    redis.call(unpack(args))
  end
end
