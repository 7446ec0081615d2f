-- Gives a lease up, only if the caller still holds it.
--
-- KEYS[1]  the lease
-- ARGV[1]  the holder's value (identity/epoch)
--
-- Returns {'released'}, or {'not_held'} when the caller no longer held it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {'released'}
end
return {'not_held'}
