-- remove_job_keys(prefix, logs_prefix, id): deletes a job's hash and logs
-- (and frees its dedup key). Needs the dedup include.
--@include dedup
local function remove_job_keys(prefix, logs_prefix, id)
  release_dedup(prefix, id, redis.call('HGET', prefix .. id, 'dk'))
  redis.call('DEL', prefix .. id, logs_prefix .. id)
end
