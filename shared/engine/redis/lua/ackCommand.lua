--[[
  Acknowledges a handled command and deletes it, so the queue stream only ever holds
  commands that still need work.

  Input:
    KEYS[1] command stream
    ARGV[1] consumer group
    ARGV[2] entry id

  Output:
    1 when the entry was pending and is now acked, 0 otherwise
]]
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return acked
