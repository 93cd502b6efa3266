-- sessionkit save script: one atomic step on one session hash (one Cluster slot).
-- Used for saves that empty a session (flag 'e'), to create where RESTORE is
-- not allowed, and to update where the server refuses the update transaction
-- (store/redis/commands.rs). Field names as in store/redis/layout/mod.rs.
-- A create makes the key with its first HSET and gives it its expiry before
-- returning; a script runs to its end once it has written, so no key it
-- creates is left without a TTL.
-- KEYS[1]  the session key
-- ARGV[1]  mode: 'c' = create (refuse if the key exists), 'u' = update (refuse if it does not)
-- ARGV[2]  new expiry, Unix milliseconds, for PEXPIREAT ('' keeps the current one;
--          the caller writes the same value to m:expires among the pairs)
-- ARGV[3]  flags: 'e' = delete the key when no data field ('d:...') remains
-- ARGV[4]  n = number of field/value pairs that follow
-- ARGV[5 .. 4+2n]  field, value pairs to HSET; the rest: fields to HDEL
-- Every save also sets m:rev, the record's revision: 1 on create, +1 on update.
-- Returns {1, revision} saved, 0 create refused (exists), -1 update refused (gone),
-- 2 deleted (emptied), or the storage id the session moved to (update of a
-- moved session: nothing written).
local key = KEYS[1]
local rev = 1
if ARGV[1] == 'c' then
  if redis.call('EXISTS', key) == 1 then return 0 end
else
  -- Every record and every forwarding marker has m:v.
  local found = redis.call('HMGET', key, 'm:v', 'm:moved', 'm:rev')
  if not found[1] then return -1 end
  if found[2] then return found[2] end
  rev = (tonumber(found[3]) or 0) + 1
end
local chunk = 400
local last_pair = 4 + 2 * tonumber(ARGV[4])
local j = math.min(5 + 2 * chunk - 1, last_pair)
-- The first HSET carries the revision (with no pairs, only the revision).
redis.call('HSET', key, 'm:rev', rev, unpack(ARGV, 5, j))
local i = j + 1
while i <= last_pair do
  j = math.min(i + 2 * chunk - 1, last_pair)
  redis.call('HSET', key, unpack(ARGV, i, j))
  i = j + 1
end
i = last_pair + 1
while i <= #ARGV do
  j = math.min(i + chunk - 1, #ARGV)
  redis.call('HDEL', key, unpack(ARGV, i, j))
  i = j + 1
end
local flags = ARGV[3]
if string.find(flags, 'e', 1, true) then
  local empty = true
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, 2) == 'd:' then empty = false break end
  end
  if empty then
    redis.call('DEL', key)
    return 2
  end
end
if ARGV[2] ~= '' then
  redis.call('PEXPIREAT', key, ARGV[2])
end
return {1, rev}
