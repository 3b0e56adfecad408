-- extend: add time to the remaining TTL of held lock keys (redis-py extend).
-- KEYS[1..n]  lock keys
-- ARGV[1]     the owner's token
-- ARGV[2]     milliseconds to add
-- Returns {1, pttl} with the smallest remaining TTL after extending when all
-- keys hold the token, or {0, i} when KEYS[i] does not; then nothing changed.
for i = 1, #KEYS do
  if redis.call('get', KEYS[i]) ~= ARGV[1] then
    return {0, i}
  end
end
local add = tonumber(ARGV[2])
local min = -1
for i = 1, #KEYS do
  local pttl = redis.call('pttl', KEYS[i])
  if pttl < 0 then
    pttl = 0
  end
  pttl = pttl + add
  redis.call('pexpire', KEYS[i], pttl)
  if min < 0 or pttl < min then
    min = pttl
  end
end
return {1, min}
