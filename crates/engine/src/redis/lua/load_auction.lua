-- Creates an auction's hot state, unless it already exists.
--
-- KEYS[1]  the auction hash
-- ARGV     field, value, field, value, ... (the whole AuctionState)
--
-- Returns 1 when the hash was created, 0 when it was already there (left untouched: the hot
-- state is newer than any copy it could be loaded from).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
