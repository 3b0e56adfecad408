-- rw_prolong: renew, extend or refresh one hold of a read-write lock.
-- KEYS[1]  the lock's hash
-- ARGV[1]  the hold's field: 'r:<token>' or 'w:<token>'
-- ARGV[2]  milliseconds: the TTL (renew, refresh) or the time to add (extend)
-- ARGV[3]  a generation, as for prolong.lua (internal/core/protocol.go)
-- ARGV[4]  'renew', 'extend' or 'refresh'
-- ARGV[5]  the hold's fence
-- Fields as in rw_acquire.lua. Expired fields are deleted first.
-- Returns {1, ms} with the hold's remaining time afterwards, or {0, 1} when
-- the field is gone, holds another fence or has expired (reviving an expired
-- hold could let a writer in beside others); then nothing else changed.
--   renew:   a remaining time below ARGV[2] is raised to it, never shortened;
--            a generation below ARGV[3] is raised to it.
--   extend:  adds ARGV[2], and refresh sets the remaining time to ARGV[2],
--            only if the generation is below ARGV[3], setting it to ARGV[3].
-- The hash's TTL is raised to the hold's expiry if lower, never shortened.
-- Run twice, or late: as prolong.lua — renew gives the same result, extend
-- and refresh apply once per generation.
local field, ms, gen, mode = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('hgetall', KEYS[1])
for i = 1, #all, 2 do
  local e = string.match(all[i + 1], ':(%d+)$')
  if not e or tonumber(e) <= now then
    redis.call('hdel', KEYS[1], all[i])
  end
end
local v = redis.call('hget', KEYS[1], field)
local f, g, exp
if v then
  f, g, exp = string.match(v, '^(%d+):(%d+):(%d+)$')
end
if not f or f ~= ARGV[5] then
  return {0, 1}
end
g, exp = tonumber(g), tonumber(exp)
local newg, newexp = g, exp
if mode == 'renew' then
  if g < gen then
    newg = gen
  end
  if exp - now < ms then
    newexp = now + ms
  end
elseif g < gen then
  newg = gen
  if mode == 'extend' then
    newexp = exp + ms
  else
    newexp = now + ms
  end
end
if newg ~= g or newexp ~= exp then
  redis.call('hset', KEYS[1], field, string.format('%s:%d:%d', f, newg, newexp))
end
if redis.call('pttl', KEYS[1]) < newexp - now then
  redis.call('pexpire', KEYS[1], newexp - now)
end
return {1, newexp - now}
