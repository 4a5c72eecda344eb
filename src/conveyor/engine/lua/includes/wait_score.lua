-- wait_score(seq_key, priority, front): the score of a job in the wait zset.
-- Lower priority numbers run first. Within one priority, FIFO jobs count up
-- from 2^41 and front-of-line jobs (lifo, handed back, recovered) count down
-- from it, so both orders hold in one ZPOPMIN. 1023 * 2^42 + 2^42 < 2^53, so
-- every score is an exact integer in a double.
local SEQ_MID = 2199023255552     -- 2^41
local PRIO_STEP = 4398046511104   -- 2^42
local PRIO_DEFAULT = 200           -- Priority.NORMAL: a job hash without 'pr' has it
local function wait_score(seq_key, priority, front)
  local n = redis.call('INCR', seq_key)
  if front then
    return priority * PRIO_STEP + SEQ_MID - n
  end
  return priority * PRIO_STEP + SEQ_MID + n
end
