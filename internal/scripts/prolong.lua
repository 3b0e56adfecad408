-- prolong: change the remaining TTL of held lock keys — renew, extend or
-- refresh, the three ways a lease keeps or moves its deadline.
-- KEYS[1..n]  lock keys
-- ARGV[1]     the holder's token
-- ARGV[2]     milliseconds: the TTL (renew, refresh) or the time to add (extend)
-- ARGV[3]     a generation (see internal/core/protocol.go): for renew the
--             lease's current one, for extend and refresh the lease's
--             previous one plus 1, made for this request
-- ARGV[4]     'renew', 'extend' or 'refresh'
-- ARGV[5..]   the fence of each key's hold (ARGV[i+4] belongs to KEYS[i])
-- A held key's value is "<fence>:<gen>:<token>", or "<fence>:<gen>w:<token>"
-- once a waiter marked it (see internal/core/protocol.go); a rewritten value
-- keeps the mark.
-- The keys are read with one MGET; renew raises a TTL with PEXPIRE GT (one
-- call a key; PTTL then PEXPIRE before Redis 7.0, or when GT left it).
-- Returns {1, pttl} with the smallest remaining TTL afterwards when all keys
-- hold the hold (token and fence), or {0, i} when KEYS[i] does not; then
-- nothing changed.
--   renew:   a TTL below ARGV[2] is raised to it, never shortened; a key's
--            generation below ARGV[3] is raised to it (TTL kept).
--   extend:  adds ARGV[2] to the TTL, and refresh sets the TTL to ARGV[2],
--            only if the key's generation is below ARGV[3], setting it to
--            ARGV[3]; otherwise the key is left as it is.
-- Run twice, or late: renew gives the same result; extend and refresh find
-- the generation already at ARGV[3] (or raised past it by a later request of
-- the lease) and change nothing — so the time is added once, and a refresh
-- whose reply was lost can never shorten the key after the lease has moved
-- on (its next renew, extend or refresh supersedes it).
local tok, ms, gen, mode = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local n = #KEYS
local vals
if n <= 1000 then
  vals = redis.call('mget', unpack(KEYS))
else -- unpack's limit
  vals = {}
  for s = 1, n, 1000 do
    local part = redis.call('mget', unpack(KEYS, s, math.min(s + 999, n)))
    for j = 1, #part do
      vals[s + j - 1] = part[j]
    end
  end
end
local held = {}
for i = 1, n do
  local v = vals[i]
  local f, g, m, t
  if v then
    f, g, m, t = string.match(v, '^(%d+):(%d+)(w?):(.*)$')
  end
  if t ~= tok or f ~= ARGV[i + 4] then
    return {0, i}
  end
  held[i] = {f, tonumber(g), m}
end
local min = -1
local gt = true -- PEXPIRE GT (Redis 7.0+) until it is refused
for i = 1, n do
  local f, g = held[i][1], held[i][2]
  local value = string.format('%s:%d%s:%s', f, gen, held[i][3], tok)
  local pttl
  if mode == 'renew' then
    if g < gen then
      redis.call('set', KEYS[i], value, 'KEEPTTL')
    end
    local raised = gt and redis.pcall('pexpire', KEYS[i], ms, 'GT')
    if type(raised) == 'table' then
      gt, raised = false, false
    end
    if raised == 1 then
      pttl = ms
    else
      pttl = redis.call('pttl', KEYS[i])
      if pttl < ms then
        redis.call('pexpire', KEYS[i], ms)
        pttl = ms
      end
    end
  elseif g < gen then
    pttl = ms
    if mode == 'extend' then
      pttl = math.max(redis.call('pttl', KEYS[i]), 0) + ms
    end
    redis.call('set', KEYS[i], value, 'PX', pttl)
  else
    pttl = redis.call('pttl', KEYS[i])
  end
  if min < 0 or pttl < min then
    min = pttl
  end
end
return {1, min}
