--[[
  Forgets consumers of the group that hold no pending entries and have not read for a long
  time (workers that stopped or died), so the group does not grow with every restart.
  Checked and deleted atomically: a consumer cannot take an entry in between.

  Input:
    KEYS[1] command stream
    ARGV[1] consumer group
    ARGV[2] idle ms after which an empty consumer is deleted

  Output:
    the number of consumers deleted
]]
local queue = KEYS[1]
local group = ARGV[1]
local maxIdle = tonumber(ARGV[2])
local deleted = 0

for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', queue, group)) do
  local fields = {}
  for f = 1, #consumer, 2 do fields[consumer[f]] = consumer[f + 1] end
  if fields['pending'] == 0 and fields['idle'] > maxIdle then
    redis.call('XGROUP', 'DELCONSUMER', queue, group, fields['name'])
    deleted = deleted + 1
  end
end
return deleted
