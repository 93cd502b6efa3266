-- sessionkit save script: one atomic step on one session hash (one Cluster slot).
-- KEYS[1]  the session key
-- ARGV[1]  mode: 'c' = create (refuse if the key exists), 'u' = update (refuse if it does not)
-- ARGV[2]  expiry, Unix milliseconds (PEXPIREAT)
-- ARGV[3]  '1' = delete the key when no data field ('d:...') remains
-- ARGV[4]  n = number of field/value pairs that follow
-- ARGV[5 .. 4+2n]  field, value pairs to HSET; the rest: fields to HDEL
-- Returns 1 saved, 0 create refused (exists), -1 update refused (gone), 2 deleted (emptied).
local key = KEYS[1]
local exists = redis.call('EXISTS', key) == 1
if ARGV[1] == 'c' then
  if exists then return 0 end
elseif not exists then
  return -1
end
local chunk = 400
local first = 5
local last_pair = 4 + 2 * tonumber(ARGV[4])
local i = first
while i <= last_pair do
  local j = math.min(i + 2 * chunk - 1, last_pair)
  redis.call('HSET', key, unpack(ARGV, i, j))
  i = j + 1
end
i = last_pair + 1
while i <= #ARGV do
  local j = math.min(i + chunk - 1, #ARGV)
  redis.call('HDEL', key, unpack(ARGV, i, j))
  i = j + 1
end
if ARGV[3] == '1' then
  local empty = true
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, 2) == 'd:' then empty = false break end
  end
  if empty then
    redis.call('DEL', key)
    return 2
  end
end
redis.call('PEXPIREAT', key, ARGV[2])
return 1
