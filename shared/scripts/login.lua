-- POST /login: spend the login token's jti, create a session, find the newest cursor.
-- KEYS: 1 session, 2 generation, 3 presence, 4 events, 5 used token ids
-- ARGV: 1 key hash, 2 session id, 3 key_ttl_secs, 4 max_age_secs, 5 presence_timeout_secs,
--       6 ttl_secs, 7 jti ('' when the token has none), 8 the token's exp (Unix seconds)
-- Returns: {'ok', newest_us or -1, expires_in_ms} or {'token_reused'}.
local session_key, generation_key, presence_key, events, used = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = now_micros()
local now_ms = math.floor(now / 1000)
local now_s = math.floor(now / 1000000)

local jti = ARGV[7]
if jti ~= '' then
  -- A token id is remembered well past its exp: tokens are accepted a few seconds after exp,
  -- and the functions' clocks are not Redis's.
  local keep_until = tonumber(ARGV[8]) + 60
  redis.call('ZREMRANGEBYSCORE', used, '-inf', '(' .. now_s)
  if redis.call('ZSCORE', used, jti) then return { 'token_reused' } end
  redis.call('ZADD', used, keep_until, jti)
  local ttl = math.max(keep_until - now_s, 1)
  if redis.call('TTL', used) < ttl then redis.call('EXPIRE', used, ttl) end
end

local max_age_ms = tonumber(ARGV[4]) * 1000
local generation = redis.call('GET', generation_key) or '0'
local key_ttl_ms = tonumber(ARGV[3]) * 1000
redis.call('HSET', session_key, 'cur', ARGV[1], 'created', int(now_ms), 'generation', generation)
redis.call('PEXPIRE', session_key, key_ttl_ms)

local timeout_ms = tonumber(ARGV[5]) * 1000
redis.call('ZADD', presence_key, int(now_ms), ARGV[2])
redis.call('ZREMRANGEBYSCORE', presence_key, '-inf', int(now_ms - timeout_ms))
redis.call('PEXPIRE', presence_key, timeout_ms)

local left = key_ttl_ms
if max_age_ms < left then left = max_age_ms end
return { 'ok', newest(events, horizon(now, tonumber(ARGV[6]))), left }
