-- acquire: take every lock key of one group (same hash slot), or none.
-- KEYS[1..n]    lock keys
-- KEYS[n+1..2n] fence counters; KEYS[n+i] belongs to KEYS[i]
-- ARGV[1]       the owner's token
-- ARGV[2]       TTL in milliseconds
-- Returns {1, fence_1, ..., fence_n} when every lock key was free and now holds
-- the token, or {0, pttl, i} when KEYS[i] is held by someone (pttl is its
-- remaining TTL in ms) and nothing was changed.
local n = #KEYS / 2
for i = 1, n do
  if not redis.call('set', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then
    local pttl = redis.call('pttl', KEYS[i])
    for j = 1, i - 1 do
      redis.call('del', KEYS[j])
    end
    return {0, pttl, i}
  end
end
local reply = {1}
for i = 1, n do
  reply[i + 1] = redis.call('incr', KEYS[n + i])
end
return reply
