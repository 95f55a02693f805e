--[[
  Inserts a document unless one with this id exists (idempotent create).

  Input:
    KEYS[1] collection hash (id -> JSON)
    ARGV[1] document id
    ARGV[2] document JSON

  Output:
    the stored document JSON: the new one, or the one already there
]]
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])
