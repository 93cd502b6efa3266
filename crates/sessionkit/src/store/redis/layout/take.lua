-- sessionkit take script: read a session hash and replace it, atomically, by a
-- forwarding marker (m:moved = the new storage id) that expires after the grace.
-- KEYS[1] the session key; ARGV[1] the new storage id; ARGV[2] grace in ms.
-- Returns the HGETALL reply, or an empty list if there was no live session.
local r = redis.call('HGETALL', KEYS[1])
for i = 1, #r, 2 do
  if r[i] == 'm:moved' then return {} end
end
if #r > 0 then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'm:v', '1', 'm:moved', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return r
