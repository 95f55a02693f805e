--[[
  Resets the idle time of commands this consumer is still working on, so no other worker
  reclaims a command whose handler is merely slow. Entries another consumer has taken in the
  meantime are left alone. JUSTID: the delivery count does not grow.

  Input:
    KEYS[1] command stream
    ARGV[1] consumer group
    ARGV[2] this consumer's name
    ARGV[3..] entry ids in hand

  Output:
    the number of entries refreshed
]]
local queue = KEYS[1]
local group = ARGV[1]
local consumer = ARGV[2]
local refreshed = 0

for i = 3, #ARGV do
  local id = ARGV[i]
  local pending = redis.call('XPENDING', queue, group, id, id, 1)[1]
  if pending and pending[2] == consumer then
    redis.call('XCLAIM', queue, group, consumer, 0, id, 'JUSTID')
    refreshed = refreshed + 1
  end
end
return refreshed
