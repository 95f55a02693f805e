--[[
  Appends an event to a topic's history and publishes it, in one atomic step.

  Input:
    KEYS[1] history stream of the topic (<prefix>h:<topic>)
    KEYS[2] optional: done-key of the request this event completes (<prefix>done:<requestId>),
            set with the same TTL, so "result published" and "request processed" are one step
    ARGV[1] pub/sub channel of the topic (<prefix>ev:<topic>)
    ARGV[2] event name (no newline)
    ARGV[3] data (JSON text)
    ARGV[4] max length: events readers get (readHistory.lua hides the older ones)
    ARGV[5] slack: the stream may grow this far past max length before it is trimmed back
    ARGV[6] TTL in ms, refreshed on every publish
    ARGV[7] optional: the history's TTL in ms instead of ARGV[6] (the done-key keeps ARGV[6])

  Output:
    the new event id (stream id)

  Trimming is done here rather than with XADD MAXLEN, because trimming does not record what
  it dropped; XSETID MAXDELETEDID does, so readers can tell when they missed events. Trimming
  once every `slack` events keeps that cost off most publishes.
  The published payload is "<id>\n<event>\n<data>", split by the subscriber without JSON parsing.
]]
local key = KEYS[1]
local id = redis.call('XADD', key, '*', 'e', ARGV[2], 'd', ARGV[3])

local maxLen = tonumber(ARGV[4])
local length = redis.call('XLEN', key)
if length >= maxLen + tonumber(ARGV[5]) then
  local dropped = redis.call('XRANGE', key, '-', '+', 'COUNT', length - maxLen)
  redis.call('XTRIM', key, 'MAXLEN', maxLen)
  redis.call('XSETID', key, id, 'MAXDELETEDID', dropped[#dropped][1])
end

redis.call('PEXPIRE', key, ARGV[7] or ARGV[6])
if KEYS[2] then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[6])
end
redis.call('PUBLISH', ARGV[1], id .. '\n' .. ARGV[2] .. '\n' .. ARGV[3])
return id
