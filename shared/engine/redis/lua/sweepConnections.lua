--[[
  Removes connections not touched for a while (their pod died) from the registry, atomically,
  so two pods sweeping at once report each stale connection only once.

  Input:
    KEYS[1] registry hash
    KEYS[2] last-seen sorted set
    ARGV[1] stale after ms: entries last seen before now - this are removed
    ARGV[2] batch size: at most this many are removed per call

  Output:
    { connectionId, ... } removed
]]
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)
local cutoff = string.format('%d', now - tonumber(ARGV[1]))

local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff, 'LIMIT', 0, ARGV[2])
if #stale > 0 then
  redis.call('ZREM', KEYS[2], unpack(stale))
  redis.call('HDEL', KEYS[1], unpack(stale))
end
return stale
