-- rw_inspect: report whether one hold of a read-write lock is there, and for
-- how long.
-- KEYS[1]  the lock's hash
-- ARGV[1]  the hold's field: 'r:<token>' or 'w:<token>'
-- ARGV[2]  the hold's fence
-- Returns {1, ms} with its remaining time, or {0, 1} when the field is gone,
-- holds another fence or has expired. Read-only (an expired field is left
-- for the next writing script to delete), so safe to run twice.
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('hget', KEYS[1], ARGV[1])
local f, exp
if v then
  f, exp = string.match(v, '^(%d+):%d+:(%d+)$')
end
if not f or f ~= ARGV[2] or tonumber(exp) <= now then
  return {0, 1}
end
return {1, tonumber(exp) - now}
