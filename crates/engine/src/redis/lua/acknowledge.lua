-- Acknowledges applied entries, then moves the shard's persisted position and trims the stream,
-- atomically.
--
-- KEYS[1]  the shard's stream
-- KEYS[2]  the persisted position (a stream id: every entry up to it is in PostgreSQL)
-- ARGV[1]  the consumer group
-- ARGV[2]  the oldest id to keep for the fan-out (now minus the retention)
-- ARGV[3…] the ids to acknowledge
--
-- The position is not simply the last id acknowledged: an entry may still be pending in some
-- consumer's list (delivered to a holder that was paused, say) below it. It is the id just
-- before the oldest pending entry, or, with none pending, the group's last delivered id.
--
-- Returns {'ok', position} ({'ok'} when the group is gone and nothing moved).
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 3))

local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

local function before(id)
  local ms, seq = parse(id)
  if seq > 0 then
    return string.format('%.0f-%.0f', ms, seq - 1)
  end
  return string.format('%.0f', ms - 1) .. '-18446744073709551615'
end

local function smaller(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  if am < bm or (am == bm and as < bs) then
    return a
  end
  return b
end

local position
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if pending[1] > 0 then
  position = before(pending[2])
else
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local name, delivered
    for i = 1, #group, 2 do
      if group[i] == 'name' then name = group[i + 1] end
      if group[i] == 'last-delivered-id' then delivered = group[i + 1] end
    end
    if name == ARGV[1] then position = delivered end
  end
end
if position then
  redis.call('SET', KEYS[2], position)
  redis.call('XTRIM', KEYS[1], 'MINID', '~', smaller(position, ARGV[2]))
end
return {'ok', position}
