-- DELETE /sessions/{client}/{account_id}: every session of the account dies at once.
-- Sessions remember the generation they were minted under; bumping it invalidates them all
-- without naming their keys, which a script could not declare in KEYS up front.
-- KEYS: 1 generation, 2 presence
-- ARGV: 1 max_age_secs
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
redis.call('DEL', KEYS[2])
return { 'ok' }
