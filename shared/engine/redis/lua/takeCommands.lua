--[[
  Takes new commands from one partition without blocking, or, if there are none, says from
  which id to wait for the next (XREAD BLOCK from it takes nothing, so a worker waiting on an
  idle partition holds no slot that another partition's commands need). Used when commands are
  spread over several partitions; with one, the consumer blocks in XREADGROUP itself.

  Input:
    KEYS[1] command stream (one partition)
    ARGV[1] consumer group
    ARGV[2] this consumer's name
    ARGV[3] most entries to take

  Output:
    { entries, '' }            entries taken ({id, {field, value, ...}} each)
    { {}, lastDeliveredId }    none new: every entry up to that id is delivered already
]]
local queue = KEYS[1]
local group = ARGV[1]

local reply = redis.call('XREADGROUP', 'GROUP', group, ARGV[2], 'COUNT', ARGV[3],
  'STREAMS', queue, '>')
if reply and #reply[1][2] > 0 then
  return { reply[1][2], '' }
end

-- In the same atomic step: nothing new means no entry is past the group's last delivered id,
-- so the next one appended is the first XREAD from that id returns.
for _, info in ipairs(redis.call('XINFO', 'GROUPS', queue)) do
  local fields = {}
  for f = 1, #info, 2 do fields[info[f]] = info[f + 1] end
  if fields['name'] == group then
    return { {}, fields['last-delivered-id'] }
  end
end
return redis.error_reply('NOGROUP no consumer group ' .. group .. ' on ' .. queue)
