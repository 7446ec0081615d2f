-- The last step of an order, on the deal's shard: `confirm` turns the hold into a confirmed order
-- and appends `order_confirmed` to the shard's stream; `release` gives the held units back (the
-- points were refused, or never taken). Either ends the order's saga; both are idempotent.
--
-- KEYS[1]  the deal hash
-- KEYS[2]  the shard's orders under way
-- KEYS[3]  the shard's event stream
-- KEYS[4]  the Idempotency-Key record (any key of the shard when the request has none)
-- KEYS[5]  the order's pointer to its deal (the order id is picked in the deal's shard)
-- ARGV[1]  'confirm' or 'release'
-- ARGV[2]  deal id
-- ARGV[3]  order id
-- ARGV[4]  the caller's clock reading
-- ARGV[5]  hex digest of the keyed request, or ''
-- ARGV[6]  how long a keyed outcome is remembered (ms)
-- ARGV[7]  the buyer's balance after the debit (confirm) or the balance that was short
--          (release); '' for a release because the points never came (the answer: timed out)
--
-- (ARGV[6] also sets how long the pointer of KEYS[5] lives.)
-- Returns
--   {'placed', order id, quantity, total, remaining, balance, created at µs, store id}
--   {'released', balance} | {'timed_out'}
--   {'confirmed', quantity, total, remaining, created at µs, store id}   already confirmed
--   {'gone'}        the hold was settled otherwise (a release already happened)
local key, stream = KEYS[1], KEYS[3]
local now = now_us(ARGV[4])
local keyed = keyed_request(KEYS[4], ARGV[5], now, ARGV[6])
local order = ARGV[3]
local hold = redis.call('HGET', key, 'hold:' .. order)
if not hold then
  local record = redis.call('HGET', key, 'order:' .. order)
  if record then
    local _, quantity, total, _, created =
      string.match(record, '^([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)$')
    return {'confirmed', quantity, total, redis.call('HGET', key, 'remaining'), created,
      redis.call('HGET', key, 'store_id')}
  end
  return {'gone'}
end
local buyer, quantity, total = string.match(hold, '^([^|]+)|([^|]+)|([^|]+)$')
redis.call('HDEL', key, 'hold:' .. order)
redis.call('ZREM', KEYS[2], 'hold|' .. ARGV[2] .. '|' .. order)
if ARGV[1] == 'release' then
  give_back(key, buyer, quantity)
  if ARGV[7] == '' then
    return decided(keyed, {'timed_out'})
  end
  return decided(keyed, {'released', ARGV[7]})
end
local store = redis.call('HGET', key, 'store_id')
redis.call('HSET', key, 'order:' .. order,
  buyer .. '|' .. quantity .. '|' .. total .. '|confirmed|' .. int(now))
redis.call('XADD', stream, '*', 'type', 'order_confirmed', 'deal_id', ARGV[2], 'event_id', order,
  'store_id', store, 'buyer_id', buyer, 'quantity', quantity, 'total', total, 'at', int(now))
redis.call('SET', KEYS[5], ARGV[2], 'PX', ARGV[6])
local remaining = redis.call('HGET', key, 'remaining')
return decided(keyed, {'placed', order, quantity, total, remaining, ARGV[7], int(now), store})
