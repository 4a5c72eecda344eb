-- read_job_fields: some fields of many jobs in one call (a reader that
-- needs a few fields of thousands of jobs, such as the archive, without a
-- reply per job). Reads only; a job that no longer exists gives an empty
-- list.
-- KEYS: the jobs' hashes (one hash tag: one queue)
-- ARGV: the fields
-- Returns: per job, its fields' values in ARGV's order (false where unset),
--          or an empty list for a job that does not exist
-- Events: none

local out = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    out[i] = redis.call('HMGET', KEYS[i], unpack(ARGV))
  else
    out[i] = {}
  end
end
return out
