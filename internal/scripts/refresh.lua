-- refresh: set the remaining TTL of held lock keys (redis-py
-- extend(replace_ttl=True) and reacquire) — the one operation that can
-- shorten a key's life.
-- KEYS[1..n]  lock keys
-- ARGV[1]     the holder's token
-- ARGV[2]     the new TTL in milliseconds
-- ARGV[3]     this refresh's generation: the lease's previous one plus 1
-- Returns {1, pttl} with the smallest remaining TTL when all keys hold the
-- token, or {0, i} when KEYS[i] does not; then nothing changed.
-- A key is set to ARGV[2] and its generation to ARGV[3] only if its
-- generation is below ARGV[3]. Run twice, or late: the second run finds the
-- generation already at ARGV[3] (or raised past it by a later renew, extend
-- or refresh of the lease) and changes nothing, so a refresh whose reply was
-- lost can never shorten a key after the lease has moved on.
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
  local pttl = ttl
  if held[i][2] < gen then
    redis.call('set', KEYS[i], string.format('%s:%d:%s', held[i][1], gen, tok), 'PX', ttl)
  else
    pttl = redis.call('pttl', KEYS[i])
  end
  if min < 0 or pttl < min then
    min = pttl
  end
end
return {1, min}
