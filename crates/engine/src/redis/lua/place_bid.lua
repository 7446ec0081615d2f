-- Places bids: Surge's bid rule (surge_core::auctions::decide and apply for PlaceBid), run
-- atomically against one auction's hot state, for one bid or for a batch of bids that arrived
-- together (decided one after the other, in order, each seeing the acceptances before it). On
-- acceptance the new state is written and every event is appended to the shard's stream in the
-- same step, so the two never disagree.
--
-- KEYS[1]  the auction hash
-- KEYS[2]  the shard's event stream
-- KEYS[3]  the Idempotency-Key record (any key of the shard when the request has none)
-- ARGV[1]  auction id
-- ARGV[2]  the caller's clock reading (see now_us in the prelude)
-- ARGV[3]  hex digest of the keyed request, or '' when it carries no Idempotency-Key (a keyed
--          request is always alone in its call)
-- ARGV[4]  how long a keyed outcome is remembered, in milliseconds
-- ARGV[5…] per bid, four values: bid id, bidder id, amount (minor units), bidder's nickname
--
-- Returns one reply per bid, in order (the prelude's convention):
--   {'accepted', seq, current_price, ends_at, extended (0/1), placed_at, bid_id, amount,
--    next minimum, seller}
--   {'not_started'}, {'ended'}, {'own_auction'}     rejected
--   {'too_low', min_amount, ends_at, seller}        rejected
--   {'missing'}                                     no hot state for this auction
--   {'replay', ...first outcome}                    a retried keyed request
--   {'reused'}                                      the key was used before for another request
-- (the next minimum, end and seller let callers refuse certainly-too-low bids themselves)

local auction_key = KEYS[1]
local stream_key = KEYS[2]
local auction_id = ARGV[1]
local now = now_us(ARGV[2])
local keyed = keyed_request(KEYS[3], ARGV[3], now, ARGV[4])
local bids = (#ARGV - 4) / 4

local replayed = replay(keyed)
if replayed then
  return {replayed}
end

local f = redis.call('HMGET', auction_key, 'seller', 'starting_price', 'min_increment',
  'starts_at', 'ends_at', 'extend_seconds', 'current_price', 'bid_count', 'closed')
if not f[1] then
  local missing = {}
  for i = 1, bids do
    missing[i] = {'missing'}
  end
  return missing
end
local seller = f[1]
local starting_price = tonumber(f[2])
local min_increment = tonumber(f[3])
local starts_at = tonumber(f[4])
local ends_at = tonumber(f[5])
local extend_seconds = tonumber(f[6])
local current_price = tonumber(f[7])
local bid_count = tonumber(f[8])
local closed = f[9] == '1'
local high_bidder, high_nickname

-- One bid against the state as the earlier bids of this call left it.
local function place(bid_id, bidder, amount, nickname)
  -- Status: live from starts_at (inclusive) to ends_at (exclusive); a closed auction is ended.
  if now < starts_at then
    return decided(keyed, {'not_started'})
  end
  if now >= ends_at then
    return decided(keyed, {'ended'})
  end
  if closed then
    return decided(keyed, {'ended'})
  end
  if bidder == seller then
    return decided(keyed, {'own_auction'})
  end

  local min_amount
  if bid_count == 0 then
    min_amount = starting_price
  else
    min_amount = current_price + min_increment
  end
  if amount < min_amount then
    return decided(keyed, {'too_low', min_amount, ends_at, seller})
  end

  local seq = bid_count + 1
  local window = extend_seconds * 1000000
  local extended = 0
  local new_ends_at = ends_at
  if extend_seconds > 0 and ends_at - now <= window and now + window > ends_at then
    extended = 1
    new_ends_at = now + window
  end
  current_price = amount
  bid_count = seq
  ends_at = new_ends_at
  high_bidder = bidder
  high_nickname = nickname

  -- The bid, and an `extended` event carrying the same fields when it pushed the end back.
  local function append(kind, event_id)
    redis.call('XADD', stream_key, '*',
      'type', kind,
      'auction_id', auction_id,
      'event_id', event_id,
      'seq', int(seq),
      'bidder', bidder,
      'nickname', nickname,
      'amount', int(amount),
      'placed_at', int(now),
      'ends_at', int(new_ends_at))
  end
  append('bid', bid_id)
  if extended == 1 then
    append('extended', bid_id .. ':extended')
  end
  return decided(keyed, {'accepted', seq, amount, new_ends_at, extended, now, bid_id, amount,
    amount + min_increment, seller})
end

local replies = {}
for i = 1, bids do
  local at = 4 + (i - 1) * 4
  replies[i] = place(ARGV[at + 1], ARGV[at + 2], tonumber(ARGV[at + 3]), ARGV[at + 4])
end
if high_bidder then
  redis.call('HSET', auction_key,
    'current_price', int(current_price),
    'high_bidder', high_bidder,
    'high_bidder_nickname', high_nickname,
    'bid_count', int(bid_count),
    'ends_at', int(ends_at))
end
return replies
