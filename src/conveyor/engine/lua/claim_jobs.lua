-- claim_jobs: promotes due delayed jobs, then moves up to `count` waiting
-- jobs to active under fresh lock tokens (see includes/claim.lua).
-- Guarantees: a claimed job is in active only, with a lease deadline; a
-- paused queue yields nothing.
-- KEYS: 1 wait, 2 active, 3 marker, 4 meta, 5 delayed, 6 seq counter
-- ARGV: 1 job key prefix, 2 now, 3 count, 4 lock ms, 5 worker id
-- Returns: msgpack { now, next delayed due time or -1, {}, claimed rows }
--@include now
--@include wait_score
--@include enqueue_waiting
--@include promote_delayed
--@include claim

local prefix = ARGV[1]
local now = now_ms(ARGV[2])
promote_delayed(KEYS[5], KEYS[1], KEYS[6], prefix, now, 1000)
local jobs = {}
claim({ KEYS[1], KEYS[2], KEYS[3], KEYS[4] }, prefix, now, tonumber(ARGV[3]),
  tonumber(ARGV[4]), ARGV[5], jobs)
local next_due = -1
local head = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
if #head > 0 then
  next_due = tonumber(head[2])
end
return cmsgpack.pack({ now, next_due, {}, jobs })
