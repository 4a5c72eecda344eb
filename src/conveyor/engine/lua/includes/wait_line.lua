-- The line: waiting ungrouped jobs of the default priority, in a list
-- `<base>line` (about 15 bytes a job, where a sorted set takes about 100);
-- jobs of every other priority wait in the wait zset. An element is
-- '<n>:<id>', n the job's signed sequence number (negative: put at the
-- front), so its wait score is known without storing one:
-- PRIO_DEFAULT * PRIO_STEP + SEQ_MID + n. The list stays in score order:
-- front jobs are pushed on the left, newest first, the others appended.
-- The job's hash keeps n in 'sq', to find its element when it is removed.
--@include wait_score
--@include chunked

local LINE_CUT = PRIO_DEFAULT * PRIO_STEP  -- scores below: a higher priority

-- line_key(wait_key): the line beside the wait zset `<base>wait`.
local function line_key(wait_key)
  return string.sub(wait_key, 1, -5) .. 'line'
end

local function line_id(item)
  return string.sub(item, string.find(item, ':', 1, true) + 1)
end

local function line_score(item)
  return LINE_CUT + SEQ_MID + tonumber(string.sub(item, 1, string.find(item, ':', 1, true) - 1))
end

-- line_item(score, id): the line's element for a job of this wait score,
-- and its signed sequence n; nil when the score is of another priority.
local function line_item(score, id)
  if score < LINE_CUT or score >= LINE_CUT + PRIO_STEP then
    return nil
  end
  local n = string.format('%d', score - LINE_CUT - SEQ_MID)
  return n .. ':' .. id, n
end

-- wait_put(wait_key, jk, score, id): puts job `id` (hash `jk`) in line at
-- its wait score: in the line at the default priority, else in the zset.
-- With `jk` nil the hash's 'sq' is left to the caller (insert_job sets it).
local function wait_put(wait_key, jk, score, id)
  local item, n = line_item(score, id)
  if not item then
    redis.call('ZADD', wait_key, score, id)
    return
  end
  if tonumber(n) < 0 then
    redis.call('LPUSH', line_key(wait_key), item)
  else
    redis.call('RPUSH', line_key(wait_key), item)
  end
  if jk then
    redis.call('HSET', jk, 'sq', n)
  end
end

-- wait_put_all(wait_key, pairs): wait_put for a flat list of score, id
-- pairs of new jobs in score order (a bulk add; insert_job set each 'sq'):
-- the sorted set's and the line's appended in chunks.
local function wait_put_all(wait_key, pairs)
  local zset, line = {}, {}
  for i = 1, #pairs, 2 do
    local score, id = pairs[i], pairs[i + 1]
    local item, n = line_item(score, id)
    if not item then
      zset[#zset + 1] = score
      zset[#zset + 1] = id
    elseif tonumber(n) < 0 then
      wait_put(wait_key, nil, score, id)
    else
      line[#line + 1] = item
    end
  end
  call_chunked({ 'ZADD', wait_key }, zset)
  call_chunked({ 'RPUSH', line_key(wait_key) }, line)
end

-- wait_remove(wait_key, jk, id): takes job `id` out of the zset or the
-- line, wherever it waits. Returns whether it was there.
local function wait_remove(wait_key, jk, id)
  if redis.call('ZREM', wait_key, id) == 1 then
    return true
  end
  local n = redis.call('HGET', jk, 'sq')
  return n ~= false and redis.call('LREM', line_key(wait_key), 1, n .. ':' .. id) == 1
end

-- wait_count(wait_key): how many jobs wait (ungrouped).
local function wait_count(wait_key)
  return redis.call('ZCARD', wait_key) + redis.call('LLEN', line_key(wait_key))
end

-- wait_take(wait_key, below, need): takes up to `need` waiting jobs off
-- the front, in score order, only those scored below `below` (a number;
-- nil: any). Returns their ids.
local function wait_take(wait_key, below, need)
  local ids = {}
  local zsize = redis.call('ZCARD', wait_key)
  local function from_zset(limit)
    local got = redis.call('ZRANGEBYSCORE', wait_key, '-inf', limit, 'LIMIT', 0, need - #ids)
    if #got > 0 then
      call_chunked({ 'ZREM', wait_key }, got)
      for _, id in ipairs(got) do ids[#ids + 1] = id end
    end
  end
  if zsize > 0 then
    local cut = LINE_CUT
    if below and below < cut then cut = below end
    from_zset(string.format('(%d', cut))
    if #ids >= need or (below and below <= LINE_CUT) then
      return ids
    end
  end
  local line = line_key(wait_key)
  local items
  if below == nil then
    items = redis.call('LPOP', line, need - #ids) or {}
  else
    items = redis.call('LRANGE', line, 0, need - #ids - 1)
    local k = 0
    for i, item in ipairs(items) do
      if line_score(item) < below then k = i else break end
    end
    if k > 0 then
      redis.call('LTRIM', line, k, -1)
    end
    for i = #items, k + 1, -1 do items[i] = nil end
  end
  for _, item in ipairs(items) do ids[#ids + 1] = line_id(item) end
  if #ids < need and zsize > 0 then
    from_zset(below and string.format('(%d', below) or '+inf')
  end
  return ids
end
