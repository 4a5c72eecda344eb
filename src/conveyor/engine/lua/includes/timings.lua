-- Timings of completed jobs, for Prometheus histograms: per queue, how long
-- jobs waited (added to started) and ran (started to completed), counted
-- into fixed buckets of a hash `<base>stats` (fields w:<i>, r:<i> per
-- bucket i, w:sum, r:sum in ms). A batch adds each bucket once.
local TIMING_BOUNDS = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000 }

local function timing_bucket(ms)
  for i, bound in ipairs(TIMING_BOUNDS) do
    if ms <= bound then
      return i
    end
  end
  return #TIMING_BOUNDS + 1
end

-- timing_add(acc, created, started, now): counts one completed job.
local function timing_add(acc, created, started, now)
  if not created or not started then
    return
  end
  local waited, ran = math.max(0, started - created), math.max(0, now - started)
  local w, r = 'w:' .. timing_bucket(waited), 'r:' .. timing_bucket(ran)
  acc[w] = (acc[w] or 0) + 1
  acc[r] = (acc[r] or 0) + 1
  acc['w:sum'] = (acc['w:sum'] or 0) + waited
  acc['r:sum'] = (acc['r:sum'] or 0) + ran
end

-- timing_flush(stats_key, acc): writes a batch's counts.
local function timing_flush(stats_key, acc)
  for field, n in pairs(acc) do
    redis.call('HINCRBY', stats_key, field, n)
  end
end
