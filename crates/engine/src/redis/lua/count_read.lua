-- Counts one read of an article: KEYS = pending, flushing; ARGV = article id. Answers
-- {"counted", reads not yet in the database (pending, this one included, and being flushed)}.
local pending = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local flushing = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
return {'counted', pending + flushing}
