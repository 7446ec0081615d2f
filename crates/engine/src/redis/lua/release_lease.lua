-- Gives a lease up, only if the caller still holds it.
--
-- KEYS[1]  the lease
-- ARGV[1]  the holder's value (identity/epoch)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
