--[[
  Admits commands of one token and queues them, all or none, in one atomic step: the check
  and the count cannot be raced by another gateway.

  Input:
    KEYS[1] command stream
    KEYS[2] the token's in-flight sorted set (requestId scored by when it stops counting)
    ARGV[1] max commands in the stream (waiting + pending), 0 = no limit
    ARGV[2] max in-flight commands of the token, 0 = no limit (and no counting)
    ARGV[3] in-flight lease ms: an entry never released stops counting after this
    ARGV[4] token sub
    ARGV[5..] requestId, payload, requestId, payload, ...

  Output:
    { 'ok', id, id, ... }     queued: the stream entry id of each command, in order
    { 'queue_full', length }  the stream holds too many: nothing queued
    { 'inflight', count }     the token has too many in flight: nothing queued

  The stream is never trimmed: its entries are unacked commands (acked ones are deleted), and
  a client that got 202 for one must get its result. Entries carry the sub and the requestId
  (fields s and r) so acks and dead letters can release the in-flight count.
]]
local queue = KEYS[1]
local inflight = KEYS[2]
local maxQueued = tonumber(ARGV[1])
local maxInFlight = tonumber(ARGV[2])
local leaseMs = tonumber(ARGV[3])
local sub = ARGV[4]
local count = (#ARGV - 4) / 2

if maxQueued > 0 then
  local length = redis.call('XLEN', queue)
  if length + count > maxQueued then
    return { 'queue_full', length }
  end
end

local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)
if maxInFlight > 0 then
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
  local held = redis.call('ZCARD', inflight)
  if held + count > maxInFlight then
    return { 'inflight', held }
  end
end

local result = { 'ok' }
for i = 5, #ARGV, 2 do
  result[#result + 1] = redis.call('XADD', queue, '*', 'c', ARGV[i + 1], 's', sub, 'r', ARGV[i])
  if maxInFlight > 0 then
    redis.call('ZADD', inflight, now + leaseMs, ARGV[i])
  end
end
if maxInFlight > 0 then
  redis.call('PEXPIRE', inflight, leaseMs)
end
return result
