-- fenced_incr: a fenced register for tests. Apply the write (increment the
-- counter) only if its fence is newer than every fence applied before.
-- KEYS[1]  hash with fields "max" (largest fence applied) and "value"
-- ARGV[1]  the writer's fence
-- Returns 1 when applied, 0 when rejected as stale.
local max = tonumber(redis.call('hget', KEYS[1], 'max') or '0')
local fence = tonumber(ARGV[1])
if fence <= max then
  return 0
end
redis.call('hset', KEYS[1], 'max', fence)
redis.call('hincrby', KEYS[1], 'value', 1)
return 1
