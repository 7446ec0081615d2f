-- Points into a buyer's account, in the buyer's shard: a top-up (up to a cap) or the refund of a
-- cancelled order (idempotent per order through its credit mark).
--
-- KEYS[1]  the account hash (`balance`)
-- KEYS[2]  the buyer's shard stream
-- KEYS[3]  the refund's credit mark (any key of the shard for a top-up)
-- ARGV[1]  'top_up' or 'refund'
-- ARGV[2]  user id
-- ARGV[3]  the top-up's id, or the order id
-- ARGV[4]  amount
-- ARGV[5]  cap (top-ups)
-- ARGV[6]  the caller's clock reading
-- ARGV[7]  how long the marks live (ms)
--
-- Returns {'added', balance} | {'over', balance} | {'credited'} (a refund already made) | {'missing'}
local account = KEYS[1]
local balance = redis.call('HGET', account, 'balance')
if not balance then
  return {'missing'}
end
balance = tonumber(balance)
local amount = tonumber(ARGV[4])
local kind = 'points_topped_up'
if ARGV[1] == 'refund' then
  if redis.call('EXISTS', KEYS[3]) == 1 then
    return {'credited'}
  end
  redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[7])
  kind = 'points_credited'
elseif balance + amount > tonumber(ARGV[5]) then
  return {'over', int(balance)}
end
local now = now_us(ARGV[6])
redis.call('HSET', account, 'balance', int(balance + amount))
redis.call('XADD', KEYS[2], '*', 'type', kind, 'user_id', ARGV[2], 'event_id', ARGV[3],
  'amount', ARGV[4], 'at', int(now))
return {'added', int(balance + amount)}
