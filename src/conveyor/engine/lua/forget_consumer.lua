-- forget_consumer: removes a consumer from a group once it holds nothing.
-- Guarantees: a consumer with pending entries is never removed (XGROUP
-- DELCONSUMER would drop its entries from the group's pending list).
-- KEYS: 1 stream
-- ARGV: 1 group, 2 consumer
-- Returns: 1 removed, 0 kept (it still holds entries)

if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
