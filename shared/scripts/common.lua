-- Helpers every bcast script starts with.
-- Scores are Unix seconds with six decimals; inside scripts we count integer microseconds,
-- which a Lua number holds exactly up to 2^53.

local function now_micros()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The score string for a microsecond count. Formatted by hand: Redis would print a Lua number
-- with only 14 significant digits and lose the microseconds.
local function score(us)
  return string.format('%.0f.%06d', math.floor(us / 1000000), us % 1000000)
end

-- Large integers go to redis.call as strings for the same reason.
local function int(n)
  return string.format('%.0f', n)
end

local function micros(score_text)
  return math.floor(tonumber(score_text) * 1000000 + 0.5)
end

-- Events at or before this instant are older than the TTL and never returned.
local function horizon(now, ttl_secs)
  return now - ttl_secs * 1000000
end
