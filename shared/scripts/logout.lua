-- POST /logout: revoke the session the presented key belongs to.
-- KEYS and ARGV: as session.lua.
-- Returns: {'ok'} or a refusal.
local standing = check(math.floor(now_micros() / 1000))
if standing ~= 'current' and standing ~= 'grace' then return { standing } end
revoke()
return { 'ok' }
