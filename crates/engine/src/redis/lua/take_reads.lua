-- Takes the counted reads for a flush: KEYS = pending, flushing; ARGV = a new batch token.
-- A batch a crashed flush left behind is offered again under its own token (the database
-- applies a token once); otherwise the pending reads become the batch. Answers {"batch",
-- token, id, reads, id, reads, …}, or {"empty"}.
if redis.call('EXISTS', KEYS[2]) == 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return {'empty'}
  end
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[2], 'batch', ARGV[1])
end
local reply = {'batch', redis.call('HGET', KEYS[2], 'batch')}
local entries = redis.call('HGETALL', KEYS[2])
for i = 1, #entries, 2 do
  if entries[i] ~= 'batch' then
    reply[#reply + 1] = entries[i]
    reply[#reply + 1] = entries[i + 1]
  end
end
return reply
