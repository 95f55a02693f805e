--[[
  Acknowledges a handled command and deletes it, so the queue stream only ever holds
  commands that still need work, and releases its place in its token's in-flight count.

  Input:
    KEYS[1] command stream
    KEYS[2] the token's in-flight sorted set
    ARGV[1] consumer group
    ARGV[2] entry id
    ARGV[3] the command's requestId

  Output:
    1 when the entry was pending and is now acked, 0 otherwise
]]
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[3])
return acked
