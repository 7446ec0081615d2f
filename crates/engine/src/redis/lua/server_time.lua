-- The server's clock, for a replica to calibrate its own against (see time.rs).
--
-- KEYS[1]  any key of the shard whose node is asked (it is not read)
--
-- Returns {'time', now (µs since the Unix epoch)}.
return {'time', int(now_us('0'))}
