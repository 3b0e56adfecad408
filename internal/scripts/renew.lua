-- renew: keep held lock keys alive without shortening them.
-- KEYS[1..n]  lock keys
-- ARGV[1]     the owner's token
-- ARGV[2]     TTL in milliseconds
-- Returns {1, pttl} with the smallest remaining TTL after the renewal when all
-- keys hold the token (a key whose TTL is below ARGV[2] is set to ARGV[2];
-- one extended further by Extend keeps its TTL), or {0, i} when KEYS[i] does
-- not hold the token; then nothing was changed.
for i = 1, #KEYS do
  if redis.call('get', KEYS[i]) ~= ARGV[1] then
    return {0, i}
  end
end
local ttl = tonumber(ARGV[2])
local min = -1
for i = 1, #KEYS do
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
