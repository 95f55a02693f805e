--[[
  Reads a topic's history after a given id, as if it held exactly its newest `max length`
  events, and says which id readers must have seen to have missed nothing.

  Input:
    KEYS[1] history stream of the topic
    ARGV[1] afterId: return events with greater ids
    ARGV[2] limit: at most this many events (0 reads none)
    ARGV[3] max length: events older than the newest this many count as dropped

  Output:
    { 0 }                                   when the stream does not exist (expired or never written)
    { 1, maxDeletedId, { {id, {field, value, ...}}, ... }, gone }   otherwise; gone is 1 when
                                            the reader's own last event (afterId) is missing
                                            though retention kept everything after maxDeletedId

  publishEvent.lua trims in steps, so the stream may hold a few more than max length; those
  are treated as already dropped. maxDeletedId is the newest dropped event: a reader whose
  afterId is older has missed events. One script, so the range and the boundary agree.

  `gone`: the history lost the event the reader saw last (a failover to a replica that had not
  received it, a restart): it cannot show what followed that event either, so the reader is told
  as when retention dropped events (the stream's newer events are still returned).
]]
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then
  return { 0 }
end

local function parseId(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

local function isOlder(a, b)
  local aMs, aSeq = parseId(a)
  local bMs, bSeq = parseId(b)
  if aMs ~= bMs then return aMs < bMs end
  return aSeq < bSeq
end

-- Dropped by a past trim.
local maxDeletedId = '0-0'
local info = redis.call('XINFO', 'STREAM', key)
for i = 1, #info, 2 do
  if info[i] == 'max-deleted-entry-id' then
    maxDeletedId = info[i + 1]
    break
  end
end

-- Still stored, but beyond max length: dropped as far as readers are concerned.
local maxLen = tonumber(ARGV[3])
local length = redis.call('XLEN', key)
if length > maxLen then
  local beyond = redis.call('XRANGE', key, '-', '+', 'COUNT', length - maxLen)
  maxDeletedId = beyond[#beyond][1]
end

local startAfter = ARGV[1]
if isOlder(startAfter, maxDeletedId) then
  startAfter = maxDeletedId
end

local events = {}
local limit = tonumber(ARGV[2])
if limit > 0 then
  events = redis.call('XRANGE', key, '(' .. startAfter, '+', 'COUNT', limit)
end

local gone = 0
if ARGV[1] ~= '0-0' and isOlder(maxDeletedId, ARGV[1]) then
  if #redis.call('XRANGE', key, ARGV[1], ARGV[1]) == 0 then
    gone = 1
  end
end
return { 1, maxDeletedId, events, gone }
