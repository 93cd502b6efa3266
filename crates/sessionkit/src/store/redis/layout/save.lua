-- sessionkit save script: one atomic step on one session hash (one Cluster slot).
-- Every update runs here (the size limit is checked in the same step as the
-- write), and creates where RESTORE is not allowed (store/redis/commands.rs).
-- Field names as in store/redis/layout/mod.rs.
-- A create makes the key with its first HSET and gives it its expiry before
-- returning; a script runs to its end once it has written, so no key it
-- creates is left without a TTL.
-- KEYS[1]  the session key
-- ARGV[1]  mode: 'c' = create (refuse if the key exists), 'u' = update (refuse if it does not)
-- ARGV[2]  new expiry, Unix milliseconds, for PEXPIREAT ('' keeps the current one;
--          the caller writes the same value to m:expires among the pairs)
-- ARGV[3]  flags: 'e' = delete the key when no data field ('d:...') remains
-- ARGV[4]  size limit in bytes ('' = none): an update that would take the data
--          past it and make it larger than it is writes nothing
-- ARGV[5]  n = number of field/value pairs that follow
-- ARGV[6]  k = number of field/increment pairs after them (update only)
-- ARGV[7]  x = number of field/expected pairs after those (update only)
-- ARGV[8 .. 7+2n]  field, value pairs to HSET; then k field, integer pairs
--          to add to a field holding an integer (HINCRBY; a field holding
--          anything else, or one that would overflow, starts over at the
--          increment); then x field, expected pairs: the update writes
--          nothing unless each field holds '=' .. value ('-': no value);
--          the rest: fields to HDEL. Increments are not held to the size
--          limit (they change a size by a few bytes).
-- m:size holds the size the limit counts: the bytes of every data key (its
-- field name without 'd:') and value. Every save keeps it exact; a record
-- without it (written before it existed) gets it here.
-- Returns 1 saved, 0 create refused (exists), -1 update refused (gone),
-- 2 deleted (emptied), {3, size} refused (the size it would have), {4, field,
-- held, ...} refused: an expected field holds something else (every expected
-- field with what it holds, '=' .. value or '-'), or the storage id the
-- session moved to (update of a moved session: nothing written).
local key = KEYS[1]
local first_pair = 8
local last_pair = 7 + 2 * tonumber(ARGV[5])
local first_inc = last_pair + 1
local last_inc = last_pair + 2 * tonumber(ARGV[6])
local first_expect = last_inc + 1
local last_expect = last_inc + 2 * tonumber(ARGV[7])
local first_remove = last_expect + 1
local is_data = function(f) return string.sub(f, 1, 2) == 'd:' end
-- The bytes a data field holds now (0 if absent).
local held = function(f)
  local len = redis.call('HSTRLEN', key, f)
  if len == 0 and redis.call('HEXISTS', key, f) == 0 then return 0 end
  return #f - 2 + len
end
local size = 0
if ARGV[1] == 'c' then
  if redis.call('EXISTS', key) == 1 then return 0 end
  for i = first_pair, last_pair, 2 do
    if is_data(ARGV[i]) then size = size + #ARGV[i] - 2 + #ARGV[i + 1] end
  end
else
  -- Every record and every forwarding marker has m:v.
  local found = redis.call('HMGET', key, 'm:v', 'm:moved', 'm:size')
  if not found[1] then return -1 end
  if found[2] then return found[2] end
  if first_expect <= last_expect then
    local held_now = {4}
    local differs = false
    for i = first_expect, last_expect, 2 do
      local v = redis.call('HGET', key, ARGV[i])
      local as_arg = v and ('=' .. v) or '-'
      if as_arg ~= ARGV[i + 1] then differs = true end
      table.insert(held_now, ARGV[i])
      table.insert(held_now, as_arg)
    end
    if differs then return held_now end
  end
  local before = tonumber(found[3])
  if not before then
    before = 0
    for _, f in ipairs(redis.call('HKEYS', key)) do
      if is_data(f) then before = before + held(f) end
    end
  end
  size = before
  for i = first_pair, last_pair, 2 do
    if is_data(ARGV[i]) then size = size + #ARGV[i] - 2 + #ARGV[i + 1] - held(ARGV[i]) end
  end
  for i = first_remove, #ARGV do
    size = size - held(ARGV[i])
  end
  if ARGV[4] ~= '' and size > tonumber(ARGV[4]) and size > before then
    return {3, size}
  end
end
local chunk = 400
local j = math.min(first_pair + 2 * chunk - 1, last_pair)
-- The first HSET carries the size (with no pairs, only the size).
redis.call('HSET', key, 'm:size', size, unpack(ARGV, first_pair, j))
local i = j + 1
while i <= last_pair do
  j = math.min(i + 2 * chunk - 1, last_pair)
  redis.call('HSET', key, unpack(ARGV, i, j))
  i = j + 1
end
i = first_remove
while i <= #ARGV do
  j = math.min(i + chunk - 1, #ARGV)
  redis.call('HDEL', key, unpack(ARGV, i, j))
  i = j + 1
end
if first_inc <= last_inc then
  -- MessagePack values (m:codec) are added to as such: an integer of
  -- Lua's numbers (exact up to 2^53).
  local msgpack = redis.call('HGET', key, 'm:codec') == 'msgpack'
  for i = first_inc, last_inc, 2 do
    local f = ARGV[i]
    local before = held(f)
    if msgpack then
      local by = tonumber(ARGV[i + 1])
      local v = redis.call('HGET', key, f)
      local ok, n = false, nil
      if v then ok, n = pcall(cmsgpack.unpack, v) end
      if ok and type(n) == 'number' and n == math.floor(n) then by = n + by end
      redis.call('HSET', key, f, cmsgpack.pack(by))
    else
      local added = redis.pcall('HINCRBY', key, f, ARGV[i + 1])
      if type(added) == 'table' and added.err then
        redis.call('HSET', key, f, ARGV[i + 1])
      end
    end
    size = size + held(f) - before
  end
  redis.call('HSET', key, 'm:size', size)
end
if string.find(ARGV[3], 'e', 1, true) and size == 0 then
  -- Only keys and values of no bytes at all count nothing: look.
  local empty = true
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if is_data(f) then empty = false break end
  end
  if empty then
    redis.call('DEL', key)
    return 2
  end
end
if ARGV[2] ~= '' then
  redis.call('PEXPIREAT', key, ARGV[2])
end
return 1
