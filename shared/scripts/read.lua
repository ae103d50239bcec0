-- Read a page of events without a session (backends and tests).
-- KEYS: events, meta
-- ARGV: ttl_secs, since_us (-1: from the start), limit
-- Returns: the page (see events.lua).
local now = now_micros()
return page({}, now, KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
