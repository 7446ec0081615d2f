-- The first step of an order (see ARCHITECTURE.md, "Orders"): the stock half of the order rule
-- (surge_core::deals::orders::decide_stock) on the deal's hot state. On acceptance the units are
-- taken and held for the order, and the order is listed as under way for the recovery sweep.
--
-- The deal hash holds `store_id`, `price`, `remaining`, `limit`, `starts_at` and `ends_at` (µs),
-- `taken:<buyer>` (units each buyer holds), `hold:<order>` ("buyer|quantity|total") and
-- `order:<order>` ("buyer|quantity|total|status|created at µs").
--
-- KEYS[1]  the deal hash
-- KEYS[2]  the shard's orders under way (sorted set)
-- KEYS[3]  the Idempotency-Key record (any key of the shard when the request has none)
-- ARGV[1]  the caller's clock reading (see now_us in the prelude)
-- ARGV[2]  hex digest of the keyed request, or ''
-- ARGV[3]  how long a keyed outcome is remembered, in milliseconds
-- ARGV[4]  order id
-- ARGV[5]  buyer id
-- ARGV[6]  quantity (at least 1)
-- ARGV[7]  deal id
-- ARGV[8]  how long the hold waits for the points before the sweep may settle it (ms)
-- ARGV[9]  the buyer's balance as read just before: an order it cannot pay holds no units (so
--          a rush of buyers short of points never keeps units from those who can pay); the
--          debit still decides
--
-- Returns
--   {'reserved', total, created at µs}
--   {'not_active'} | {'stock', remaining} | {'limit', limit, taken} | {'too_costly'}
--   {'released', balance}          the balance read before does not cover the total
--   {'missing'}                    no hot state for this deal
--   {'replay', …first outcome}     a retried keyed request ({'replay', 'pending', order id,
--                                  total, created at} while its order is under way)
--   {'reused'}
local key = KEYS[1]
local now = now_us(ARGV[1])
local keyed = keyed_request(KEYS[3], ARGV[2], now, ARGV[3])
local replayed = replay(keyed)
if replayed then
  return replayed
end
if redis.call('EXISTS', key) == 0 then
  return {'missing'}
end
local deal = redis.call('HMGET', key, 'price', 'remaining', 'limit', 'starts_at', 'ends_at')
local price, remaining, limit = tonumber(deal[1]), tonumber(deal[2]), tonumber(deal[3])
local order, buyer, quantity = ARGV[4], ARGV[5], tonumber(ARGV[6])
if now < tonumber(deal[4]) or now >= tonumber(deal[5]) then
  return decided(keyed, {'not_active'})
end
if quantity > remaining then
  return decided(keyed, {'stock', int(remaining)})
end
local taken = tonumber(redis.call('HGET', key, 'taken:' .. buyer) or '0')
if taken + quantity > limit then
  return decided(keyed, {'limit', int(limit), int(taken)})
end
local total = price * quantity
if total > 9007199254740991 then
  return decided(keyed, {'too_costly'})
end
if total > tonumber(ARGV[9]) then
  return decided(keyed, {'released', ARGV[9]})
end
redis.call('HSET', key, 'remaining', int(remaining - quantity), 'taken:' .. buyer,
  int(taken + quantity), 'hold:' .. order, buyer .. '|' .. int(quantity) .. '|' .. int(total))
redis.call('ZADD', KEYS[2], math.floor(now / 1000) + tonumber(ARGV[8]),
  'hold|' .. ARGV[7] .. '|' .. order)
-- A retry of this request while the order is under way resumes it (every step is idempotent);
-- the final outcome replaces this record.
decided(keyed, {'pending', order, int(total), int(now)})
return {'reserved', int(total), int(now)}
