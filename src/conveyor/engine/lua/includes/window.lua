-- A sliding-window log of starts, exact in every window of `dur` ms: a
-- zset holds one member per recorded batch (score: its time, member:
-- "<time>:<n>:<used before>", unique) and a counter holds the starts still
-- inside the window. An entry leaves the window once now >= its time + dur.
-- Both keys expire after a window of silence.

-- window_count(zkey): the starts the log holds (its members' n).
local function window_count(zkey)
  local n = 0
  for _, member in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
    n = n + (tonumber(string.match(member, '^%-?%d+:(%d+):')) or 0)
  end
  return n
end

-- window_room(zkey, nkey, now, max, dur): starts still allowed now.
-- The two keys get the same time to live, but each expiry is rounded to
-- its own millisecond: for a millisecond one may be gone and the other
-- not. The log is the truth: no log, nothing in the window (a count left
-- over is dropped); a log without its count is counted again.
local function window_room(zkey, nkey, now, max, dur)
  local cutoff = now - dur
  local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', cutoff)
  if #old > 0 then
    local freed = 0
    for _, member in ipairs(old) do
      freed = freed + (tonumber(string.match(member, '^%-?%d+:(%d+):')) or 0)
    end
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', cutoff)
    if redis.call('EXISTS', nkey) == 1 then
      redis.call('DECRBY', nkey, freed)
    end
  end
  if redis.call('EXISTS', zkey) == 0 then
    redis.call('DEL', nkey)
    return max
  end
  local n = tonumber(redis.call('GET', nkey))
  if n == nil then
    n = window_count(zkey)
    redis.call('SET', nkey, n, 'PX', dur)
  end
  return max - n
end

-- window_record(zkey, nkey, now, dur, n): records n starts at now.
local function window_record(zkey, nkey, now, dur, n)
  local used = tonumber(redis.call('GET', nkey)) or 0
  redis.call('ZADD', zkey, now, now .. ':' .. n .. ':' .. used)
  redis.call('INCRBY', nkey, n)
  redis.call('PEXPIRE', zkey, dur)
  redis.call('PEXPIRE', nkey, dur)
end

-- window_free_at(zkey, dur): when the oldest entry leaves the window.
local function window_free_at(zkey, dur)
  local head = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
  if #head == 0 then
    return 0
  end
  return tonumber(head[2]) + dur
end
