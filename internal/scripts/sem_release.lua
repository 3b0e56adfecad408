-- sem_release: end one hold of a semaphore and wake waiters.
-- KEYS[1]  the semaphore's hash
-- KEYS[2]  the fence counter of its hash slot (read only)
-- ARGV[1]  the hold's token
-- ARGV[2]  the hold's fence; '' matches any fence (the cleanup of an attempt
--          whose reply was lost, under a token made for it alone)
-- ARGV[3]  the wake-up channel
-- A field's value is "<fence>:<gen>:<units>:<expiresAtMs>".
-- Returns {1, used, seq} when the field of ARGV[1] held that fence and was
-- deleted (and "<fence>:<token>:s<used>.<seq>" published with SPUBLISH, or
-- PUBLISH where SPUBLISH is unknown), else {0, used, seq}; nothing else is
-- touched. used is the units of the unexpired holds afterwards and seq the
-- fence counter (by which each process wakes the waiters that now fit).
-- Redis deletes the hash with its last field.
-- Run twice, or late: the second run finds no field and returns {0, used,
-- seq}; a fence is never given twice, so it cannot delete a later hold.
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('hgetall', KEYS[1])
local used, f, n = 0, nil, 0
for i = 1, #all, 2 do
  local hf, u, exp = string.match(all[i + 1], '^(%d+):%d+:(%d+):(%d+)$')
  if all[i] == ARGV[1] and (ARGV[2] == '' or hf == ARGV[2]) then
    f, n = hf or '', 1
  elseif hf and tonumber(exp) > now then
    used = used + tonumber(u)
  end
end
local seq = tonumber(redis.call('get', KEYS[2]) or 0)
if n == 0 then
  return {0, used, seq}
end
redis.call('hdel', KEYS[1], ARGV[1])
local msg = f .. ':' .. ARGV[1] .. ':s' .. used .. '.' .. seq
local ok = redis.pcall('spublish', ARGV[3], msg)
if type(ok) == 'table' and ok.err then
  redis.call('publish', ARGV[3], msg)
end
return {1, used, seq}
