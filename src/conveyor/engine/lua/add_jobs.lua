-- add_jobs: adds one or more jobs atomically (add_job.lua is the lean
-- single-job twin).
-- Guarantees: a job id that already exists is left untouched and reported
-- as not created (idempotent ids); each new job is in exactly one of wait or
-- delayed; idle workers are woken through the marker.
-- KEYS: 1 wait (and its line, see wait_line), 2 delayed, 3 marker, 4 id counter, 5 seq counter
-- ARGV: 1 job key prefix, 2 now ('' = Redis TIME), 3 rows (msgpack array:
--       { id ('' = next auto id), name, data, opts, priority, lifo (0/1),
--         delay: ms relative, or -(absolute ms) for run_at, or 0,
--         dedup key ('' none), dedup ttl ms, debounce (0/1), group ('' none) })
-- Returns: msgpack { now, jobs (per job: { id, created (1, 0 or 2 as in add_job) }) }
-- Events: added (the waiting jobs), delayed (field due: a JSON array),
--   deduplicated and debounced (as in add_job)
--@include chunked
--@include now
--@include wait_score
--@include insert_job
--@include emit
--@include dedup_add

local prefix = ARGV[1]
local now = now_ms(ARGV[2])
local rows = cmsgpack.unpack(ARGV[3])
local autos = 0
for _, row in ipairs(rows) do
  if row[1] == '' then autos = autos + 1 end
end
local next_auto = 0
if autos > 0 then
  next_auto = redis.call('INCRBY', KEYS[4], autos) - autos
end
local seq = redis.call('INCRBY', KEYS[5], #rows) - #rows
local out = {}
local waiting = {}
local delayed = {}
local woken = false
local grouped = {}
for i, row in ipairs(rows) do
  local id = row[1]
  local created = 1
  if id == '' then
    next_auto = next_auto + 1
    id = string.format('%d', next_auto)
  elseif redis.call('EXISTS', prefix .. id) == 1 then
    created = 0
  end
  local dk = row[8]
  if created == 1 and dk ~= '' then
    local found, code = dedup_add(prefix, now, { KEYS[1], KEYS[2], KEYS[5] }, dk, row[9], row[10],
      row[2], row[3], row[4], row[5], row[6], row[7], row[11])
    if found then
      id, created = found, code
      if code == 2 then woken = true end
    end
  end
  if created == 1 then
    if insert_job(prefix, now, seq + i, id, row[2], row[3], row[4], row[5], row[6], row[7],
      waiting, delayed, row[11]) == 'g' then
      grouped[#grouped + 1] = id
    end
    if dk ~= '' then
      hold_dedup(prefix, dk, id, row[9])
    end
  end
  out[i] = { id, created }
end
local stream = events_key(prefix)
if #waiting > 0 then
  wait_put_all(KEYS[1], waiting)
  local ids = {}
  for i = 2, #waiting, 2 do ids[#ids + 1] = waiting[i] end
  emit(stream, now, 'added', ids)
end
emit(stream, now, 'added', grouped)
if #delayed > 0 then
  call_chunked({ 'ZADD', KEYS[2] }, delayed)
  local ids, due = {}, {}
  for i = 2, #delayed, 2 do
    ids[#ids + 1] = delayed[i]
    due[#due + 1] = delayed[i - 1]
  end
  emit(stream, now, 'delayed', ids, { 'due', cjson.encode(due) })
end
if #waiting > 0 or #delayed > 0 or #grouped > 0 or woken then
  redis.call('ZADD', KEYS[3], '0', '0')
end
return cmsgpack.pack({ now, out })
