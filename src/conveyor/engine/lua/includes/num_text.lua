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
    NUM_TEXT[n] = s
  end
  return s
end
