-- The claims hash: a field '<worker id>|<call id>' per call that claimed
-- jobs, holding the msgpack record { call id, job ids, valid until } (see
-- claim_call; recover_stalled prunes lapsed fields). Older versions wrote
-- one field per worker, named by its id: the same bare record, or a list
-- of them, oldest first.
-- claim_records(raw): the records of a claims field, oldest first; one
-- bare record reads as a list of one.
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
