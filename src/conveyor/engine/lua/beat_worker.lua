-- beat_worker: records that a worker is alive (its lease thread calls this
-- about once a second), or with an empty info that it stopped. Readers
-- count a worker alive while its last beat is recent (see Queue.workers).
-- KEYS: 1 workers (hash id -> info JSON), 2 beats (zset id -> last beat ms)
-- ARGV: 1 now, 2 worker id, 3 info (JSON; '' = the worker stopped)
-- Returns: the time of the beat
--@include now

local now = now_ms(ARGV[1])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[2], now, ARGV[2])
end
return now
