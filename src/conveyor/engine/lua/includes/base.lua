-- queue_base(prefix): a queue's key base `<prefix>:{<queue>}:` from its job
-- key prefix `<base>job:`; scripts reach the queue's other keys from it
-- (all in the queue's hash slot).
local function queue_base(prefix)
  return string.sub(prefix, 1, -5)
end
