-- sem_release: end one hold of a semaphore and wake waiters.
-- KEYS[1]  the semaphore's hash
-- ARGV[1]  the hold's token
-- ARGV[2]  the hold's fence; '' matches any fence (the cleanup of an attempt
--          whose reply was lost, under a token made for it alone)
-- ARGV[3]  the wake-up channel
-- A field's value is "<fence>:<gen>:<units>:<expiresAtMs>".
-- Returns 1 when the field of ARGV[1] held that fence and was deleted (and
-- "<fence>:<token>" published with SPUBLISH, or PUBLISH where SPUBLISH is
-- unknown), else 0; nothing else is touched. Redis deletes the hash with its
-- last field.
-- Run twice, or late: the second run finds no field and returns 0; a fence
-- is never given twice, so it cannot delete a later hold.
local v = redis.call('hget', KEYS[1], ARGV[1])
if not v then
  return 0
end
local f = string.match(v, '^(%d+):')
if ARGV[2] ~= '' and f ~= ARGV[2] then
  return 0
end
redis.call('hdel', KEYS[1], ARGV[1])
local msg = (f or '') .. ':' .. ARGV[1]
local ok = redis.pcall('spublish', ARGV[3], msg)
if type(ok) == 'table' and ok.err then
  redis.call('publish', ARGV[3], msg)
end
return 1
