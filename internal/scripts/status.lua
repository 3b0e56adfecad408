-- status: report who holds lock keys and how many processes wait (read-only).
-- KEYS[1..n]    lock keys
-- ARGV[1..n]    the wake-up channel of each key
-- Returns {v_1, pttl_1, subs_1, ..., v_n, pttl_n, subs_n}: each key's value
-- ("<fence>:<gen>:<token>", "<fence>:<gen>w:<token>" once a waiter marked
-- it, or '' when free), its PTTL in ms (-2 when free,
-- -1 without expiry) and the number of subscribers of its wake-up channel
-- (PUBSUB SHARDNUMSUB, or NUMSUB where sharded pub/sub is unknown; -1 if
-- neither answers). Read-only, so safe to run twice.
local out = {}
for i = 1, #KEYS do
  local v = redis.call('get', KEYS[i])
  local pttl = redis.call('pttl', KEYS[i])
  local subs = redis.pcall('pubsub', 'shardnumsub', ARGV[i])
  if type(subs) == 'table' and subs.err then
    subs = redis.pcall('pubsub', 'numsub', ARGV[i])
  end
  local n = -1
  if type(subs) == 'table' and not subs.err and subs[2] ~= nil then
    n = tonumber(subs[2])
  end
  out[#out + 1] = v or ''
  out[#out + 1] = pttl
  out[#out + 1] = n
end
return out
