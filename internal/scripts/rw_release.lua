-- rw_release: end one hold of a read-write lock (and/or a waiting writer's
-- claim) and wake waiters.
-- KEYS[1]  the lock's hash
-- KEYS[2]  the fence counter of its hash slot (read only)
-- ARGV[1]  the hold's token
-- ARGV[2]  the hold's fence; '' matches any fence (the cleanup of an attempt
--          whose reply was lost, under a token made for it alone)
-- ARGV[3]  the wake-up channel
-- ARGV[4]  'r' (reader) or 'w' (writer): the field is ARGV[4]..':'..ARGV[1]
-- ARGV[5]  a claim id whose 'want' field is deleted too (a writer that gives
--          up waiting), or ''
-- Fields as in rw_acquire.lua. Expired fields are deleted first.
-- Returns {1, state, seq} when the hold of ARGV[1] held that fence and was
-- deleted, else {0, state, seq}; state is the lock afterwards, coded as in
-- rw_acquire.lua, and seq the fence counter. When the hold or the claim was
-- deleted, "<fence>:<token>:r<state>.<seq>" is published with SPUBLISH
-- (PUBLISH where SPUBLISH is unknown). Redis deletes the hash with its last
-- field.
-- Run twice, or late: the second run finds neither field and returns
-- {0, state, seq}; a fence is never given twice, so it cannot delete a later
-- hold.
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('hgetall', KEYS[1])
local live = {}
for i = 1, #all, 2 do
  local exp = string.match(all[i + 1], ':(%d+)$')
  if not exp or tonumber(exp) <= now then
    redis.call('hdel', KEYS[1], all[i])
  else
    live[all[i]] = true
  end
end
local field = ARGV[4] .. ':' .. ARGV[1]
local v = redis.call('hget', KEYS[1], field)
local f, n, gone = nil, 0, false
if v then
  f = string.match(v, '^(%d+):')
  if ARGV[2] == '' or f == ARGV[2] then
    redis.call('hdel', KEYS[1], field)
    live[field] = nil
    n, gone = 1, true
  end
end
if ARGV[5] ~= '' then
  local w = redis.call('hget', KEYS[1], 'want')
  if w and string.match(w, '^(.*):%d+$') == ARGV[5] then
    redis.call('hdel', KEYS[1], 'want')
    live['want'] = nil
    gone = true
  end
end
local code = 0
for k in pairs(live) do
  if k == 'want' then
    code = code + 1
  elseif string.sub(k, 1, 2) == 'w:' then
    code = code + 2
  else
    code = code + 4
  end
end
local seq = tonumber(redis.call('get', KEYS[2]) or 0)
if gone then
  local msg = (f or '') .. ':' .. ARGV[1] .. ':r' .. code .. '.' .. seq
  local ok = redis.pcall('spublish', ARGV[3], msg)
  if type(ok) == 'table' and ok.err then
    redis.call('publish', ARGV[3], msg)
  end
end
return {n, code, seq}
