-- Places a bid: Surge's bid rule (surge_core::auctions::decide and apply for PlaceBid), run
-- atomically against one auction's hot state. On acceptance the new state is written and every
-- event is appended to the shard's stream in the same step, so the two never disagree.
--
-- KEYS[1]  the auction hash
-- KEYS[2]  the shard's event stream
-- ARGV[1]  auction id
-- ARGV[2]  bid id
-- ARGV[3]  bidder id
-- ARGV[4]  amount (minor units)
-- ARGV[5]  now (microseconds since the Unix epoch)
--
-- Returns
--   {1, seq, current_price, ends_at, extended (0/1)}  accepted
--   {0, reason, min_amount or 0}                       rejected; reason is one of
--                                                      not_started, ended, own_auction, too_low
--   {-1}                                               no hot state for this auction
--
-- Numbers are Lua doubles: exact for integers up to 2^53, far above money (at most 10^15) and
-- microsecond timestamps (about 2 * 10^15 today). They are written back with '%.0f', never in
-- exponent notation.

local auction_key = KEYS[1]
local stream_key = KEYS[2]
local auction_id = ARGV[1]
local bid_id = ARGV[2]
local bidder = ARGV[3]
local amount = tonumber(ARGV[4])
local now = tonumber(ARGV[5])

local function int(x)
  return string.format('%.0f', x)
end

local f = redis.call('HMGET', auction_key, 'seller', 'starting_price', 'min_increment',
  'starts_at', 'ends_at', 'extend_seconds', 'current_price', 'bid_count', 'closed')
if not f[1] then
  return {-1}
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

-- Status: live from starts_at (inclusive) to ends_at (exclusive); a closed auction is ended.
if now < starts_at then
  return {0, 'not_started', 0}
end
if now >= ends_at then
  return {0, 'ended', 0}
end
if closed then
  return {0, 'ended', 0}
end
if bidder == seller then
  return {0, 'own_auction', 0}
end

local min_amount
if bid_count == 0 then
  min_amount = starting_price
else
  min_amount = current_price + min_increment
end
if amount < min_amount then
  return {0, 'too_low', min_amount}
end

local seq = bid_count + 1
local window = extend_seconds * 1000000
local extended = 0
local new_ends_at = ends_at
if extend_seconds > 0 and ends_at - now <= window and now + window > ends_at then
  extended = 1
  new_ends_at = now + window
end

redis.call('HSET', auction_key,
  'current_price', int(amount),
  'high_bidder', bidder,
  'bid_count', int(seq),
  'ends_at', int(new_ends_at))

redis.call('XADD', stream_key, '*',
  'type', 'bid',
  'auction_id', auction_id,
  'event_id', bid_id,
  'seq', int(seq),
  'bidder', bidder,
  'amount', int(amount),
  'placed_at', int(now),
  'ends_at', int(new_ends_at))
if extended == 1 then
  redis.call('XADD', stream_key, '*',
    'type', 'extended',
    'auction_id', auction_id,
    'event_id', bid_id .. ':extended',
    'seq', int(seq),
    'bidder', bidder,
    'amount', int(amount),
    'placed_at', int(now),
    'ends_at', int(new_ends_at))
end

return {1, seq, amount, new_ends_at, extended}
