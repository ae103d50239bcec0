-- GET /broadcasts: authenticate, rotate, then read a page.
-- KEYS: session keys (see session.lua), 5 events, 6 meta
-- ARGV: session arguments, 11 ttl_secs, 12 since_us (-1: from the start), 13 limit
-- Returns: {'ok', nonce, expires_in_ms, page…} or a refusal.
local now = now_micros()
local out = authenticate(math.floor(now / 1000))
if out[1] ~= 'ok' then return out end
return page(out, now, KEYS[5], KEYS[6], tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]))
