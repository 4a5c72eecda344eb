-- remove_job_keys(prefix, logs_prefix, id): deletes a job's hash and logs.
local function remove_job_keys(prefix, logs_prefix, id)
  redis.call('DEL', prefix .. id, logs_prefix .. id)
end
