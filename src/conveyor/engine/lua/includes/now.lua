-- now(arg): the current time in milliseconds. An injected clock passes it as
-- an argument; otherwise Redis TIME is used, so every process agrees on one
-- clock whatever the skew between worker machines.
local function now_ms(arg)
  if arg and arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
