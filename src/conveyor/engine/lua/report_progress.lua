-- report_progress: records the latest status of a subject (an import, a
-- job, anything long-running) and publishes it.
-- Guarantees: stage timings survive concurrent reporters (the merge happens
-- here, atomically); a finished subject leaves the active index; the status
-- expires `retention` ms after its last update.
-- KEYS: 1 status key, 2 active index (zset: subject -> updated at)
-- ARGV: 1 subject, 2 stage, 3 percent (0-100), 4 message, 5 extra (JSON
--       object), 6 job id ('' none), 7 now ('' = Redis TIME), 8 retention ms,
--       9 channel, 10 finished ('1' when this report ends the subject),
--       11 options: 'r' restarts the subject (a new run: the stored status
--       is dropped), 'm' keeps percent from going down while the subject
--       runs, 'x' merges extra into the stored extra (concurrent reporters
--       each keep their own keys)
-- Returns: the status JSON that was stored and published
--@include now

local now = now_ms(ARGV[7])
local options = ARGV[11] or ''
local status = {}
local raw = redis.call('GET', KEYS[1])
if raw and not string.find(options, 'r', 1, true) then
  status = cjson.decode(raw)
end
local running = status['stage'] ~= nil and not status['finished']
local stage = ARGV[2]
local stages = status['stages'] or {}
local order = status['order'] or {}
if status['stage'] ~= stage then
  local previous = status['stage'] and stages[status['stage']]
  if previous and previous['ended_at'] == nil then
    previous['ended_at'] = now
  end
  if stages[stage] == nil then
    stages[stage] = { started_at = now }
    order[#order + 1] = stage
  end
end
local percent = tonumber(ARGV[3])
if running and string.find(options, 'm', 1, true) and tonumber(status['percent']) > percent then
  percent = tonumber(status['percent'])
end
local extra = cjson.decode(ARGV[5])
if running and string.find(options, 'x', 1, true) and type(status['extra']) == 'table' then
  for k, v in pairs(extra) do
    status['extra'][k] = v
  end
  extra = status['extra']
end
local started = status['started_at'] or now
local eta = cjson.null
if percent > 0 and percent < 100 then
  eta = math.floor((now - started) * (100 - percent) / percent) / 1000
elseif percent >= 100 then
  eta = 0
end
local finished = ARGV[10] == '1'
if finished and stages[stage]['ended_at'] == nil then
  stages[stage]['ended_at'] = now
end
status = {
  subject = ARGV[1], stage = stage, percent = percent, message = ARGV[4],
  extra = extra, job_id = (ARGV[6] ~= '' and ARGV[6]) or status['job_id'] or cjson.null,
  stages = stages, order = order, started_at = started, updated_at = now,
  eta_seconds = eta, finished = finished,
}
local out = cjson.encode(status)
redis.call('SET', KEYS[1], out, 'PX', tonumber(ARGV[8]))
if finished then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], now, ARGV[1])
end
redis.call('PUBLISH', ARGV[9], out)
return out
