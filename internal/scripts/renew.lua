-- renew: keep held lock keys alive without shortening them.
-- KEYS[1..n]  lock keys
-- ARGV[1]     the holder's token
-- ARGV[2]     TTL in milliseconds
-- ARGV[3]     the lease's generation: the number of its Refresh calls
-- Returns {1, pttl} with the smallest remaining TTL after the renewal when all
-- keys hold the token (a key whose TTL is below ARGV[2] is set to ARGV[2];
-- one extended further keeps its TTL), or {0, i} when KEYS[i] does not hold
-- the token; then nothing was changed.
-- A key whose generation is below ARGV[3] is raised to it (TTL kept): a
-- Refresh whose outcome the lease never learnt can then no longer apply, so
-- it cannot shorten the key after this renewal (see refresh.lua).
-- Run twice: the same TTL and generation result.
local tok, ttl, gen = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local held = {}
for i = 1, #KEYS do
  local v = redis.call('get', KEYS[i])
  local f, g, t
  if v then
    f, g, t = string.match(v, '^(%d+):(%d+):(.*)$')
  end
  if t ~= tok then
    return {0, i}
  end
  held[i] = {f, tonumber(g)}
end
local min = -1
for i = 1, #KEYS do
  if held[i][2] < gen then
    redis.call('set', KEYS[i], string.format('%s:%d:%s', held[i][1], gen, tok), 'KEEPTTL')
  end
  local pttl = redis.call('pttl', KEYS[i])
  if pttl < ttl then
    redis.call('pexpire', KEYS[i], ttl)
    pttl = ttl
  end
  if min < 0 or pttl < min then
    min = pttl
  end
end
return {1, min}
