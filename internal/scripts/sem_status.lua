-- sem_status: list the live holds of a semaphore and how many processes
-- wait (read-only).
-- KEYS[1]  the semaphore's hash
-- ARGV[1]  the wake-up channel
-- Fields as in sem_acquire.lua: token -> "<fence>:<gen>:<units>:<expiresAtMs>".
-- Returns {subs, token_1, fence_1, units_1, ms_1, ...}: the subscribers of
-- the wake-up channel (PUBSUB SHARDNUMSUB, or NUMSUB where sharded pub/sub is
-- unknown; -1 if neither answers), then each unexpired hold with its
-- remaining time in ms on the server's clock. Expired fields are skipped, not
-- deleted. Read-only, so safe to run twice.
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local subs = redis.pcall('pubsub', 'shardnumsub', ARGV[1])
if type(subs) == 'table' and subs.err then
  subs = redis.pcall('pubsub', 'numsub', ARGV[1])
end
local n = -1
if type(subs) == 'table' and not subs.err and subs[2] ~= nil then
  n = tonumber(subs[2])
end
local out = {n}
local all = redis.call('hgetall', KEYS[1])
for i = 1, #all, 2 do
  local f, u, exp = string.match(all[i + 1], '^(%d+):%d+:(%d+):(%d+)$')
  if f and tonumber(exp) > now then
    out[#out + 1] = all[i]
    out[#out + 1] = tonumber(f)
    out[#out + 1] = tonumber(u)
    out[#out + 1] = tonumber(exp) - now
  end
end
return out
