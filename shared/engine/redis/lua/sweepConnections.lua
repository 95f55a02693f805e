--[[
  Open entries not touched for a while (their pod died) stop counting as open: resumable ones
  become resumable from their last touch, the others are dropped. Resumable entries closed
  before the resume window are dropped. Atomic, so two pods sweeping at once report each entry
  only once.

  Input:
    KEYS[1] registry hash
    KEYS[2] open entries (sorted set, last-seen ms)
    KEYS[3] resumable entries (sorted set, closed-at ms)
    KEYS[4] open streams per sub (hash)
    ARGV[1] open entries last seen before now - this lapse
    ARGV[2] resumable entries closed before now - this are dropped
    ARGV[3] batch size: at most this many of each per call

  Output:
    { { record JSON, ... } lapsed, { connectionId, ... } expired }
]]
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)
local openCutoff = string.format('%d', now - tonumber(ARGV[1]))
local closedCutoff = string.format('%d', now - tonumber(ARGV[2]))

local lapsed = {}
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. openCutoff, 'WITHSCORES', 'LIMIT', 0, ARGV[3])
for i = 1, #stale, 2 do
  local id = stale[i]
  redis.call('ZREM', KEYS[2], id)
  local json = redis.call('HGET', KEYS[1], id)
  if json then
    local record = cjson.decode(json)
    if redis.call('HINCRBY', KEYS[4], record.sub, -1) <= 0 then
      redis.call('HDEL', KEYS[4], record.sub)
    end
    if record.resumable then
      redis.call('ZADD', KEYS[3], stale[i + 1], id)
    else
      redis.call('HDEL', KEYS[1], id)
    end
    lapsed[#lapsed + 1] = json
  end
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. closedCutoff, 'LIMIT', 0, ARGV[3])
if #expired > 0 then
  redis.call('ZREM', KEYS[3], unpack(expired))
  redis.call('HDEL', KEYS[1], unpack(expired))
end
return { lapsed, expired }
