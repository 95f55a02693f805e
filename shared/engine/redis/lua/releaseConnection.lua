--[[
  A stream closed: it stops counting as open. A resumable record (kept = 1) stays listed as
  resumable from now; otherwise the entry is dropped.

  Input:
    KEYS[1] registry hash
    KEYS[2] open entries (sorted set)
    KEYS[3] resumable entries (sorted set)
    KEYS[4] open streams per sub (hash)
    ARGV[1] connection id
    ARGV[2] 1: keep a resumable record for the resume window; 0: drop the entry

  Output:
    1 when the id was listed, else 0
]]
local json = redis.call('HGET', KEYS[1], ARGV[1])
if not json then
  return 0
end
local record = cjson.decode(json)
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[4], record.sub, -1) <= 0 then
    redis.call('HDEL', KEYS[4], record.sub)
  end
  if ARGV[2] == '1' and record.resumable then
    local time = redis.call('TIME')
    redis.call('ZADD', KEYS[3], time[1] * 1000 + math.floor(time[2] / 1000), ARGV[1])
    return 1
  end
end
if ARGV[2] ~= '1' or not record.resumable then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
