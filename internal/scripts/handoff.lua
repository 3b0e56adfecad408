-- handoff: release a lock and, when no other process waits for it, hand it
-- to the releasing process's next waiter in the same call.
-- KEYS[1]  lock key
-- KEYS[2]  the fence counter of its hash slot
-- ARGV[1]  the releasing holder's token
-- ARGV[2]  the fence of its hold
-- ARGV[3]  a fresh token made for this handoff alone (never an attempt's)
-- ARGV[4]  the next waiter's TTL in milliseconds
-- ARGV[5]  the wake-up channel
-- A held key's value is "<fence>:<gen>:<token>", or "<fence>:<gen>w:<token>"
-- once a waiter marked it (see internal/core/protocol.go).
-- Returns {0} when KEYS[1] holds neither the releaser's hold nor ARGV[3]
-- (nothing changed);
-- {1} when the lock was released and the wake-up published, because the hold
-- is marked and other processes subscribe to the channel (they get their fair
-- chance);
-- {2, fence} when the lock holds ARGV[3] with that fence (unmarked). An
-- unmarked hold is handed over without asking who subscribes: no waiter
-- tried it since it was made (a waiter subscribes before its attempt, which
-- marks the hold).
-- Run twice: a second run finds ARGV[3] and returns the first run's {2, fence};
-- after a {1} it finds neither and returns {0}.
local v = redis.call('get', KEYS[1])
local f, m, t
if v then
  f, m, t = string.match(v, '^(%d+):%d+(w?):(.*)$')
end
if t == ARGV[3] then
  return {2, tonumber(f)}
end
if t ~= ARGV[1] or f ~= ARGV[2] then
  return {0}
end
-- Subscribers of the channel: the releasing process itself is one of them.
local n = 1
if m == 'w' then
  local subs = redis.pcall('pubsub', 'shardnumsub', ARGV[5])
  if type(subs) == 'table' and subs.err then
    subs = redis.pcall('pubsub', 'numsub', ARGV[5])
  end
  n = 2
  if type(subs) == 'table' and not subs.err and subs[2] ~= nil then
    n = tonumber(subs[2])
  end
end
if n <= 1 then
  local fence = redis.call('incr', KEYS[2])
  redis.call('set', KEYS[1], string.format('%d:0:%s', fence, ARGV[3]), 'PX', ARGV[4])
  return {2, fence}
end
redis.call('del', KEYS[1])
local msg = f .. ':' .. t
local ok = redis.pcall('spublish', ARGV[5], msg)
if type(ok) == 'table' and ok.err then
  redis.call('publish', ARGV[5], msg)
end
return {1}
