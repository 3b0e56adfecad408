-- inspect: report whether lock keys hold a lease's hold, and for how long.
-- KEYS[1..n]    lock keys
-- ARGV[1]       the holder's token
-- ARGV[2..n+1]  the fence of each key's hold
-- A held key's value is "<fence>:<gen>:<token>", or "<fence>:<gen>w:<token>"
-- once a waiter marked it (see internal/core/protocol.go).
-- Returns {1, pttl} with the smallest remaining TTL when all keys hold it, or
-- {0, i} when KEYS[i] does not. Read-only, so safe to run twice.
local min = -1
for i = 1, #KEYS do
  local v = redis.call('get', KEYS[i])
  local f, t
  if v then
    f, t = string.match(v, '^(%d+):%d+w?:(.*)$')
  end
  if t ~= ARGV[1] or f ~= ARGV[i + 1] then
    return {0, i}
  end
  local pttl = redis.call('pttl', KEYS[i])
  if min < 0 or pttl < min then
    min = pttl
  end
end
return {1, min}
