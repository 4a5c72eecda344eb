-- claim_jobs: finish_jobs with no outcomes: the claim a worker writes behind
-- its blocking pop (see conveyor.engine.marker), and any claim that has no
-- outcomes to record. The same KEYS, ARGV and reply as finish_jobs, whose
-- call it stands for: a resend with the same call id gets the same jobs
-- back through either script. A script of its own because Redis runs a
-- script's whole chunk on every call: without the functions that record
-- outcomes, a claim for a job that just arrived costs Redis less.
-- KEYS: 1 wait (and its line, see wait_line), 2 active, 3 marker, 4 meta, 5 delayed, 6 seq counter,
--       7 completed, 8 failed, 9 limiter log, 10 limiter count,
--       11 claims (hash: '<worker id>|<call id>' -> msgpack { call id, job ids, valid until })
-- ARGV: 1 job key prefix, 2 logs prefix, 3 now, 4 claim count, 5 lock ms,
--       6 worker id, 7 outcomes (not read: there are none),
--       8 call id ('<tag>:<n>', n counting the worker's calls; unique per
--       call of this worker)
-- Returns: msgpack { now, next due (the next delayed job's due time, a
--          held group's turn, or -1), codes (empty), claimed (rows), held
--          until (0: not held), relay (empty), grouped (jobs waiting for
--          their group's turn, counted when the claim fell short) }
-- Events: those of claiming
--@include now
--@include claim_call
local prefix = ARGV[1]
local now = now_ms(ARGV[3])
local jobs, held, grouped = claim_call(prefix, now, false)
return cmsgpack.pack({ now, next_turn(KEYS[5], prefix), {}, jobs, held, {}, grouped })
