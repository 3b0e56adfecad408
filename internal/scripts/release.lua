-- release: delete the lock keys that hold the holder's hold and wake waiters.
-- KEYS[1..n]        lock keys
-- ARGV[1]           the holder's token
-- ARGV[2..n+1]      the fence of each key's hold (ARGV[i+1] belongs to
--                   KEYS[i]); '' matches any fence (the cleanup of an attempt
--                   whose reply was lost, under a token made for it alone)
-- ARGV[n+2..2n+1]   the wake-up channel of each key
-- A held key's value is "<fence>:<gen>:<token>" (see internal/core/protocol.go).
-- Returns the index of the first key that did not hold the hold (0 if all
-- did): an integer, cheaper to reply than a table. Other keys are never
-- touched. Each deletion publishes "<fence>:<token>" on the key's channel
-- with SPUBLISH (sharded, Redis 7+), or PUBLISH where SPUBLISH is unknown.
-- Run twice, or late: the second run finds nothing of the hold and deletes
-- nothing (1); a fence is never given twice, so it cannot delete a later
-- hold, not even a re-obtain under the same custom token.
local n = #KEYS
local first = 0
for i = 1, n do
  local v = redis.call('get', KEYS[i])
  local f, t
  if v then
    f, t = string.match(v, '^(%d+):%d+:(.*)$')
  end
  if t == ARGV[1] and (ARGV[i + 1] == '' or f == ARGV[i + 1]) then
    redis.call('del', KEYS[i])
    local ch, msg = ARGV[n + i + 1], f .. ':' .. t
    local ok = redis.pcall('spublish', ch, msg)
    if type(ok) == 'table' and ok.err then
      redis.call('publish', ch, msg)
    end
  elseif first == 0 then
    first = i
  end
end
return first
