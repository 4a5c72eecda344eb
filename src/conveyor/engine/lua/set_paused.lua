-- set_paused: pauses (workers claim nothing; running jobs finish) or
-- resumes a queue. Resuming wakes idle workers.
-- KEYS: 1 meta, 2 marker
-- ARGV: 1 paused ('1' to pause, '0' to resume)
-- Returns: 1
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'paused', '1')
else
  redis.call('HDEL', KEYS[1], 'paused')
  redis.call('ZADD', KEYS[2], '0', '0')
end
return 1
