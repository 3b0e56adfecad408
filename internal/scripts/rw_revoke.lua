-- rw_revoke: force-release one hold of a read-write lock, the writer's or a
-- reader's (an operator's revocation), wake waiters and tell the holder.
-- KEYS[1]  the lock's hash
-- KEYS[2]  the hold's tombstone (KEYS[1] .. ':revoked:' .. ARGV[1])
-- ARGV[1]  the hold's token (field 'w:<token>' or 'r:<token>')
-- ARGV[2]  the revocation channel of the prefix
-- ARGV[3]  the wake-up channel
-- Fields as in rw_acquire.lua: "<fence>:<gen>:<expiresAtMs>" (server clock).
-- Returns 1 when the live field of ARGV[1] was deleted: then, like
-- rw_release, "<fence>:<token>" is published on ARGV[3] (SPUBLISH, or
-- PUBLISH where SPUBLISH is unknown), the notice
-- "<fence>:<len(token)>:<token><hash>" on ARGV[2] with classic PUBLISH, and
-- the tombstone set to the fence until the hold would have expired. Returns
-- 2 when there is no live field but a tombstone (revoked before), else 0;
-- then nothing is changed or published. Other holds and a waiting writer's
-- claim are never touched.
-- Run twice, or late: the second run finds no field and returns 2 (or 0
-- once the tombstone expired); tokens are never reused, so a late run cannot
-- touch a later hold.
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, kind in ipairs({'w:', 'r:'}) do
  local field = kind .. ARGV[1]
  local v = redis.call('hget', KEYS[1], field)
  local f, exp
  if v then
    f, exp = string.match(v, '^(%d+):%d+:(%d+)$')
  end
  if f and tonumber(exp) > now then
    redis.call('hdel', KEYS[1], field)
    redis.call('set', KEYS[2], f, 'PX', tonumber(exp) - now)
    local msg = f .. ':' .. ARGV[1]
    local ok = redis.pcall('spublish', ARGV[3], msg)
    if type(ok) == 'table' and ok.err then
      redis.call('publish', ARGV[3], msg)
    end
    redis.call('publish', ARGV[2], f .. ':' .. #ARGV[1] .. ':' .. ARGV[1] .. KEYS[1])
    return 1
  end
end
if redis.call('exists', KEYS[2]) == 1 then
  return 2
end
return 0
