-- Surge's Lua prelude: put before every script when it is loaded (see scripts.rs).
--
-- The reply convention: every script answers an array whose first element is a word naming the
-- outcome ('ok', 'created', 'missing', 'reused', a rejection reason, ...), followed by that
-- outcome's values. Numbers go out as integers, or as decimal text when they were stored.
--
-- Numbers are Lua doubles: exact for integers up to 2^53, far above money (at most 10^15) and
-- microsecond timestamps (about 2 * 10^15 today).

-- An integer as decimal text ('%.0f' never uses exponent notation).
local function int(x)
  return string.format('%.0f', x)
end

-- "Now" for a decision, in microseconds since the Unix epoch: this server's clock (TIME), the
-- one authority on time for every entity of its shards, whichever replica sent the request
-- and whatever that replica's own clock says. `reading` comes from the caller's clock: an
-- offset in µs to add (0 but in tests that jump ahead), or '@<µs>', a fixed instant
-- (deterministic tests).
local function now_us(reading)
  local fixed = string.match(reading, '^@(%-?%d+)$')
  if fixed then
    return tonumber(fixed)
  end
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000000 + tonumber(time[2]) + tonumber(reading)
end

-- now_us, in milliseconds.
local function now_ms(reading)
  return math.floor(now_us(reading) / 1000)
end

-- An Idempotency-Key request, in the entity's shard: nil when `hash` is '' (no key). `key` is
-- the record's key, `now` the decision's time (µs), `window_ms` how long outcomes are kept.
local function keyed_request(key, hash, now, window_ms)
  if hash == '' then
    return nil
  end
  return {key = key, hash = hash, now = tonumber(now), window_ms = tonumber(window_ms)}
end

-- The reply for a retried keyed request: {'replay', first outcome...} within the window,
-- {'reused'} when the key was used for another request, nil when the request is new. The
-- window runs on the server's clock; the record's own expiry only collects garbage.
local function replay(keyed)
  if not keyed then
    return nil
  end
  local stored = redis.call('GET', keyed.key)
  if not stored then
    return nil
  end
  local record = cjson.decode(stored)
  if keyed.now - tonumber(record[3]) >= keyed.window_ms * 1000 then
    return nil
  end
  if record[1] ~= keyed.hash then
    return {'reused'}
  end
  local reply = {'replay'}
  for _, value in ipairs(record[2]) do
    reply[#reply + 1] = value
  end
  return reply
end

-- Keeps `outcome` as a keyed request's first outcome and returns it. Numbers are stored as
-- decimal text: cjson would round them to 14 significant digits.
local function decided(keyed, outcome)
  if keyed then
    local stored = {}
    for i, value in ipairs(outcome) do
      if type(value) == 'number' then
        stored[i] = int(value)
      else
        stored[i] = value
      end
    end
    redis.call('SET', keyed.key, cjson.encode({keyed.hash, stored, int(keyed.now)}),
      'PX', keyed.window_ms)
  end
  return outcome
end

-- Gives `quantity` units a buyer held back to a deal's hash (`remaining`, `taken:<buyer>`): a
-- released hold or a cancelled order.
local function give_back(deal, buyer, quantity)
  quantity = tonumber(quantity)
  redis.call('HINCRBY', deal, 'remaining', quantity)
  local taken = tonumber(redis.call('HGET', deal, 'taken:' .. buyer) or '0') - quantity
  if taken > 0 then
    redis.call('HSET', deal, 'taken:' .. buyer, int(taken))
  else
    redis.call('HDEL', deal, 'taken:' .. buyer)
  end
end
