-- claim_call: the claiming half of finish_jobs and claim_jobs, which take
-- the same KEYS and ARGV (see finish_jobs). With ARGV[4] (claim count)
-- above 0 it claims up to that many jobs for worker ARGV[6] under call id
-- ARGV[8], or, for a resend of the call (the claims hash holds the call's
-- record and it has not lapsed), returns the jobs that call claimed, those
-- still held under its tokens. A call that claimed jobs writes its record
-- to the field '<worker id>|<call id>' (see claim_records) and deletes the
-- one of the worker's call CLAIM_KEPT numbers before it (call ids
-- '<tag>:<n>'), so each call is found by its own field, whatever the
-- worker's other calls did in between (a ride and a claim of the same
-- worker may both be out when the ride's reply is lost), without reading
-- or rewriting the others. With 0 and `freed` (the call released slots) it
-- wakes a worker blocked on the marker if a slot opened for a waiting job.
-- Returns: jobs (rows as claim's: { id, token, attempts started, name,
-- data, opts, attempts made, created at }), held until (0: not held), jobs
-- waiting for their group's turn (counted when the claim fell short).
--@include wait_score
--@include enqueue_waiting
--@include promote_delayed
--@include window
--@include claim
--@include num_text

-- A worker's records are kept for its last CLAIM_KEPT calls (by number).
local CLAIM_KEPT = 16

local function claim_call(prefix, now, freed)
  local jobs = {}
  local count = tonumber(ARGV[4])
  local ckeys = { KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[9], KEYS[10] }
  local held = 0
  local call = ARGV[8]
  local field = ARGV[6] .. '|' .. call
  local record = count > 0 and redis.call('HGET', KEYS[11], field)
  if record then
    record = cmsgpack.unpack(record)
    if record[3] <= now then
      record = nil
    end
  end
  if record then
    -- a resend of this call: the jobs it claimed, those still held under its tokens
    for _, id in ipairs(record[2]) do
      local f = redis.call('HMGET', prefix .. id, 'name', 'data', 'opts', 'atm', 'ts', 'ats', 'tk', 'st', 'dn')
      if f[8] == 'active' and f[7] == f[6] .. ':' .. ARGV[6] then
        if f[9] then
          f[2] = whole_data(prefix .. id, f[2], f[9])
        end
        jobs[#jobs + 1] = { id, f[7], tonumber(f[6]), f[1] or '', f[2] or '', f[3] or '',
          tonumber(f[4]) or 0, tonumber(f[5]) or 0 }
      end
    end
  elseif count > 0 then
    promote_delayed(KEYS[5], KEYS[1], KEYS[6], prefix, now, 1000)
    local _
    _, held = claim(ckeys, prefix, now, count, tonumber(ARGV[5]), ARGV[6], jobs)
    if #jobs > 0 then
      local ids = {}
      for i, row in ipairs(jobs) do ids[i] = row[1] end
      redis.call('HSET', KEYS[11], field, cmsgpack.pack({ call, ids, now + tonumber(ARGV[5]) }))
      local tag, n = string.match(call, '^(.*):(%d+)$')
      if n and tonumber(n) > CLAIM_KEPT then
        redis.call('HDEL', KEYS[11], ARGV[6] .. '|' .. tag .. ':' .. num_text(tonumber(n) - CLAIM_KEPT))
      end
    end
  elseif freed then
    wake_for_slot(ckeys, prefix)
  end
  local grouped = 0
  if #jobs < count then
    grouped = tonumber(redis.call('GET', queue_base(prefix) .. 'groups:waiting')) or 0
  end
  return jobs, held, grouped
end
