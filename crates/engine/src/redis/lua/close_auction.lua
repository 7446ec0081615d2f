-- Closes an auction whose end has passed: Surge's rule (surge_core::auctions::decide for
-- Close), then the `closed` event on the shard's stream, in one atomic step.
--
-- KEYS[1]  the auction hash
-- KEYS[2]  the shard's event stream
-- ARGV[1]  auction id
-- ARGV[2]  the caller's clock reading (see now_us in the prelude)
-- ARGV[3]  how long the closed hot state is kept, in milliseconds (later reads rebuild it from
--          PostgreSQL, where the closing is persisted by then)
--
-- Returns {'closed'} (closed now), {'nothing'} (not ended yet, or already closed), or
-- {'missing'} (no hot state for this auction).
local f = redis.call('HMGET', KEYS[1], 'ends_at', 'closed', 'bid_count', 'high_bidder',
  'high_bidder_nickname', 'current_price')
if not f[1] then
  return {'missing'}
end
local now = now_us(ARGV[2])
if f[2] == '1' or now < tonumber(f[1]) then
  return {'nothing'}
end
redis.call('HSET', KEYS[1], 'closed', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('XADD', KEYS[2], '*',
  'type', 'closed',
  'auction_id', ARGV[1],
  'event_id', ARGV[1] .. ':closed',
  'seq', f[3],
  'winner', f[4] or '',
  'winner_nickname', f[5] or '',
  'final_price', f[6],
  'closed_at', int(now))
return {'closed'}
