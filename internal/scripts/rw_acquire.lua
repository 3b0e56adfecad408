-- rw_acquire: take a read-write lock for reading or writing, or nothing.
-- KEYS[1]  the lock's hash
-- KEYS[2]  the fence counter of its hash slot
-- ARGV[1]  the attempt's token (made for this attempt alone)
-- ARGV[2]  TTL in milliseconds
-- ARGV[3]  'read' or 'write'
-- ARGV[4]  write only: the waiting writer's claim id (one per Lock call), or
--          '' for no claim (TryLock)
-- Fields: 'r:<token>' per reader hold and 'w:<token>' for the writer hold,
-- each "<fence>:<gen>:<expiresAtMs>"; 'want' = "<claim>:<expiresAtMs>", a
-- waiting writer's claim that keeps new readers out. Expiry is on the
-- server's clock (TIME). Expired fields are deleted first; the hash's TTL is
-- kept at the latest expiry of its fields.
-- A reader is admitted when no live writer and no live claim exist; a writer
-- when no live reader and no other live writer exist (it then clears its own
-- claim). A writer that is refused sets or refreshes the claim to now + TTL
-- when ARGV[4] is set and no other claim is live.
-- Returns {1, fence, state, seq} when the hold of ARGV[1] exists (now or
-- from an earlier run), or {0, ms, state, seq} when refused: ms until the
-- earliest live field expires (-1: none). state is the lock afterwards, read
-- holds*4 + 2 if a write hold exists + 1 if a claim does, and seq the fence
-- counter then (the hint by which a process wakes its waiters; seq orders
-- such hints, see internal/wake/admit.go).
-- Run twice: the second run finds the first run's field and returns its
-- fence (unchanged TTL: validity counts from the first run's sending); a
-- refused run only refreshes the claim.
local tok, ttl, mode, claim = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mine = (mode == 'write' and 'w:' or 'r:') .. tok
local all = redis.call('hgetall', KEYS[1])
local readers, writer, want = 0, false, nil
local earliest, latest, fence = -1, now, nil
for i = 1, #all, 2 do
  local k, v = all[i], all[i + 1]
  local f, exp, who
  if k == 'want' then
    who, exp = string.match(v, '^(.*):(%d+)$')
  else
    f, exp = string.match(v, '^(%d+):%d+:(%d+)$')
  end
  exp = tonumber(exp)
  if not exp or exp <= now then
    redis.call('hdel', KEYS[1], k)
  else
    if k == 'want' then
      want = who
    elseif k == mine then
      fence = f
    elseif string.sub(k, 1, 2) == 'w:' then
      writer = true
    else
      readers = readers + 1
    end
    if earliest < 0 or exp < earliest then
      earliest = exp
    end
    if exp > latest then
      latest = exp
    end
  end
end
local function state(r, w, c)
  local code = r * 4
  if w then
    code = code + 2
  end
  if c then
    code = code + 1
  end
  return code
end
local function seq()
  return tonumber(redis.call('get', KEYS[2]) or 0)
end
if fence then
  if mode == 'write' then
    return {1, tonumber(fence), state(readers, true, want ~= nil), seq()}
  end
  return {1, tonumber(fence), state(readers + 1, writer, want ~= nil), seq()}
end
local free
if mode == 'write' then
  free = not writer and readers == 0
else
  free = not writer and not want
end
if not free then
  if mode == 'write' and claim ~= '' and (not want or want == claim) then
    local exp = now + ttl
    redis.call('hset', KEYS[1], 'want', claim .. ':' .. exp)
    if earliest < 0 or exp < earliest then
      earliest = exp
    end
    if exp > latest then
      latest = exp
    end
    redis.call('pexpire', KEYS[1], latest - now)
  end
  local wait = -1
  if earliest >= 0 then
    wait = earliest - now
  end
  local claimed = want ~= nil or (mode == 'write' and claim ~= '')
  return {0, wait, state(readers, writer, claimed), seq()}
end
fence = redis.call('incr', KEYS[2])
local exp = now + ttl
redis.call('hset', KEYS[1], mine, string.format('%d:0:%d', fence, exp))
if mode == 'write' and want and want == claim then
  redis.call('hdel', KEYS[1], 'want')
  want = nil
end
if exp > latest then
  latest = exp
end
redis.call('pexpire', KEYS[1], latest - now)
if mode == 'write' then
  return {1, fence, state(readers, true, want ~= nil), fence}
end
return {1, fence, state(readers + 1, writer, want ~= nil), fence}
