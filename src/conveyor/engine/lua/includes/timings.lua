-- Timings of completed jobs, for Prometheus histograms: per queue, how long
-- jobs waited (added to started) and ran (started to completed), counted
-- into fixed buckets of a hash `<base>stats` (fields w:<i>, r:<i> per
-- bucket i, w:sum, r:sum in ms). A batch adds each bucket once.
-- The accumulator counts by bucket number; field names are built once per
-- batch, at the flush.
local TIMING_BOUNDS = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000 }
local TIMING_LAST = #TIMING_BOUNDS + 1

local function timing_bucket(ms)
  for i = 1, TIMING_LAST - 1 do
    if ms <= TIMING_BOUNDS[i] then
      return i
    end
  end
  return TIMING_LAST
end

-- timing_new(): an empty accumulator.
local function timing_new()
  return { w = {}, r = {}, ws = 0, rs = 0, n = 0 }
end

-- timing_add(acc, created, started, now): counts one completed job.
local function timing_add(acc, created, started, now)
  if not created or not started then
    return
  end
  local waited, ran = started - created, now - started
  if waited < 0 then waited = 0 end
  if ran < 0 then ran = 0 end
  local w, r = acc.w, acc.r
  local i = timing_bucket(waited)
  w[i] = (w[i] or 0) + 1
  i = timing_bucket(ran)
  r[i] = (r[i] or 0) + 1
  acc.ws = acc.ws + waited
  acc.rs = acc.rs + ran
  acc.n = acc.n + 1
end

-- timing_flush(stats_key, acc): writes a batch's counts.
local function timing_flush(stats_key, acc)
  if acc.n == 0 then
    return
  end
  for prefix, counts in pairs({ ['w:'] = acc.w, ['r:'] = acc.r }) do
    for i = 1, TIMING_LAST do
      if counts[i] then
        redis.call('HINCRBY', stats_key, prefix .. i, counts[i])
      end
    end
  end
  redis.call('HINCRBY', stats_key, 'w:sum', acc.ws)
  redis.call('HINCRBY', stats_key, 'r:sum', acc.rs)
end
