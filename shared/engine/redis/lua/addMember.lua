--[[
  Adds a member to a bounded set and restarts the set's TTL (MemberSets.add).

  Input:
    KEYS[1] the set
    ARGV[1] member
    ARGV[2] TTL in ms
    ARGV[3] most members the set may hold

  Output:
    1 added, 2 already present, 0 full (nothing changed)
]]
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 2
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
