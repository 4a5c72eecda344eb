-- A job's data in its hash. Redis keeps a small hash in a compact listpack
-- (about a third of the memory of its hashtable form) only while every
-- value is at most 64 bytes (hash-max-listpack-value). So data of up to
-- DATA_SPLIT bytes is stored as chunks of DATA_CHUNK bytes: the first in
-- 'data', the others in 'd2', 'd3'..., their count in 'dn' (absent: all
-- of it is in 'data'). Longer data stays whole in 'data': the hash is a
-- hashtable anyway, and chunks would only add to it.
local DATA_CHUNK = 64
local DATA_SPLIT = 4096

-- data_fields(fields, data): appends the field, value pairs for `data`.
local function data_fields(fields, data)
  local n = #data
  if n <= DATA_CHUNK or n > DATA_SPLIT then
    fields[#fields + 1] = 'data'
    fields[#fields + 1] = data
    return
  end
  local count = math.ceil(n / DATA_CHUNK)
  fields[#fields + 1] = 'data'
  fields[#fields + 1] = string.sub(data, 1, DATA_CHUNK)
  for i = 2, count do
    fields[#fields + 1] = 'd' .. i
    fields[#fields + 1] = string.sub(data, (i - 1) * DATA_CHUNK + 1, i * DATA_CHUNK)
  end
  fields[#fields + 1] = 'dn'
  fields[#fields + 1] = count
end

-- whole_data(jk, first, dn): the data from its first chunk and 'dn'.
local function whole_data(jk, first, dn)
  local count = tonumber(dn)
  if not count or not first then
    return first
  end
  local names = {}
  for i = 2, count do names[#names + 1] = 'd' .. i end
  local rest = redis.call('HMGET', jk, unpack(names))
  for i = 1, #rest do
    if not rest[i] then
      return first .. table.concat(rest, '', 1, i - 1)
    end
  end
  return first .. table.concat(rest)
end

-- drop_data(jk): deletes the chunk fields (before the data is replaced).
local function drop_data(jk)
  local count = tonumber(redis.call('HGET', jk, 'dn'))
  if not count then
    return
  end
  local names = { 'dn' }
  for i = 2, count do names[#names + 1] = 'd' .. i end
  redis.call('HDEL', jk, unpack(names))
end
