--[[
  Marks open connections as still alive. Ids not open in the registry are not re-created but
  returned, so their owner can register them again: their records were lost (a Redis restart),
  or the sweep took them for a dead pod's (their owner was too slow to touch them).

  Input:
    KEYS[1] registry hash
    KEYS[2] open entries: last-seen sorted set
    KEYS[3] resumable entries (sorted set), KEYS[4] open streams per sub (hash): TTL refreshed
    ARGV[1] registry TTL ms, refreshed here
    ARGV[2..] connection ids (the caller sends at most a few thousand per call)

  Output:
    the ids not open
]]
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)

local args = { 'XX' }
local unknown = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[2], ARGV[i]) then
    args[#args + 1] = now
    args[#args + 1] = ARGV[i]
  else
    unknown[#unknown + 1] = ARGV[i]
  end
end
if #args > 1 then
  redis.call('ZADD', KEYS[2], unpack(args))
end
for i = 1, 4 do
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
return unknown
