-- The claims hash: one field per worker, a msgpack list of its last
-- CLAIM_RECORDS calls that claimed jobs, { call id, job ids, valid until },
-- oldest first (see claim_call; recover_stalled prunes lapsed fields).
local CLAIM_RECORDS = 4

-- claim_records(raw): the records of a claims field, oldest first; one
-- bare record, as older versions wrote it, reads as a list of one.
local function claim_records(raw)
  if not raw then
    return {}
  end
  local records = cmsgpack.unpack(raw)
  if type(records[1]) ~= 'table' then
    records = { records }
  end
  return records
end
