-- Extends a lease, only for the holder that took it (identity and epoch both match).
--
-- KEYS[1]  the lease
-- ARGV[1]  the holder's value (identity/epoch)
-- ARGV[2]  time to live, in milliseconds
--
-- Returns {'renewed'}, or {'lost'} when the lease is gone or someone else holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'renewed'}
end
return {'lost'}
