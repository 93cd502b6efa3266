-- sessionkit index script: lists a session in its user's index, one key (one
-- Cluster slot). The index is a sorted set of storage ids scored by the
-- session's deadline (Unix ms); the store runs this before the record's own
-- save creates it or moves its expiry, so a live session's entry never has a
-- lower score than its record's deadline, and the index key never expires
-- before any of its sessions (store/redis/commands.rs).
-- KEYS[1]  the index key
-- ARGV[1]  the storage id
-- ARGV[2]  its deadline (Unix ms): the entry's score is raised to it, never lowered
-- ARGV[3]  now (Unix ms): entries scored below it are of sessions that expired
-- ARGV[4]  the cap: past it, the entries with the lowest scores other than
--          ARGV[1] are removed (their sessions expire soonest)
-- Returns the storage ids removed past the cap (the caller ends them).
local key = KEYS[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[3])
local old = redis.call('ZSCORE', key, ARGV[1])
if (not old) or tonumber(old) < tonumber(ARGV[2]) then
  redis.call('ZADD', key, ARGV[2], ARGV[1])
end
local evicted = {}
local cap = tonumber(ARGV[4])
while redis.call('ZCARD', key) > cap do
  local lowest = redis.call('ZRANGE', key, 0, 1)
  local victim = lowest[1]
  if victim == ARGV[1] then victim = lowest[2] end
  if not victim then break end
  redis.call('ZREM', key, victim)
  evicted[#evicted + 1] = victim
end
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', key, last[2])
return evicted
