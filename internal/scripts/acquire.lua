-- acquire: take every lock key of one group (same hash slot), or none.
-- KEYS[1..n]  lock keys
-- KEYS[n+1]   the fence counter of their hash slot
-- ARGV[1]     the attempt's token
-- ARGV[2]     TTL in milliseconds
-- A held key's value is "<fence>:<gen>:<token>" (see internal/core/protocol.go).
-- Returns {1, gen, fence_1, ..., fence_n} when every key was free or already
-- held by ARGV[1] and now holds it, or {0, pttl, i} when KEYS[i] holds
-- another token (pttl: its remaining TTL in ms); then nothing was changed.
-- Free keys get fresh fences from the counter; a key already holding
-- ARGV[1] keeps its fence and generation (gen: the largest found, 0 if none)
-- and its TTL is raised to ARGV[2] if lower, never shortened.
-- Run twice: the second run finds every key holding ARGV[1] and returns the
-- first run's fences. Every key is checked before any is written.
local n = #KEYS - 1
local tok, ttl = ARGV[1], tonumber(ARGV[2])
local fences, gen, fresh = {}, 0, 0
for i = 1, n do
  local v = redis.call('get', KEYS[i])
  if v then
    local f, g, t = string.match(v, '^(%d+):(%d+):(.*)$')
    if t ~= tok then
      return {0, redis.call('pttl', KEYS[i]), i}
    end
    fences[i] = tonumber(f)
    if tonumber(g) > gen then
      gen = tonumber(g)
    end
  else
    fresh = fresh + 1
  end
end
local next = 0
if fresh > 0 then
  next = redis.call('incrby', KEYS[n + 1], fresh) - fresh
end
local reply = {1, gen}
for i = 1, n do
  if fences[i] then
    if redis.call('pttl', KEYS[i]) < ttl then
      redis.call('pexpire', KEYS[i], ttl)
    end
  else
    next = next + 1
    fences[i] = next
    redis.call('set', KEYS[i], string.format('%d:0:%s', next, tok), 'PX', ttl)
  end
  reply[i + 2] = fences[i]
end
return reply
