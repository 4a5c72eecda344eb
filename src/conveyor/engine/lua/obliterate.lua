-- obliterate: deletes a queue's jobs and keys, up to `limit` jobs per call
-- (call again while it returns a positive number). Refuses while jobs are
-- active unless forced.
-- KEYS: 1 active, then the queue's state zsets (wait first: its line is
--   emptied with it), then its other keys
-- ARGV: 1 job key prefix, 2 logs prefix, 3 limit, 4 force ('1'/'0'),
--       5 number of state zsets (KEYS[2..])
-- Returns: jobs deleted in this call (0 when done), or -4 if jobs are active
--@include remove_job_keys
--@include wait_line

local limit = tonumber(ARGV[3])
if ARGV[4] ~= '1' and redis.call('ZCARD', KEYS[1]) > 0 then
  return -4
end
local nsets = tonumber(ARGV[5])
local deleted = 0
local line = line_key(KEYS[2])
while deleted < limit do
  local items = redis.call('LRANGE', line, 0, 499)
  if #items == 0 then break end
  for _, item in ipairs(items) do
    remove_job_keys(ARGV[1], ARGV[2], line_id(item))
  end
  redis.call('LTRIM', line, #items, -1)
  deleted = deleted + #items
end
for i = 1, nsets + 1 do
  while deleted < limit do
    local ids = redis.call('ZRANGE', KEYS[i], 0, 499)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      remove_job_keys(ARGV[1], ARGV[2], id)
    end
    redis.call('ZREMRANGEBYRANK', KEYS[i], 0, #ids - 1)
    deleted = deleted + #ids
  end
end
if deleted < limit then
  for i = nsets + 2, #KEYS do
    redis.call('DEL', KEYS[i])
  end
end
return deleted
