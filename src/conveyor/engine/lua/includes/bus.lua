-- Event bus helpers (streams with consumer groups).
-- field(fields, name): a field's value in a flat {k1, v1, k2, v2...} entry.
local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then
      return fields[i + 1]
    end
  end
  return nil
end

-- xadd(key, cap, how, fields): appends an entry of flat `fields` to stream
-- `key`, capped at `cap` entries ('~' approximately, '=' exactly; 0 = no
-- cap); returns its id.
local function xadd(key, cap, how, fields)
  local args = { 'XADD', key }
  if cap > 0 then
    args[#args + 1] = 'MAXLEN'
    args[#args + 1] = how
    args[#args + 1] = cap
  end
  args[#args + 1] = '*'
  for _, v in ipairs(fields) do
    args[#args + 1] = v
  end
  return redis.call(unpack(args))
end

-- dead_letter(dead, cap, id, fields, group, consumer, deliveries, err, tb,
-- reason): appends the entry `id` (its type, data, replay count and first
-- id, when the stream still holds them) to the dead-letter stream, capped approximately at `cap`
-- (0 = none). `reason` is one of invalid, discarded, transient, error,
-- unfinished, trimmed.
local function dead_letter(dead, cap, id, fields, group, consumer, deliveries, err, tb, reason)
  local entry = { 'event', id, 'group', group, 'consumer', consumer,
                  'deliveries', deliveries, 'error', err, 'traceback', tb,
                  'reason', reason }
  local etype = fields and field(fields, 'type')
  local data = fields and field(fields, 'data')
  for _, name in ipairs({ 'replays', 'origin' }) do
    local value = fields and field(fields, name)
    if value then
      entry[#entry + 1] = name
      entry[#entry + 1] = value
    end
  end
  if etype then
    entry[#entry + 1] = 'type'
    entry[#entry + 1] = etype
  end
  if data then
    entry[#entry + 1] = 'data'
    entry[#entry + 1] = data
  end
  return xadd(dead, cap, '~', entry)
end

-- owner(stream, group, id): the consumer holding pending entry `id` and its
-- delivery count, or nil when the entry is not pending.
local function owner(stream, group, id)
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  if #p == 0 then
    return nil, 0
  end
  return p[1][2], tonumber(p[1][4])
end
