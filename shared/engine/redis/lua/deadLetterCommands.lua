--[[
  Moves commands that keep failing to the dead-letter stream: copies each entry there, then
  acks and deletes it from the queue, atomically. An entry is moved only if it is still
  pending, idle for at least the claim time and delivered at least maxDeliveries times,
  so two workers racing on it cannot both move it. Its token's in-flight count is released.

  Input:
    KEYS[1] command stream
    KEYS[2] dead-letter stream
    ARGV[1] consumer group
    ARGV[2] min idle ms
    ARGV[3] max deliveries
    ARGV[4] dead-letter stream max length (approximate)
    ARGV[5] prefix of the in-flight sets (the set of a token is this + its sub)
    ARGV[6..] entry ids

  Output:
    { {id, payload, deliveries}, ... } for each entry moved
]]
local queue = KEYS[1]
local dead = KEYS[2]
local group = ARGV[1]
local minIdle = ARGV[2]
local maxDeliveries = tonumber(ARGV[3])
local moved = {}

for i = 6, #ARGV do
  local id = ARGV[i]
  local pending = redis.call('XPENDING', queue, group, 'IDLE', minIdle, id, id, 1)[1]
  if pending and pending[4] >= maxDeliveries then
    local entry = redis.call('XRANGE', queue, id, id)[1]
    if entry then
      local fields = entry[2]
      local payload, sub, requestId = '', nil, nil
      for f = 1, #fields, 2 do
        if fields[f] == 'c' then payload = fields[f + 1] end
        if fields[f] == 's' then sub = fields[f + 1] end
        if fields[f] == 'r' then requestId = fields[f + 1] end
      end
      if sub and requestId then
        redis.call('ZREM', ARGV[5] .. sub, requestId)
      end
      redis.call('XADD', dead, 'MAXLEN', '~', ARGV[4], '*',
        'c', payload, 'id', id, 'deliveries', pending[4], 'consumer', pending[2])
      moved[#moved + 1] = { id, payload, pending[4] }
    end
    -- Acked even when the entry itself is gone (deleted meanwhile): nothing is left to deliver.
    redis.call('XACK', queue, group, id)
    redis.call('XDEL', queue, id)
  end
end
return moved
