--[[
  Marks connections as still alive. Ids not in the registry are not re-created but returned,
  so their owner can register them again (their records were lost, e.g. with a Redis restart).

  Input:
    KEYS[1] registry hash
    KEYS[2] last-seen sorted set
    ARGV[1] registry TTL ms, refreshed here
    ARGV[2..] connection ids (the caller sends at most a few thousand per call)

  Output:
    the ids not in the registry hash
]]
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)

local args = { 'XX' }
local unknown = {}
for i = 2, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    args[#args + 1] = now
    args[#args + 1] = ARGV[i]
  else
    unknown[#unknown + 1] = ARGV[i]
  end
end
if #args > 1 then
  redis.call('ZADD', KEYS[2], unpack(args))
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return unknown
