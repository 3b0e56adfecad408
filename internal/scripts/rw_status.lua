-- rw_status: list the live holds of a read-write lock, whether a writer
-- waits, and how many processes wait (read-only).
-- KEYS[1]  the lock's hash
-- ARGV[1]  the wake-up channel
-- Fields as in rw_acquire.lua: 'w:<token>' and 'r:<token>' ->
-- "<fence>:<gen>:<expiresAtMs>", 'want' -> "<claim>:<expiresAtMs>".
-- Returns {subs, want_ms, kind_1, token_1, fence_1, ms_1, ...}: the
-- subscribers of the wake-up channel (PUBSUB SHARDNUMSUB, or NUMSUB where
-- sharded pub/sub is unknown; -1 if neither answers), the remaining time of
-- a live waiting writer's claim (-1: none), then each unexpired hold ('w' or
-- 'r', token, fence, remaining ms on the server's clock). Expired fields are
-- skipped, not deleted. Read-only, so safe to run twice.
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
local out = {n, -1}
local all = redis.call('hgetall', KEYS[1])
for i = 1, #all, 2 do
  local k, v = all[i], all[i + 1]
  if k == 'want' then
    local exp = tonumber(string.match(v, ':(%d+)$'))
    if exp and exp > now then
      out[2] = exp - now
    end
  else
    local kind, tok = string.match(k, '^([rw]):(.*)$')
    local f, exp = string.match(v, '^(%d+):%d+:(%d+)$')
    if kind and f and tonumber(exp) > now then
      out[#out + 1] = kind
      out[#out + 1] = tok
      out[#out + 1] = tonumber(f)
      out[#out + 1] = tonumber(exp) - now
    end
  end
end
return out
