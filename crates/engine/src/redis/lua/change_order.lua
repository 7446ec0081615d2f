-- Cancel (by its buyer, while the deal runs: the units go back at once and the refund of the
-- points is listed as under way) or pick up (the store's owner, checked by the caller) a
-- confirmed order, on the deal's shard (surge_core::deals::orders::decide_cancel / decide_pickup).
--
-- KEYS[1]  the deal hash
-- KEYS[2]  the shard's orders under way
-- KEYS[3]  the shard's event stream
-- ARGV[1]  'cancel' or 'pickup'
-- ARGV[2]  deal id
-- ARGV[3]  order id
-- ARGV[4]  the actor (the buyer for a cancel)
-- ARGV[5]  the caller's clock reading
-- ARGV[6]  how long before the sweep may finish a refund (ms)
--
-- Returns {'changed', buyer, quantity, total, status, created at µs, store id}
--   | {'not_found'} | {'picked_up'} | {'cancelled'} | {'ended'} | {'missing'}
local key, stream = KEYS[1], KEYS[3]
if redis.call('EXISTS', key) == 0 then
  return {'missing'}
end
local now = now_us(ARGV[5])
local order = ARGV[3]
local record = redis.call('HGET', key, 'order:' .. order)
if not record then
  return {'not_found'}
end
local buyer, quantity, total, status, created =
  string.match(record, '^([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)$')
if ARGV[1] == 'cancel' and buyer ~= ARGV[4] then
  return {'not_found'}
end
if status == 'picked_up' then
  return {'picked_up'}
end
if status == 'cancelled' then
  return {'cancelled'}
end
local store = redis.call('HGET', key, 'store_id')
local kind = 'order_picked_up'
if ARGV[1] == 'cancel' then
  if now >= tonumber(redis.call('HGET', key, 'ends_at')) then
    return {'ended'}
  end
  status = 'cancelled'
  kind = 'order_cancelled'
  give_back(key, buyer, quantity)
  redis.call('ZADD', KEYS[2], math.floor(now / 1000) + tonumber(ARGV[6]),
    'refund|' .. ARGV[2] .. '|' .. order)
else
  status = 'picked_up'
end
redis.call('HSET', key, 'order:' .. order,
  buyer .. '|' .. quantity .. '|' .. total .. '|' .. status .. '|' .. created)
redis.call('XADD', stream, '*', 'type', kind, 'deal_id', ARGV[2], 'event_id', order,
  'store_id', store, 'buyer_id', buyer, 'quantity', quantity, 'total', total, 'at', int(now))
return {'changed', buyer, quantity, total, status, created, store}
