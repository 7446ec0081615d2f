-- Takes a lease if nobody holds it, with a fresh fencing epoch.
--
-- KEYS[1]  the lease
-- KEYS[2]  the epoch counter (never expires: epochs only grow)
-- ARGV[1]  the taker's identity
-- ARGV[2]  time to live, in milliseconds
--
-- Returns {'acquired', new epoch}, or {'held'} when someone holds the lease.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'held'}
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '/' .. epoch, 'PX', ARGV[2])
return {'acquired', epoch}
