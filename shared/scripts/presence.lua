-- GET /presence/{client}/{account_id}: the sessions seen within the presence timeout.
-- KEYS: 1 presence
-- ARGV: 1 presence_timeout_secs
-- Returns: session id and last-seen ms, flattened.
local now_ms = math.floor(now_micros() / 1000)
local since = now_ms - tonumber(ARGV[1]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(since))
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. int(since), '+inf', 'WITHSCORES')
for i = 2, #rows, 2 do rows[i] = tonumber(rows[i]) end
return rows
