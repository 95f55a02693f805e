--[[
  Adds to a fixed-window counter (rate limits, counted across every pod).

  Input:
    KEYS[1] counter key
    ARGV[1] window length in ms (the TTL set when the window opens)
    ARGV[2] amount to add

  Output:
    { hits in the window, ms until the window ends }
]]
local hits = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  -- The first hit of a window (or a key left without TTL): open the window.
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return { hits, ttl }
