-- handoff: release a lock and, when no other process waits for it, hand it
-- to the releasing process's next waiter in the same call.
-- KEYS[1]  lock key
-- KEYS[2]  the fence counter of its hash slot
-- ARGV[1]  the releasing holder's token
-- ARGV[2]  a fresh token made for this handoff alone (never an attempt's)
-- ARGV[3]  the next waiter's TTL in milliseconds
-- ARGV[4]  the wake-up channel
-- Returns {0} when KEYS[1] holds neither token (nothing changed);
-- {1} when the lock was released and the wake-up published, because other
-- processes subscribe to the channel (they get their fair chance);
-- {2, fence} when the lock holds ARGV[2] with that fence.
-- Run twice: a second run finds ARGV[2] and returns the first run's {2, fence};
-- after a {1} it finds neither token and returns {0}.
local v = redis.call('get', KEYS[1])
local f, t
if v then
  f, t = string.match(v, '^(%d+):%d+:(.*)$')
end
if t == ARGV[2] then
  return {2, tonumber(f)}
end
if t ~= ARGV[1] then
  return {0}
end
-- Subscribers of the channel: the releasing process itself is one of them.
local subs = redis.pcall('pubsub', 'shardnumsub', ARGV[4])
if type(subs) == 'table' and subs.err then
  subs = redis.pcall('pubsub', 'numsub', ARGV[4])
end
local n = 2
if type(subs) == 'table' and not subs.err and subs[2] ~= nil then
  n = tonumber(subs[2])
end
if n <= 1 then
  local fence = redis.call('incr', KEYS[2])
  redis.call('set', KEYS[1], string.format('%d:0:%s', fence, ARGV[2]), 'PX', ARGV[3])
  return {2, fence}
end
redis.call('del', KEYS[1])
local ok = redis.pcall('spublish', ARGV[4], ARGV[1])
if type(ok) == 'table' and ok.err then
  redis.call('publish', ARGV[4], ARGV[1])
end
return {1}
