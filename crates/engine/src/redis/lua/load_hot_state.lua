-- Creates an entity's hot state (an auction, a screening) from its persisted copy, unless that
-- would be stale.
--
-- KEYS[1]  the entity's hash
-- KEYS[2]  the shard's event stream
-- ARGV[1]  the stream field naming the entity (`auction_id`, `screening_id`)
-- ARGV[2]  entity id
-- ARGV[3]  the shard's persisted position (a stream id), read *before* the persisted copy was
--          read: every entry up to it is already in that copy
-- ARGV[4]  milliseconds the hash lives, or 0 for ever
-- ARGV[5…] field, value, field, value, ... (the whole hot state)
--
-- Returns
--   {'created'}
--   {'exists'}  it already existed (left untouched: the hot state is newer than any persisted
--               copy)
--   {'stale'}   the stream holds events of this entity after the persisted position (or too
--               many entries to tell): the copy may be stale, so nothing is created; retry
--               once the shard's persister has caught up
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
local limit = 10000
local entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[3], '+', 'COUNT', limit)
if #entries >= limit then
  return {'stale'}
end
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == ARGV[1] and fields[i + 1] == ARGV[2] then
      return {'stale'}
    end
  end
end
-- In chunks: unpack() of thousands of values overflows Lua's stack (a big, busy theater).
local chunk = 1000
for first = 5, #ARGV, chunk do
  redis.call('HSET', KEYS[1], unpack(ARGV, first, math.min(first + chunk - 1, #ARGV)))
end
if tonumber(ARGV[4]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return {'created'}
