-- revoke: force-release the lock keys that hold a token (an operator's
-- revocation), wake waiters and tell the holder.
-- KEYS[1..n]        lock keys
-- KEYS[n+1..2n]     the tombstone of each key for this token (key ..
--                   ':revoked:' .. token, same hash tag)
-- ARGV[1]           the token
-- ARGV[2]           the revocation channel of the keys' prefix
-- ARGV[3..n+2]      the wake-up channel of each key
-- A held key's value is "<fence>:<gen>:<token>", or "<fence>:<gen>w:<token>"
-- once a waiter marked it (see internal/core/protocol.go).
-- Every key holding ARGV[1], whatever its fence, is deleted; then
-- "<fence>:<token>" is published on its wake-up channel, marked or not (a
-- revocation is rare, and the holder's process hears it too), with SPUBLISH
-- (or PUBLISH where SPUBLISH is unknown), the notice
-- "<fence>:<len(token)>:<token><key>" is published on ARGV[2] with classic
-- PUBLISH (on Redis Cluster it reaches every node), and the tombstone is set
-- to the fence for the key's remaining TTL. Keys holding another token, or
-- none, are not touched.
-- Returns {revoked, already}: how many keys were deleted now, and how many
-- of the others have a live tombstone for ARGV[1] (revoked before).
-- Run twice, or late: the second run finds no key holding the token, deletes
-- and publishes nothing, and counts the first run's tombstones as already.
-- A random token is never reused, so a late run cannot touch a later hold;
-- a custom token names an owner, and a late run revokes whichever hold of
-- that owner is there.
local n = #KEYS / 2
local tok, notice = ARGV[1], ARGV[2]
local revoked, already = 0, 0
for i = 1, n do
  local v = redis.call('get', KEYS[i])
  local f, t
  if v then
    f, t = string.match(v, '^(%d+):%d+w?:(.*)$')
  end
  if t == tok then
    local pttl = redis.call('pttl', KEYS[i])
    redis.call('del', KEYS[i])
    if pttl > 0 then
      redis.call('set', KEYS[n + i], f, 'PX', pttl)
    end
    local ch, msg = ARGV[i + 2], f .. ':' .. t
    local ok = redis.pcall('spublish', ch, msg)
    if type(ok) == 'table' and ok.err then
      redis.call('publish', ch, msg)
    end
    redis.call('publish', notice, f .. ':' .. #t .. ':' .. t .. KEYS[i])
    revoked = revoked + 1
  elseif redis.call('exists', KEYS[n + i]) == 1 then
    already = already + 1
  end
end
return {revoked, already}
