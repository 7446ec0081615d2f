-- GCRA for one key: the same arithmetic as surge_core::ratelimit::decide, with the theoretical
-- arrival time (TAT) kept in Redis so every replica draws on one shared limit.
--
-- KEYS[1]  the limit's key
-- ARGV[1]  emission interval (ms): the time one event "costs"
-- ARGV[2]  tolerance (ms): how far ahead of now the TAT may run (the burst)
-- ARGV[3]  the caller's clock reading (see now_us in the prelude); times here are in ms
-- ARGV[4]  '1' to take one event if allowed, '0' only to check, '-1' to give one back (the
--          same arithmetic as surge_core::ratelimit::refund)
--
-- Returns {'allowed', new_tat} (new_tat is stored only when taking), or
-- {'denied', retry_after_ms}; giving back returns {'released'}.

local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local now = now_ms(ARGV[3])
local take = ARGV[4] == '1'

if ARGV[4] == '-1' then
  local stored = redis.call('GET', KEYS[1])
  if stored then
    local tat = tonumber(stored) - interval
    if tat > now then
      redis.call('SET', KEYS[1], int(tat), 'PX', tat - now)
    else
      redis.call('DEL', KEYS[1])
    end
  end
  return {'released'}
end

local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  tat = math.max(tonumber(stored), now)
end

local allow_at = tat - tolerance
if now < allow_at then
  return {'denied', allow_at - now}
end

local new_tat = tat + interval
if take then
  -- Once now reaches new_tat the key limits nothing: let it expire then.
  redis.call('SET', KEYS[1], int(new_tat), 'PX', math.max(1, new_tat - now))
end
return {'allowed', new_tat}
