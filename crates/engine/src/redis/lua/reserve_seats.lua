-- Reserves seats: Surge's reservation rule (surge_core::cinema::decide and apply for Reserve),
-- run atomically against one screening's hot state. On acceptance the seats are taken and the
-- `reserved` event is appended to the shard's stream in the same step.
--
-- The screening hash holds `starts_at` (µs), and per reservation, seat and user:
--   seat:<code> → reservation id        res:<id> → "<user id>|<codes>"
--   held:<user> → seats held            last:<user> → time of the last reservation (µs)
--
-- KEYS[1]  the screening hash
-- KEYS[2]  the shard's event stream
-- KEYS[3]  the Idempotency-Key record (any key of the shard when the request has none)
-- KEYS[4]  the new reservation's pointer to its screening (the id is picked in this shard)
-- ARGV[1]  screening id
-- ARGV[2]  the caller's clock reading (see now_us in the prelude)
-- ARGV[3]  hex digest of the keyed request, or '' when it carries no Idempotency-Key
-- ARGV[4]  how long a keyed outcome is remembered, in milliseconds
-- ARGV[5]  reservation id
-- ARGV[6]  user id
-- ARGV[7]  the user's cooldown between successful reservations (µs)
-- ARGV[8]  most seats one user may hold in one screening (ARGV[4] also sets how long the
--          pointer of KEYS[4] lives: until PostgreSQL surely has the reservation)
-- ARGV[9…] seat codes (already checked: 1–5 consecutive seats of one row)
--
-- Returns (the prelude's convention; every element a string):
--   {'reserved', reservation id, created at (µs)}
--   {'taken', code, …}            some seats are taken (the taken ones)
--   {'limit', seats held}         the user would hold more than allowed
--   {'started'}                   the screening has started
--   {'soon', µs to wait}          the user's last reservation is within the cooldown
--   {'missing'}                   no hot state for this screening
--   {'replay', …first outcome}    a retried keyed request
--   {'reused'}                    the key was used before for another request

local key, stream = KEYS[1], KEYS[2]
local now = now_us(ARGV[2])
local keyed = keyed_request(KEYS[3], ARGV[3], now, ARGV[4])
local id, user = ARGV[5], ARGV[6]

local replayed = replay(keyed)
if replayed then
  return replayed
end

local starts_at = redis.call('HGET', key, 'starts_at')
if not starts_at then
  return {'missing'}
end
if now >= tonumber(starts_at) then
  return decided(keyed, {'started'})
end

local seats = {}
for i = 9, #ARGV do
  seats[#seats + 1] = ARGV[i]
end
local taken = {'taken'}
for _, code in ipairs(seats) do
  if redis.call('HEXISTS', key, 'seat:' .. code) == 1 then
    taken[#taken + 1] = code
  end
end
if #taken > 1 then
  return decided(keyed, taken)
end

local held = tonumber(redis.call('HGET', key, 'held:' .. user) or '0')
if held + #seats > tonumber(ARGV[8]) then
  return decided(keyed, {'limit', int(held)})
end

local last = redis.call('HGET', key, 'last:' .. user)
local cooldown = tonumber(ARGV[7])
if last and now - tonumber(last) < cooldown then
  return decided(keyed, {'soon', int(tonumber(last) + cooldown - now)})
end

local codes = table.concat(seats, ',')
for _, code in ipairs(seats) do
  redis.call('HSET', key, 'seat:' .. code, id)
end
redis.call('HSET', key, 'res:' .. id, user .. '|' .. codes, 'held:' .. user, int(held + #seats),
  'last:' .. user, int(now))
redis.call('XADD', stream, '*', 'type', 'reserved', 'screening_id', ARGV[1], 'event_id', id,
  'user_id', user, 'seats', codes, 'at', int(now))
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[4])
return decided(keyed, {'reserved', id, int(now)})
