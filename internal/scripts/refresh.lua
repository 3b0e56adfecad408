-- refresh: set the remaining TTL of held lock keys (redis-py
-- extend(replace_ttl=True) and reacquire).
-- KEYS[1..n]  lock keys
-- ARGV[1]     the owner's token
-- ARGV[2]     the new TTL in milliseconds
-- Returns {1, ttl} when all keys hold the token and were set, or {0, i} when
-- KEYS[i] does not; then nothing changed.
for i = 1, #KEYS do
  if redis.call('get', KEYS[i]) ~= ARGV[1] then
    return {0, i}
  end
end
for i = 1, #KEYS do
  redis.call('pexpire', KEYS[i], ARGV[2])
end
return {1, tonumber(ARGV[2])}
