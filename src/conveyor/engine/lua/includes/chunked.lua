-- call_chunked(head, items): redis.call(head..., items...) a thousand items
-- at a time, summing the integer replies. Lua's unpack stops near 8,000
-- values ("too many results to unpack"), and an error there comes after the
-- script's earlier writes, which Redis does not undo; so every command
-- whose arguments grow with a caller's count goes through this. A thousand
-- is even: (score, member) pairs are never split.
local function call_chunked(head, items)
  local n = 0
  for i = 1, #items, 1000 do
    local args = {}
    for j = 1, #head do
      args[j] = head[j]
    end
    for j = i, math.min(i + 999, #items) do
      args[#args + 1] = items[j]
    end
    n = n + redis.call(unpack(args))
  end
  return n
end
