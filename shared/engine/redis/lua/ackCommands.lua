--[[
  Acknowledges handled commands and deletes them, so the queue stream only ever holds commands
  that still need work, and releases their places in their tokens' in-flight counts. One call
  for every command a worker finished in the same turn.

  Input:
    KEYS[1]    command stream
    KEYS[2..]  the in-flight sorted sets of the commands' tokens
    ARGV[1]    consumer group
    ARGV[2..]  per command: index of its token's set in KEYS, entry id, requestId

  Output:
    how many of the entries were pending and are now acked
]]
local queue = KEYS[1]
local ids = {}
for i = 2, #ARGV, 3 do
  ids[#ids + 1] = ARGV[i + 1]
  redis.call('ZREM', KEYS[tonumber(ARGV[i])], ARGV[i + 2])
end
local acked = redis.call('XACK', queue, ARGV[1], unpack(ids))
redis.call('XDEL', queue, unpack(ids))
return acked
