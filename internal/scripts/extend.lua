-- extend: add time to the remaining TTL of held lock keys (redis-py extend).
-- KEYS[1..n]  lock keys
-- ARGV[1]     the holder's token
-- ARGV[2]     milliseconds to add
-- ARGV[3]     this extend's generation: the lease's previous one plus 1
-- Returns {1, pttl} with the smallest remaining TTL after extending when all
-- keys hold the token, or {0, i} when KEYS[i] does not; then nothing changed.
-- A key is extended and its generation set to ARGV[3] only if its generation
-- is below ARGV[3]. Run twice, or late: the second run finds the generation
-- at or past ARGV[3] and only reports the remaining TTL, so the time is added
-- once (see refresh.lua for why generations exist).
local tok, add, gen = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
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
  local pttl = redis.call('pttl', KEYS[i])
  if held[i][2] < gen then
    if pttl < 0 then
      pttl = 0
    end
    pttl = pttl + add
    redis.call('set', KEYS[i], string.format('%s:%d:%s', held[i][1], gen, tok), 'PX', pttl)
  end
  if min < 0 or pttl < min then
    min = pttl
  end
end
return {1, min}
