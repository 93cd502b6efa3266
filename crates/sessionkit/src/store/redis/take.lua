-- sessionkit take script: read a session hash and delete it, atomically.
-- KEYS[1] the session key. Returns the HGETALL reply (empty if there was none).
local r = redis.call('HGETALL', KEYS[1])
if #r > 0 then redis.call('DEL', KEYS[1]) end
return r
