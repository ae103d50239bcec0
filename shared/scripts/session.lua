-- Validating, rotating and touching a session; shared by every authenticated script.
-- KEYS: 1 session, 2 rate, 3 generation, 4 presence, then the operation's keys from 5
-- ARGV: 1 presented key hash, 2 session id, 3 rotation nonce, 4 successor hash, 5 key_ttl_secs,
--       6 max_age_secs, 7 rotation (1/0), 8 grace_secs, 9 rate_limit_per_min,
--       10 presence_timeout_secs, then the operation's arguments from 11

local session_key, rate_key, generation_key, presence_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local presented, session_id = ARGV[1], ARGV[2]

-- Constant-time equality of two hex digests.
local function same(a, b)
  if not a or not b or #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do
    diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i)))
  end
  return diff == 0
end

local function revoke()
  redis.call('DEL', session_key, rate_key)
  redis.call('ZREM', presence_key, session_id)
end

-- Is the presented key this session's? Returns 'current' or 'grace' (the key just rotated out,
-- inside its grace period) with the session's creation time, or a refusal: 'invalid',
-- 'expired', 'reused'.
-- A refusal other than 'invalid' revokes the session.
local function check(now_ms)
  local s = redis.call('HMGET', session_key, 'cur', 'prev', 'prev_until', 'created', 'generation')
  if not s[1] then return 'invalid' end
  local generation = tonumber(redis.call('GET', generation_key) or '0')
  if tonumber(s[5]) ~= generation then
    revoke()
    return 'invalid'
  end
  if now_ms >= tonumber(s[4]) + tonumber(ARGV[6]) * 1000 then
    revoke()
    return 'expired'
  end
  if same(presented, s[1]) then return 'current', tonumber(s[4]) end
  if ARGV[7] ~= '1' then return 'invalid' end
  if same(presented, s[2]) and now_ms <= tonumber(s[3]) then return 'grace', tonumber(s[4]) end
  -- A rotated-out key after its grace period, or an older one: taken as theft.
  revoke()
  return 'reused'
end

-- Admits an authenticated request: rate limit, rotation, TTL, presence.
-- Returns {'ok', nonce of the key to hand back ('' when it does not change), expires_in_ms}
-- or {'rate_limited', retry_after_ms}.
local function admit(now_ms, standing, created)
  local limit = tonumber(ARGV[9])
  -- The list holds the times of the last `limit` admitted requests, newest first.
  if redis.call('LLEN', rate_key) >= limit then
    local oldest = tonumber(redis.call('LINDEX', rate_key, limit - 1))
    if oldest and oldest > now_ms - 60000 then
      return { 'rate_limited', oldest + 60000 - now_ms }
    end
  end
  redis.call('LPUSH', rate_key, int(now_ms))
  redis.call('LTRIM', rate_key, 0, limit - 1)
  redis.call('PEXPIRE', rate_key, 60000)

  local nonce = ''
  if ARGV[7] == '1' then
    if standing == 'current' then
      redis.call('HSET', session_key, 'cur', ARGV[4], 'prev', presented,
        'prev_until', int(now_ms + tonumber(ARGV[8]) * 1000), 'nonce', ARGV[3])
      nonce = ARGV[3]
    else
      -- Inside the grace period the same successor comes back.
      nonce = redis.call('HGET', session_key, 'nonce')
    end
  end

  local key_ttl_ms = tonumber(ARGV[5]) * 1000
  redis.call('PEXPIRE', session_key, key_ttl_ms)
  local timeout_ms = tonumber(ARGV[10]) * 1000
  redis.call('ZADD', presence_key, int(now_ms), session_id)
  redis.call('ZREMRANGEBYSCORE', presence_key, '-inf', int(now_ms - timeout_ms))
  redis.call('PEXPIRE', presence_key, timeout_ms)

  local left = created + tonumber(ARGV[6]) * 1000 - now_ms
  if left > key_ttl_ms then left = key_ttl_ms end
  return { 'ok', nonce, left }
end

-- check + admit; a refusal comes back as {status} or {'rate_limited', ms}.
local function authenticate(now_ms)
  local standing, created = check(now_ms)
  if standing ~= 'current' and standing ~= 'grace' then return { standing } end
  return admit(now_ms, standing, created)
end
