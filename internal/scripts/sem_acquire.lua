-- sem_acquire: take n units of a semaphore, or none.
-- KEYS[1]  the semaphore's hash: one field per hold, the hold's token
-- KEYS[2]  the fence counter of its hash slot
-- ARGV[1]  the attempt's token (made for this attempt alone)
-- ARGV[2]  TTL in milliseconds
-- ARGV[3]  n, the units wanted
-- ARGV[4]  the caller's limit (each caller's own limit decides its admission)
-- A field's value is "<fence>:<gen>:<units>:<expiresAtMs>", expiry on the
-- server's clock (TIME). Expired fields are deleted first; the hash's own
-- TTL is kept at the latest expiry of its fields, so it vanishes with them.
-- Returns {1, fence, used, seq} when the hold of ARGV[1] exists (now or from
-- an earlier run), or {0, free, ms, used, seq} when fewer than n units are
-- free: free is the limit minus the units held (at least 0), ms the time
-- until the earliest hold expires (-1: none); then nothing but expired fields
-- changed. used is the units of the unexpired holds afterwards and seq the
-- fence counter then (the hint by which a process wakes its waiters; seq
-- orders such hints, see internal/wake/admit.go).
-- Run twice: the second run finds the first run's field and returns its
-- fence (unchanged TTL: validity counts from the first run's sending).
local tok, ttl, n, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('hgetall', KEYS[1])
local used, earliest, latest, mine = 0, -1, now, nil
for i = 1, #all, 2 do
  local f, u, exp = string.match(all[i + 1], '^(%d+):%d+:(%d+):(%d+)$')
  exp = tonumber(exp)
  if not f or exp <= now then
    redis.call('hdel', KEYS[1], all[i])
  else
    if all[i] == tok then
      mine = f
    end
    used = used + tonumber(u)
    if earliest < 0 or exp < earliest then
      earliest = exp
    end
    if exp > latest then
      latest = exp
    end
  end
end
if mine then
  return {1, tonumber(mine), used, tonumber(redis.call('get', KEYS[2]) or 0)}
end
if used + n > limit then
  local wait = -1
  if earliest >= 0 then
    wait = earliest - now
  end
  return {0, math.max(limit - used, 0), wait, used, tonumber(redis.call('get', KEYS[2]) or 0)}
end
local fence = redis.call('incr', KEYS[2])
local exp = now + ttl
redis.call('hset', KEYS[1], tok, string.format('%d:0:%d:%d', fence, n, exp))
if exp > latest then
  latest = exp
end
redis.call('pexpire', KEYS[1], latest - now)
return {1, fence, used + n, fence}
