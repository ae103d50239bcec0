-- DELETE /sessions/{client}/{account_id}: every session of the account dies at once.
-- Sessions remember the generation they were minted under; bumping it invalidates them all
-- without naming their keys, which a script could not declare in KEYS up front.
-- The counter has no TTL: were it to expire or be evicted, revoked sessions would come back.
-- KEYS: 1 generation, 2 presence
redis.call('INCR', KEYS[1])
redis.call('DEL', KEYS[2])
return { 'ok' }
