--[[
  Appends an event to a topic's history and publishes it, in one atomic step.

  Input:
    KEYS[1] history stream of the topic (<prefix>h:<topic>)
    KEYS[2] the history's meta hash (<prefix>hm:<topic>): b = bytes of the stream's event names
            and data, t = cap on the history's TTL in ms (capHistory.lua), same TTL as the stream
    KEYS[3] optional: done-key of the request this event completes (<prefix>done:<requestId>),
            set with the same TTL, so "result published" and "request processed" are one step
    ARGV[1] pub/sub channel of the topic (<prefix>ev:<topic>; a shard channel on a Cluster)
    ARGV[2] event name (no newline)
    ARGV[3] data (JSON text)
    ARGV[4] max length: events readers get (readHistory.lua hides the older ones)
    ARGV[5] slack: the stream may grow this far past max length before it is trimmed back
    ARGV[6] TTL in ms, refreshed on every publish
    ARGV[7] max bytes: the oldest events are dropped while the stream holds more (never the newest)
    ARGV[8] optional: the history's TTL in ms instead of ARGV[6] (the done-key keeps ARGV[6]);
            '' for none
    ARGV[9] PUBLISH, or SPUBLISH on a Cluster (the channel shares the topic's slot)
    ARGV[10] optional: another topic's channel that gets a copy of the event (PublishOptions.copyTo;
             single Redis only: on a Cluster it is another slot, copied by the caller)
    ARGV[11] with ARGV[10]: this topic's name, carried in the copy (no newline)

  Output:
    the new event id (stream id)

  Trimming is done here rather than with XADD MAXLEN, because trimming does not record what
  it dropped; XSETID MAXDELETEDID does, so readers can tell when they missed events. Trimming
  by count once every `slack` events keeps that cost off most publishes; trimming by bytes reads
  only the entries it drops (the byte count is kept in the meta hash, not recomputed).
  The published payload is "<id>\n<event>\n<data>", split by the subscriber without JSON parsing;
  the copy's is "\n<topic>\n<id>\n<event>\n<data>" (an id never starts with a newline).
]]
local key = KEYS[1]
local meta = KEYS[2]

local function entryBytes(fields)
  local size = 0
  for i = 2, #fields, 2 do
    size = size + #fields[i]
  end
  return size
end

local size = #ARGV[2] + #ARGV[3]
local id = redis.call('XADD', key, '*', 'e', ARGV[2], 'd', ARGV[3])
local length = redis.call('XLEN', key)
local bytes = redis.call('HINCRBY', meta, 'b', size)
local recounted = false
if bytes == size and length > 1 then
  -- The count was lost (a stream written before byte caps existed): count once, from the stream.
  bytes = 0
  for _, entry in ipairs(redis.call('XRANGE', key, '-', '+')) do
    bytes = bytes + entryBytes(entry[2])
  end
  recounted = true
end

local maxLen = tonumber(ARGV[4])
local maxBytes = tonumber(ARGV[7])
local dropCount = 0
local lastDropped = nil

if length >= maxLen + tonumber(ARGV[5]) then
  local dropped = redis.call('XRANGE', key, '-', '+', 'COUNT', length - maxLen)
  for _, entry in ipairs(dropped) do
    bytes = bytes - entryBytes(entry[2])
  end
  dropCount = #dropped
  lastDropped = dropped[#dropped][1]
end

while bytes > maxBytes and length - dropCount > 1 do
  local from = lastDropped and ('(' .. lastDropped) or '-'
  local batch = redis.call('XRANGE', key, from, '+', 'COUNT', math.min(64, length - dropCount - 1))
  if #batch == 0 then break end
  for _, entry in ipairs(batch) do
    if bytes <= maxBytes or length - dropCount <= 1 then break end
    bytes = bytes - entryBytes(entry[2])
    dropCount = dropCount + 1
    lastDropped = entry[1]
  end
end

if dropCount > 0 then
  redis.call('XTRIM', key, 'MAXLEN', length - dropCount)
  redis.call('XSETID', key, id, 'MAXDELETEDID', lastDropped)
end
if dropCount > 0 or recounted then
  redis.call('HSET', meta, 'b', bytes)
end

local ttl = tonumber((ARGV[8] ~= nil and ARGV[8] ~= '') and ARGV[8] or ARGV[6])
local cap = tonumber(redis.call('HGET', meta, 't'))
if cap and cap < ttl then ttl = cap end
redis.call('PEXPIRE', key, ttl)
redis.call('PEXPIRE', meta, ttl)
if KEYS[3] then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[6])
end
local payload = id .. '\n' .. ARGV[2] .. '\n' .. ARGV[3]
redis.call(ARGV[9], ARGV[1], payload)
if ARGV[10] then
  redis.call(ARGV[9], ARGV[10], '\n' .. ARGV[11] .. '\n' .. payload)
end
return id
