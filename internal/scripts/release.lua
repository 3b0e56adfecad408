-- release: delete the lock keys that hold the token and wake waiters.
-- KEYS[1..n]  lock keys
-- ARGV[1]     the holder's token
-- ARGV[2..]   wake-up channel of each key (ARGV[i+1] belongs to KEYS[i])
-- Returns {released, first}: how many keys were deleted, and the index of the
-- first key that did not hold the token (0 if all did). Keys holding another
-- token are never touched. The wake-up goes out with SPUBLISH (sharded, Redis
-- 7+) and falls back to PUBLISH where SPUBLISH is unknown.
-- Run twice: the second run finds nothing holding the token and deletes
-- nothing ({0, 1}); a token is never reused, so it cannot delete a later hold.
local released, first = 0, 0
for i = 1, #KEYS do
  local v = redis.call('get', KEYS[i])
  if v and string.match(v, '^%d+:%d+:(.*)$') == ARGV[1] then
    redis.call('del', KEYS[i])
    released = released + 1
    local ok = redis.pcall('spublish', ARGV[i + 1], ARGV[1])
    if type(ok) == 'table' and ok.err then
      redis.call('publish', ARGV[i + 1], ARGV[1])
    end
  elseif first == 0 then
    first = i
  end
end
return {released, first}
