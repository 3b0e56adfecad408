-- acquire: take every lock key of one group (same hash slot), or none.
-- (A group of one key uses acquire1.lua.)
-- KEYS[1..n]  lock keys
-- KEYS[n+1]   the fence counter of their hash slot
-- ARGV[1]     the attempt's token
-- ARGV[2]     TTL in milliseconds
-- ARGV[3]     '1' if ARGV[1] is an owner's custom token, '0' if it was made
--             for this attempt
-- A held key's value is "<fence>:<gen>:<token>" (see internal/core/protocol.go).
-- Returns {1, fence_1, ..., fence_n} when every key was free or already held
-- by ARGV[1] and now holds it, or {0, pttl, i} when KEYS[i] holds another
-- token (pttl: its remaining TTL in ms); then nothing was changed. Every key
-- is checked before any is written.
-- A free key gets a fresh fence from the counter. A key already holding
-- ARGV[1]:
--   attempt token: it can only be this very attempt, run before (go-redis
--     resent it after a lost reply): the first run's fence is returned, the
--     TTL raised to ARGV[2] if lower.
--   custom token: a re-obtain by the owner (another process resuming): the
--     hold is taken over with a fresh fence and generation 0, so requests of
--     the earlier hold that are still in flight (a late release, refresh or
--     renewal) no longer match it; its TTL is never shortened.
-- Run twice: with an attempt token the second run returns the first run's
-- fences; with a custom token it re-obtains (fresh fences), and the caller
-- gets the fences the key holds.
local n = #KEYS - 1
local tok, ttl, custom = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local fences, existed, fresh = {}, {}, 0
for i = 1, n do
  local v = redis.call('get', KEYS[i])
  if v then
    local f, t = string.match(v, '^(%d+):%d+:(.*)$')
    if t ~= tok then
      return {0, redis.call('pttl', KEYS[i]), i}
    end
    existed[i] = true
    if not custom then
      fences[i] = tonumber(f)
    end
  end
  if not fences[i] then
    fresh = fresh + 1
  end
end
local next = 0
if fresh > 0 then
  next = redis.call('incrby', KEYS[n + 1], fresh) - fresh
end
local reply = {1}
for i = 1, n do
  if fences[i] then
    -- This attempt's own hold, from an earlier run.
    if redis.call('pttl', KEYS[i]) < ttl then
      redis.call('pexpire', KEYS[i], ttl)
    end
  else
    local pttl = ttl
    if existed[i] then
      pttl = math.max(redis.call('pttl', KEYS[i]), ttl) -- a re-obtain never shortens
    end
    next = next + 1
    fences[i] = next
    redis.call('set', KEYS[i], string.format('%d:0:%s', next, tok), 'PX', pttl)
  end
  reply[i + 1] = fences[i]
end
return reply
