-- GCRA with a block: the same arithmetic as surge_core::ratelimit::decide_blocking. The first
-- event over the quota starts a block, during which every event is refused.
--
-- KEYS[1]  the limit's theoretical arrival time (TAT)
-- KEYS[2]  the end of the key's block (ms), while one is running
-- ARGV[1]  emission interval (ms)
-- ARGV[2]  tolerance (ms): the burst
-- ARGV[3]  now (ms since the Unix epoch), from the caller's clock
-- ARGV[4]  block length (ms)
--
-- Returns {1, new_tat} when allowed, {0, ms left in the block} when refused.

local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local block = tonumber(ARGV[4])

local blocked_until = tonumber(redis.call('GET', KEYS[2]) or '0')
if now < blocked_until then
  return {0, blocked_until - now}
end

local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  tat = math.max(tonumber(stored), now)
end

if now < tat - tolerance then
  local until_ms = now + block
  redis.call('SET', KEYS[2], string.format('%.0f', until_ms), 'PX', block)
  return {0, block}
end

local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(1, new_tat - now))
return {1, new_tat}
