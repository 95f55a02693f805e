--[[
  Adds (or replaces) a live connection in the cluster-wide registry, seen now.

  Input:
    KEYS[1] registry hash (connectionId -> record JSON)
    KEYS[2] last-seen sorted set (connectionId scored by ms)
    ARGV[1] connection id
    ARGV[2] record JSON
    ARGV[3] registry TTL ms, refreshed here (the registry vanishes if every pod is gone)

  Output:
    1

  Times come from the Redis clock, so pods with skewed clocks still agree on staleness.
]]
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)

redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
