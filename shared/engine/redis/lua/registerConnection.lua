--[[
  Lists an open stream in the cluster-wide registry, seen now, unless its token's sub is at the
  limit of open streams. An id already open is replaced without being counted again; a
  resumable id becomes open again (counted).

  Input:
    KEYS[1] registry hash (connectionId -> record JSON)
    KEYS[2] open entries: sorted set, connectionId scored by last-seen ms
    KEYS[3] resumable entries: sorted set, connectionId scored by closed-at ms
    KEYS[4] open streams per sub: hash sub -> count
    ARGV[1] connection id
    ARGV[2] record JSON
    ARGV[3] registry TTL ms, refreshed here (the registry vanishes if every pod is gone)
    ARGV[4] the record's sub
    ARGV[5] open streams the sub may hold (0: no limit)

  Output:
    1 when listed, 0 when refused (the sub is at the limit)

  Times come from the Redis clock, so pods with skewed clocks still agree on staleness.
]]
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)

if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  local limit = tonumber(ARGV[5])
  if limit > 0 and tonumber(redis.call('HGET', KEYS[4], ARGV[4]) or '0') >= limit then
    return 0
  end
  redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
for i = 1, 4 do
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
end
return 1
