-- sem_available: how many units of a semaphore are free.
-- KEYS[1]  the semaphore's hash
-- ARGV[1]  the caller's limit
-- A field's value is "<fence>:<gen>:<units>:<expiresAtMs>"; expired fields
-- do not count (they are left for sem_acquire to delete).
-- Returns the limit minus the units of unexpired holds, at least 0.
-- Read-only, so safe to run twice.
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('hgetall', KEYS[1])
local used = 0
for i = 2, #all, 2 do
  local u, exp = string.match(all[i], '^%d+:%d+:(%d+):(%d+)$')
  if u and tonumber(exp) > now then
    used = used + tonumber(u)
  end
end
return math.max(tonumber(ARGV[1]) - used, 0)
