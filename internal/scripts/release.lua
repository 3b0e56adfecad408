-- release: delete the lock keys that hold the holder's hold and wake waiters.
-- KEYS[1..n]        lock keys
-- ARGV[1]           the holder's token
-- ARGV[2..n+1]      the fence of each key's hold (ARGV[i+1] belongs to
--                   KEYS[i]); '' matches any fence (the cleanup of an attempt
--                   whose reply was lost, under a token made for it alone)
-- ARGV[n+2..2n+1]   the wake-up channel of each key
-- A held key's value is "<fence>:<gen>:<token>", or "<fence>:<gen>w:<token>"
-- once a waiter marked it (see internal/core/protocol.go).
-- Returns the index of the first key that did not hold the hold (0 if all
-- did): an integer, cheaper to reply than a table. Other keys are never
-- touched. Several keys are read with one MGET and deleted with one DEL. Each
-- deleted key that a waiter marked publishes "<fence>:<token>" on its channel
-- with SPUBLISH (sharded, Redis 7+), or PUBLISH where SPUBLISH is unknown; an
-- unmarked one publishes nothing: no other process tried it since the hold
-- was made (a waiter subscribes before its attempt, which marks the hold),
-- and this process wakes its own waiters without pub/sub.
-- Run twice, or late: the second run finds nothing of the hold and deletes
-- nothing (1); a fence is never given twice, so it cannot delete a later
-- hold, not even a re-obtain under the same custom token.
local function publish(ch, msg)
  local ok = redis.pcall('spublish', ch, msg)
  if type(ok) == 'table' and ok.err then
    redis.call('publish', ch, msg)
  end
end
local n = #KEYS
if n == 1 then -- a mutex: the same without tables
  local v = redis.call('get', KEYS[1])
  local f, m, t
  if v then
    f, m, t = string.match(v, '^(%d+):%d+(w?):(.*)$')
  end
  if t ~= ARGV[1] or (ARGV[2] ~= '' and f ~= ARGV[2]) then
    return 1
  end
  redis.call('del', KEYS[1])
  if m == 'w' then
    publish(ARGV[3], f .. ':' .. t)
  end
  return 0
end
local vals
if n <= 1000 then
  vals = redis.call('mget', unpack(KEYS))
else -- unpack's limit
  vals = {}
  for s = 1, n, 1000 do
    local part = redis.call('mget', unpack(KEYS, s, math.min(s + 999, n)))
    for j = 1, #part do
      vals[s + j - 1] = part[j]
    end
  end
end
local first, del, pub = 0, {}, {}
for i = 1, n do
  local v = vals[i]
  local f, m, t
  if v then
    f, m, t = string.match(v, '^(%d+):%d+(w?):(.*)$')
  end
  if t == ARGV[1] and (ARGV[i + 1] == '' or f == ARGV[i + 1]) then
    del[#del + 1] = KEYS[i]
    if m == 'w' then
      pub[#pub + 1] = {ARGV[n + i + 1], f .. ':' .. t}
    end
  elseif first == 0 then
    first = i
  end
end
for s = 1, #del, 1000 do
  redis.call('del', unpack(del, s, math.min(s + 999, #del)))
end
for _, p in ipairs(pub) do
  publish(p[1], p[2])
end
return first
