-- Publish a batch of events to one account.
-- KEYS: events (bcast:…), meta, ids
-- ARGV: ttl_secs, max_events, meta_ttl_secs, then (id, data_json) per event
-- Returns: per event, its score in µs and 1 when it was a duplicate (else 0).
local events, meta, ids = KEYS[1], KEYS[2], KEYS[3]
local ttl = tonumber(ARGV[1])
local max_events = tonumber(ARGV[2])
local meta_ttl = tonumber(ARGV[3])

local now = now_micros()
local edge = horizon(now, ttl)

local m = redis.call('HMGET', meta, 'created', 'last', 'dropped')
local created = tonumber(m[1])
local last = tonumber(m[2]) or 0
local dropped = tonumber(m[3]) or 0

-- An empty sorted set does not exist, so no newest member means no key.
local top = redis.call('ZRANGE', events, -1, -1, 'WITHSCORES')
if not top[2] then
  -- The key expired as a whole: everything published before is gone.
  if last > dropped then dropped = last end
else
  -- Another writer may have added a later score; stay above it, unless it is far in the
  -- future (milliseconds taken for seconds), which would end strictly increasing scores.
  local us = micros(top[2])
  if us > last and us <= now + 60000000 then last = us end
end

redis.call('ZREMRANGEBYSCORE', ids, '-inf', int(edge))

local out = {}
local stored = 0
for i = 4, #ARGV, 2 do
  local id, data = ARGV[i], ARGV[i + 1]
  local seen = redis.call('ZSCORE', ids, id)
  if seen then
    out[#out + 1] = tonumber(seen)
    out[#out + 1] = 1
  else
    local us = now
    if us <= last then us = last + 1 end
    last = us
    if not created then created = us end
    local ts = score(us)
    -- id is restricted to [A-Za-z0-9_.:-] and data is JSON checked by the caller.
    redis.call('ZADD', events, ts, '{"id":"' .. id .. '","ts":' .. ts .. ',"data":' .. data .. '}')
    redis.call('ZADD', ids, int(us), id)
    stored = stored + 1
    out[#out + 1] = us
    out[#out + 1] = 0
  end
end

-- Age out and trim, remembering the newest event dropped so reads can tell `missed` exactly.
local old = redis.call('ZREVRANGEBYSCORE', events, score(edge), '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
if old[2] then
  local us = micros(old[2])
  if us > dropped then dropped = us end
  redis.call('ZREMRANGEBYSCORE', events, '-inf', score(edge))
end
local count = redis.call('ZCARD', events)
if count > max_events then
  local cut = count - max_events - 1
  local newest_cut = redis.call('ZRANGE', events, cut, cut, 'WITHSCORES')
  local us = micros(newest_cut[2])
  if us > dropped then dropped = us end
  redis.call('ZREMRANGEBYRANK', events, 0, cut)
end

if stored > 0 then
  redis.call('EXPIRE', events, ttl)
  redis.call('EXPIRE', ids, ttl)
end
if created then
  redis.call('HSET', meta, 'created', int(created), 'last', int(last), 'dropped', int(dropped))
  redis.call('EXPIRE', meta, meta_ttl)
end
return out
