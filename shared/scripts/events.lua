-- Reading an account's events; shared by read, fetch, heartbeat and login.

-- The newest retained event's µs, or -1.
local function newest(events, edge)
  local top = redis.call('ZREVRANGEBYSCORE', events, '+inf', '(' .. score(edge), 'WITHSCORES', 'LIMIT', 0, 1)
  if top[2] then return micros(top[2]) end
  return -1
end

-- Appends to `out`: created, last and dropped from meta (-1 when unknown), 1 when the events
-- key exists, the newest expired-but-not-yet-removed event's µs (-1), 1 when an event at or
-- before `since` is still retained, then member and µs of each retained event newer than
-- `since` (-1: from the start), at most `limit` + 1 of them.
local function page(out, now, events, meta, ttl, since, limit)
  local edge = horizon(now, ttl)
  local m = redis.call('HMGET', meta, 'created', 'last', 'dropped')
  out[#out + 1] = tonumber(m[1]) or -1
  out[#out + 1] = tonumber(m[2]) or -1
  out[#out + 1] = tonumber(m[3]) or -1
  out[#out + 1] = redis.call('EXISTS', events)
  local old = redis.call('ZREVRANGEBYSCORE', events, score(edge), '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if old[2] then out[#out + 1] = micros(old[2]) else out[#out + 1] = -1 end
  local from = edge
  if since > from then
    from = since
    out[#out + 1] = #redis.call('ZRANGEBYSCORE', events, '(' .. score(edge), score(since), 'LIMIT', 0, 1)
  else
    out[#out + 1] = 0
  end
  local rows = redis.call('ZRANGEBYSCORE', events, '(' .. score(from), '+inf', 'WITHSCORES', 'LIMIT', 0, limit + 1)
  for i = 1, #rows, 2 do
    out[#out + 1] = rows[i]
    out[#out + 1] = micros(rows[i + 1])
  end
  return out
end

-- Appends the newest retained event's µs (-1) and how many retained events are newer than
-- `since` (-1: all of them).
local function pulse(out, now, events, ttl, since)
  local edge = horizon(now, ttl)
  local from = edge
  if since > from then from = since end
  out[#out + 1] = newest(events, edge)
  out[#out + 1] = redis.call('ZCOUNT', events, '(' .. score(from), '+inf')
  return out
end
