-- The second step of an order: the points half of the order rule
-- (surge_core::deals::orders::decide_points) on the buyer's account, in the buyer's shard.
-- Idempotent per order: a second debit of the same order answers as the first did.
--
-- KEYS[1]  the account hash (`balance`)
-- KEYS[2]  the order's debit mark
-- KEYS[3]  the order's void mark (set by the sweep when it gave the units back)
-- KEYS[4]  the buyer's shard stream
-- ARGV[1]  buyer id
-- ARGV[2]  order id
-- ARGV[3]  total
-- ARGV[4]  the caller's clock reading
-- ARGV[5]  how long the marks live (ms)
--
-- Returns {'debited', balance after} | {'insufficient', balance} | {'void'} | {'missing'}
local account = KEYS[1]
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'debited', redis.call('HGET', account, 'balance') or '0'}
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {'void'}
end
local balance = redis.call('HGET', account, 'balance')
if not balance then
  return {'missing'}
end
balance = tonumber(balance)
local total = tonumber(ARGV[3])
if total > balance then
  return {'insufficient', int(balance)}
end
local now = now_us(ARGV[4])
redis.call('HSET', account, 'balance', int(balance - total))
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[5])
redis.call('XADD', KEYS[4], '*', 'type', 'points_debited', 'user_id', ARGV[1], 'event_id',
  ARGV[2], 'amount', ARGV[3], 'at', int(now))
return {'debited', int(balance - total)}
