-- POST /heartbeat: authenticate, rotate, then say what is pending.
-- KEYS: session keys (see session.lua), 5 events
-- ARGV: session arguments, 11 ttl_secs, 12 since_us (-1: from the start)
-- Returns: {'ok', nonce, expires_in_ms, latest_us, pending} or a refusal.
local now = now_micros()
local out = authenticate(math.floor(now / 1000))
if out[1] ~= 'ok' then return out end
return pulse(out, now, KEYS[5], tonumber(ARGV[11]), tonumber(ARGV[12]))
