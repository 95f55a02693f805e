--[[
  Caps (or lifts the cap on) a topic's history TTL; see Engine.capHistoryTtl.

  Input:
    KEYS[1] history stream of the topic (<prefix>h:<topic>)
    KEYS[2] the history's meta hash (<prefix>hm:<topic>, see publishEvent.lua)
    ARGV[1] the cap in ms, or '' to lift it
    ARGV[2] the engine's history TTL in ms (restarted when the cap is lifted)

  The cap is kept in the meta hash (field t), which publishEvent.lua reads on every publish, so
  a publish after the cap does not give the history its long TTL back. With no stream yet, the
  meta hash alone holds the cap, for as long as the cap.
]]
local key = KEYS[1]
local meta = KEYS[2]
if ARGV[1] == '' then
  redis.call('HDEL', meta, 't')
  if redis.call('EXISTS', key) == 1 then
    redis.call('PEXPIRE', key, ARGV[2])
    redis.call('PEXPIRE', meta, ARGV[2])
  end
  return 0
end
redis.call('HSET', meta, 't', ARGV[1])
redis.call('PEXPIRE', meta, ARGV[1])
redis.call('PEXPIRE', key, ARGV[1])
return 1
