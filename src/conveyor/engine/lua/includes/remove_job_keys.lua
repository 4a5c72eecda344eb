-- remove_job_keys(prefix, logs_prefix, id): deletes a job's hash, logs and
-- flow bookkeeping (pending children, their outcomes), and frees its dedup
-- key. Needs the dedup include.
--@include dedup
local function remove_job_keys(prefix, logs_prefix, id)
  release_dedup(prefix, id, redis.call('HGET', prefix .. id, 'dk'))
  local base = queue_base(prefix)
  redis.call('DEL', prefix .. id, logs_prefix .. id, base .. 'deps:' .. id, base .. 'kids:' .. id)
end
