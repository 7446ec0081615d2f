-- Claims a user's Idempotency-Key for one request, across every app and every shard: the first
-- request to use the key within the window owns it; the same request again may go on (the
-- entity's own script replays its first outcome); a different request is refused.
--
-- KEYS[1]  the user's record of the key (in the user's own slot)
-- ARGV[1]  hex digest of the request
-- ARGV[2]  the caller's clock reading (see now_us in the prelude)
-- ARGV[3]  how long the key is remembered, in milliseconds
--
-- The window is measured on the server's clock, like every other time here; the key's own
-- expiry only collects garbage.
--
-- Returns {'ok'} when the key is (now) this request's, {'reused'} when it is another's.
local now = now_us(ARGV[2])
local held = redis.call('GET', KEYS[1])
if held then
  local hash, at = string.match(held, '^(%x*):(%d+)$')
  if at and now - tonumber(at) < tonumber(ARGV[3]) * 1000 then
    if hash == ARGV[1] then
      return {'ok'}
    end
    return {'reused'}
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. int(now), 'PX', ARGV[3])
return {'ok'}
