--[[
  Refreshes or deletes a key only while it holds the expected value (a lock released or kept
  alive by its owner only).

  Input:
    KEYS[1] key
    ARGV[1] expected value
    ARGV[2] new TTL in ms, or 0 to delete the key

  Output:
    1 when the key held the value (and was refreshed or deleted), 0 otherwise
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
