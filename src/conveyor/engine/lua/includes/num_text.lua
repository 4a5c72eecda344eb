-- num_text(n): an integer as the decimal text Redis would store for it,
-- formatted once per script call. A number passed to redis.call is
-- formatted by Redis with "%.17g", and one joined with `..` by Lua with
-- "%.14g"; both go through the C library's floating-point printer, which
-- costs more than the command itself for a timestamp or a lease deadline.
-- A batch passes the same few numbers (now, a deadline, a keep age) for
-- every job, so each is formatted once, as an integer. Numbers that are not
-- integers below 2^53 keep "%.17g", as redis.call would format them.
local NUM_TEXT = {}
local function num_text(n)
  local s = NUM_TEXT[n]
  if s == nil then
    if n == math.floor(n) and n > -9007199254740992 and n < 9007199254740992 then
      s = string.format('%d', n)
    else
      s = string.format('%.17g', n)
    end
    if n == n then  -- NaN cannot be a table key
      NUM_TEXT[n] = s
    end
  end
  return s
end

-- num_of(text): the number a stored decimal text holds (nil for none),
-- each distinct text parsed once per script call: jobs of one batch share
-- their created and started times.
local NUM_OF = {}
local function num_of(text)
  if not text then
    return nil
  end
  local n = NUM_OF[text]
  if n == nil then
    n = tonumber(text)
    NUM_OF[text] = n
  end
  return n
end

-- count_of(text): a stored limit (a count, a window, a time in ms) as a
-- whole number of at least 1, or nil: missing, or written by hand as
-- anything but decimal digits (NaN, inf, a fraction, a sign, 1e3), or 0,
-- which then counts as unset, as the queue's limits() reports it.
local function count_of(text)
  if text and string.match(text, '^%d+$') then
    local n = tonumber(text)
    if n >= 1 then
      return n
    end
  end
  return nil
end

-- pair_of(a, b): two counts that only mean something together (a rate's
-- jobs and window); both nil unless both are counts.
local function pair_of(a, b)
  a, b = count_of(a), count_of(b)
  if a and b then
    return a, b
  end
  return nil, nil
end
