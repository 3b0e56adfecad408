-- acquire1: take the lock key of a group of one key (a mutex; a multilock
-- group of one name). acquire.lua does the same for any number of keys; this
-- one saves a call and returns an integer.
-- KEYS[1]  lock key
-- KEYS[2]  the fence counter of its hash slot
-- ARGV[1]  the attempt's token
-- ARGV[2]  TTL in milliseconds
-- ARGV[3]  '1' if ARGV[1] is an owner's custom token, '0' if it was made
--          for this attempt
-- A held key's value is "<fence>:<gen>:<token>", or "<fence>:<gen>w:<token>"
-- once a waiter marked it (see internal/core/protocol.go).
-- Returns the fence (> 0) when the key was free or already held by ARGV[1]
-- and now holds it, or -2 - pttl (< 0) when it holds another token (pttl: its
-- remaining TTL in ms, -1 without one); then the hold is marked (its release
-- publishes the wake-up: the caller waits for one) and otherwise only the
-- fence counter changed.
-- A fence is drawn first and the key set only if it does not exist (SET NX
-- GET, which also returns the value that was there: one call for both). When
-- the key exists the fence drawn may stay unused: fences need only increase
-- strictly per name, and every later hold draws a larger one. A key already
-- holding ARGV[1]:
--   attempt token: it can only be this very attempt, run before (go-redis
--     resent it after a lost reply): the first run's fence is returned, the
--     TTL raised to ARGV[2] if lower.
--   custom token: a re-obtain by the owner (another process resuming): the
--     hold is taken over with the fence just drawn and generation 0, so
--     requests of the earlier hold that are still in flight (a late release,
--     refresh or renewal) no longer match it; its TTL is never shortened and
--     its mark is kept.
-- Run twice: with an attempt token the second run finds the first run's hold
-- and returns its fence (the fence it drew stays unused); with a custom token
-- it re-obtains (a fresh fence), and the caller gets the fence the key holds;
-- a busy attempt marks the hold again, which changes nothing.
local tok = ARGV[1]
local f = redis.call('incr', KEYS[2])
local val = string.format('%d:0:%s', f, tok)
local v = redis.pcall('set', KEYS[1], val, 'NX', 'PX', ARGV[2], 'GET')
if type(v) == 'table' and v.err then
  -- Redis before 7.0 refuses NX with GET: set, then read what is there.
  if redis.call('set', KEYS[1], val, 'NX', 'PX', ARGV[2]) then
    return f
  end
  v = redis.call('get', KEYS[1])
elseif not v then
  return f
end
local hf, g, m, t = string.match(v, '^(%d+)(:%d+)(w?):(.*)$')
if t ~= tok then
  if m == '' then
    -- Mark the hold: its release publishes the wake-up only when marked.
    redis.call('set', KEYS[1], hf .. g .. 'w:' .. t, 'KEEPTTL')
  end
  return -2 - redis.call('pttl', KEYS[1])
end
local ttl = tonumber(ARGV[2])
local pttl = redis.call('pttl', KEYS[1])
if ARGV[3] ~= '1' then
  -- This attempt's own hold, from an earlier run.
  if pttl < ttl then
    redis.call('pexpire', KEYS[1], ttl)
  end
  return tonumber(hf)
end
if m == 'w' then
  val = string.format('%d:0w:%s', f, tok)
end
redis.call('set', KEYS[1], val, 'PX', math.max(pttl, ttl)) -- a re-obtain never shortens
return f
