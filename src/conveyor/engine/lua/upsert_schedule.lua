-- upsert_schedule: creates or updates a schedule by key. Upserting the same
-- spec again (from any number of processes) changes nothing, so its next
-- run stays; a changed spec takes the next run computed for it.
-- KEYS: 1 schedules (key -> spec JSON), 2 next runs (zset key -> ms)
-- ARGV: 1 key, 2 spec, 3 next run ms (-1: none left)
-- Returns: { changed (1 or 0), next run ms or -1 }
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old == ARGV[2] then
  local at = redis.call('ZSCORE', KEYS[2], ARGV[1])
  return { 0, at and tonumber(at) or -1 }
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local at = tonumber(ARGV[3])
if at >= 0 then
  redis.call('ZADD', KEYS[2], at, ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return { 1, at }
