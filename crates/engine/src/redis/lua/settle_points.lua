-- The recovery sweep's question to the buyer's shard about an order under way whose replica
-- may have died: were its points taken? If not, they never will be (the void mark makes a late
-- debit of it refuse), so the sweep can give the units back.
--
-- KEYS[1]  the order's debit mark
-- KEYS[2]  the order's void mark
-- ARGV[1]  how long the marks live (ms)
--
-- Returns {'debited'} | {'void'}
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'debited'}
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return {'void'}
