-- Cancels a reservation: Surge's rule (surge_core::cinema::decide and apply for Cancel), run
-- atomically against one screening's hot state (see reserve_seats.lua for its fields). On
-- acceptance the seats are freed and the `cancelled` event is appended to the shard's stream.
--
-- KEYS[1]  the screening hash
-- KEYS[2]  the shard's event stream
-- ARGV[1]  screening id
-- ARGV[2]  the caller's clock reading (see now_us in the prelude)
-- ARGV[3]  reservation id
-- ARGV[4]  user id (only the holder may cancel)
--
-- Returns {'cancelled'}, {'not_found'} (no such live reservation of this user), {'started'},
-- or {'missing'} (no hot state for this screening).

local key, stream = KEYS[1], KEYS[2]
local now = now_us(ARGV[2])
local id, user = ARGV[3], ARGV[4]

local starts_at = redis.call('HGET', key, 'starts_at')
if not starts_at then
  return {'missing'}
end
local held = redis.call('HGET', key, 'res:' .. id)
if not held then
  return {'not_found'}
end
local separator = string.find(held, '|', 1, true)
if string.sub(held, 1, separator - 1) ~= user then
  return {'not_found'}
end
if now >= tonumber(starts_at) then
  return {'started'}
end

local codes = string.sub(held, separator + 1)
local count = 0
for code in string.gmatch(codes, '[^,]+') do
  redis.call('HDEL', key, 'seat:' .. code)
  count = count + 1
end
redis.call('HDEL', key, 'res:' .. id)
redis.call('HINCRBY', key, 'held:' .. user, -count)
redis.call('XADD', stream, '*', 'type', 'cancelled', 'screening_id', ARGV[1], 'event_id', id,
  'user_id', user, 'seats', codes, 'at', int(now))
return {'cancelled'}
