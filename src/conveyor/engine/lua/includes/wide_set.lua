-- The active set (leases) in Redis's skiplist encoding. Redis keeps a
-- sorted set of up to 128 members (zset-max-listpack-entries) as one
-- listpack, where each ZADD or ZREM scans the whole set: a worker's batch
-- of 50 leases into a set of 100 then costs more than the rest of its
-- claim. Redis switches a set to a skiplist when a member longer than 64
-- bytes (zset-max-listpack-value) arrives, and does not switch it back
-- while the set exists. So a claim that would grow a listpack set to
-- WIDE_FROM leases or more adds such a member before its leases and
-- removes it after, in the same script: no reader ever sees it. The
-- member starts with 'repeat:' and ends with ':', which no job id can (ids
-- starting with 'repeat:' are schedule ticks, which end in digits); were
-- it ever left behind, its score of 0 is past every lease, and the stalled
-- check drops it (no job hash). A Redis that refuses OBJECT keeps the
-- listpack.
local WIDE_PROBE = 'repeat:' .. string.rep('~', 64) .. ':'
local WIDE_FROM = 32

-- set_widen(key, adding): makes the set at `key` a skiplist if it is (or
-- would be created as) a listpack that `adding` more members would grow
-- to WIDE_FROM or more. Returns true when the caller must call
-- set_unwiden(key) right after its ZADD.
local function set_widen(key, adding)
  local enc = redis.pcall('OBJECT', 'ENCODING', key)
  if enc ~= false and enc ~= 'listpack' and enc ~= 'ziplist' then  -- ziplist: Redis 6.2
    return false
  end
  if adding + (enc and redis.call('ZCARD', key) or 0) < WIDE_FROM then
    return false
  end
  redis.call('ZADD', key, '0', WIDE_PROBE)
  return true
end

local function set_unwiden(key)
  redis.call('ZREM', key, WIDE_PROBE)
end
