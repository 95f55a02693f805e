--[[
  Compare-and-set of one document: stores the new JSON only if the current JSON is still the
  one the caller read. The caller re-reads and retries on conflict, so concurrent updates
  from several workers all land.

  Input:
    KEYS[1] collection hash (id -> JSON)
    ARGV[1] document id
    ARGV[2] JSON the caller read
    ARGV[3] new JSON

  Output:
    1 stored, 0 conflict (changed since read), -1 the document no longer exists
]]
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  return -1
end
if current ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
