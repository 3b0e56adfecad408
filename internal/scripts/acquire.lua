-- acquire: take every lock key of one group (same hash slot), or none.
-- (A group of one key uses acquire1.lua.)
-- KEYS[1..n]  lock keys
-- KEYS[n+1]   the fence counter of their hash slot
-- ARGV[1]     the attempt's token
-- ARGV[2]     TTL in milliseconds
-- ARGV[3]     '1' if ARGV[1] is an owner's custom token, '0' if it was made
--             for this attempt
-- A held key's value is "<fence>:<gen>:<token>", or "<fence>:<gen>w:<token>"
-- once a waiter marked it (see internal/core/protocol.go).
-- Returns the integer fence_1 when every key was free and now holds ARGV[1]
-- (KEYS[i] has fence_1 + i - 1: an integer is cheaper to reply than a table);
-- {1, fence_1, ..., fence_n} when every key was free or already held by
-- ARGV[1] and now holds it; or {0, pttl, i} when KEYS[i] holds another
-- token (pttl: its remaining TTL in ms); then KEYS[i]'s hold is marked (its
-- release publishes the wake-up: the caller waits for one) and nothing else
-- changed. Every key is checked (one MGET) before any is written.
-- A free key gets a fresh fence from the counter. A key already holding
-- ARGV[1]:
--   attempt token: it can only be this very attempt, run before (go-redis
--     resent it after a lost reply): the first run's fence is returned, the
--     TTL raised to ARGV[2] if lower.
--   custom token: a re-obtain by the owner (another process resuming): the
--     hold is taken over with a fresh fence and generation 0, so requests of
--     the earlier hold that are still in flight (a late release, refresh or
--     renewal) no longer match it; its TTL is never shortened and its mark
--     is kept.
-- Run twice: with an attempt token the second run returns the first run's
-- fences; with a custom token it re-obtains (fresh fences), and the caller
-- gets the fences the key holds; a busy attempt marks the hold again, which
-- changes nothing.
local n = #KEYS - 1
local tok, ttl, custom = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local vals
if n <= 1000 then
  vals = redis.call('mget', unpack(KEYS, 1, n))
else -- unpack's limit
  vals = {}
  for s = 1, n, 1000 do
    local part = redis.call('mget', unpack(KEYS, s, math.min(s + 999, n)))
    for j = 1, #part do
      vals[s + j - 1] = part[j]
    end
  end
end
local fences, marks, fresh, found = {}, {}, 0, 0
for i = 1, n do
  local v = vals[i]
  if v then
    local f, g, m, t = string.match(v, '^(%d+)(:%d+)(w?):(.*)$')
    if t ~= tok then
      if m == '' then
        -- Mark the hold: its release publishes the wake-up only when marked.
        redis.call('set', KEYS[i], f .. g .. 'w:' .. t, 'KEEPTTL')
      end
      return {0, redis.call('pttl', KEYS[i]), i}
    end
    marks[i] = m
    found = found + 1
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
if found == 0 then
  -- Every key free: the common case, in one SET each and an integer reply.
  local tail = ':0:' .. tok
  for i = 1, n do
    redis.call('set', KEYS[i], string.format('%d', next + i) .. tail, 'PX', ARGV[2])
  end
  return next + 1
end
local reply = {1}
for i = 1, n do
  if fences[i] then
    -- This attempt's own hold, from an earlier run.
    if redis.call('pttl', KEYS[i]) < ttl then
      redis.call('pexpire', KEYS[i], ttl)
    end
  else
    next = next + 1
    fences[i] = next
    if marks[i] then
      -- A re-obtain: never shortens, keeps the mark.
      local pttl = math.max(redis.call('pttl', KEYS[i]), ttl)
      redis.call('set', KEYS[i], string.format('%d:0%s:%s', next, marks[i], tok), 'PX', pttl)
    else
      redis.call('set', KEYS[i], string.format('%d:0:%s', next, tok), 'PX', ttl)
    end
  end
  reply[i + 1] = fences[i]
end
return reply
