-- A blocking limit: the same rule as surge_core::ratelimit::decide_blocking. More than `limit`
-- events within one period start a block, during which every event is refused.
--
-- KEYS[1]  a list of the times of the key's latest accepted events (ms), newest first, at most
--          `limit` long
-- KEYS[2]  the end of the key's block (ms), while one is running
-- ARGV[1]  limit
-- ARGV[2]  period (ms)
-- ARGV[3]  block length (ms)
-- ARGV[4]  the caller's clock reading (see now_us in the prelude); times here are in ms
--
-- Returns {'allowed'}, or {'blocked', ms left in the block}.

local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local block = tonumber(ARGV[3])
local now = now_ms(ARGV[4])

local blocked_until = tonumber(redis.call('GET', KEYS[2]) or '0')
if now < blocked_until then
  return {'blocked', blocked_until - now}
end

local oldest = redis.call('LINDEX', KEYS[1], limit - 1)
if oldest and now - tonumber(oldest) < period then
  redis.call('SET', KEYS[2], int(now + block), 'PX', block)
  return {'blocked', block}
end

redis.call('LPUSH', KEYS[1], int(now))
redis.call('LTRIM', KEYS[1], 0, limit - 1)
redis.call('PEXPIRE', KEYS[1], period)
return {'allowed'}
