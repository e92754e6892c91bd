"""The limiter's Redis scripts: reserve (check every rule, then hold all or nothing) and
settle (turn a hold into what the request used). Time is Redis's own (`TIME`).

Per scope, five keys share one hash tag, `{<scope>}`, so a scope's keys sit in one cluster
slot:
  w  hash   the sliding minute: `r<bucket>` requests, `t<bucket>` tokens, 12 buckets of 5 s
  h  zset   live holds by deadline (ms): concurrency, and leases that expire by themselves
  a  hash   hold id -> "period|bucket|tokens|cost|requests" (what was reserved); "x|…" once
            expired (a hold is one request's, or a chunk an instance borrows: pool.py)
  b  hash   budget: `s:<period>` spent, `h:<period>` held, nano-dollars
  x  zset   expired holds by expiry time, so a settle arriving late still charges (kept 1 h)
A settle finds the hold by id and removes it, so settling twice changes nothing.
"""

from __future__ import annotations

KEY_KINDS = ("w", "h", "a", "b", "x")

_COMMON = """
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec * 1000 + math.floor(tonumber(t[2]) / 1000)
local BUCKET = 5000
local bucket = math.floor(now / BUCKET)
local oldest = bucket - 11

local function month(s)
  local z = math.floor(s / 86400) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d', y, m)
end

local function period(per)
  -- Whole weeks start on Mondays (1970-01-05), other lengths at the epoch (midnight UTC).
  if per > 0 and per % 604800 == 0 then
    return string.format('%d', math.floor((sec - 345600) / per))
  end
  if per > 0 then return string.format('%d', math.floor(sec / per)) end
  if per < 0 then return month(sec) end
  return 'all'
end

local function keep_budget(b, per)
  if per > 0 then redis.call('EXPIRE', b, per * 2 + 86400)
  elseif per < 0 then redis.call('EXPIRE', b, 86400 * 70) end
end
"""

RESERVE = (
    _COMMON
    + """
local rid, tokens, cost = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lease, n, count = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {1, bucket}
local plan = {}
for i = 1, n do
  local k, o = (i - 1) * 5, 6 + (i - 1) * 5
  local w, h, a, b, x = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]
  local rpm, tpm, par = tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3])
  local budget, per = tonumber(ARGV[o + 4]), tonumber(ARGV[o + 5])
  local gone = redis.call('ZRANGEBYSCORE', h, '-inf', now, 'LIMIT', 0, 64)
  for _, id in ipairs(gone) do
    local v = redis.call('HGET', a, id)
    if v then
      local p, c = string.match(v, '^([^|]*)|[^|]*|[^|]*|([^|]*)|')
      if p and tonumber(c) > 0 then redis.call('HINCRBY', b, 'h:' .. p, -tonumber(c)) end
      redis.call('HSET', a, id, 'x|' .. v)
      redis.call('ZADD', x, now, id)
    end
    redis.call('ZREM', h, id)
  end
  local stale = redis.call('ZRANGEBYSCORE', x, '-inf', now - 3600000, 'LIMIT', 0, 64)
  for _, id in ipairs(stale) do
    redis.call('HDEL', a, id)
    redis.call('ZREM', x, id)
  end
  local reqs, toks, first_r, first_t = 0, 0, bucket, bucket
  if rpm >= 0 or tpm >= 0 then
    local all = redis.call('HGETALL', w)
    for j = 1, #all, 2 do
      local f, v = all[j], tonumber(all[j + 1])
      local bk = tonumber(string.sub(f, 2))
      if bk < oldest then
        redis.call('HDEL', w, f)
      elseif string.byte(f, 1) == 114 then
        reqs = reqs + v
        if v > 0 and bk < first_r then first_r = bk end
      else
        toks = toks + v
        if v > 0 and bk < first_t then first_t = bk end
      end
    end
  end
  local reset_r = (first_r + 12) * BUCKET - now
  local reset_t = (first_t + 12) * BUCKET - now
  if rpm >= 0 and reqs + count > rpm then return {0, i, 'requests', reset_r} end
  if tpm >= 0 then
    if tokens > tpm then return {0, i, 'too_large', -1} end
    if toks + tokens > tpm then return {0, i, 'tokens', reset_t} end
  end
  if par >= 0 and redis.call('ZCARD', h) + 1 > par then
    return {0, i, 'parallel', 1000}
  end
  local p = period(per)
  local left = -1
  if budget >= 0 then
    local vals = redis.call('HMGET', b, 's:' .. p, 'h:' .. p)
    local used = (tonumber(vals[1]) or 0) + (tonumber(vals[2]) or 0)
    if used >= budget or used + cost > budget then return {0, i, 'budget', 0} end
    left = budget - used - cost
  end
  plan[i] = {w, h, a, b, x, p, per,
    rpm >= 0 and rpm - reqs - count or -1, reset_r, tpm >= 0 and tpm - toks - tokens or -1,
    reset_t, left}
end
local hold = string.format('|%d|%d|%d|%d', bucket, tokens, cost, count)
for i = 1, n do
  local s = plan[i]
  redis.call('HINCRBY', s[1], 'r' .. bucket, count)
  if tokens > 0 then redis.call('HINCRBY', s[1], 't' .. bucket, tokens) end
  redis.call('PEXPIRE', s[1], 70000)
  redis.call('ZADD', s[2], now + lease, rid)
  redis.call('HSET', s[3], rid, s[6] .. hold)
  redis.call('PEXPIRE', s[2], lease + 3700000)
  redis.call('PEXPIRE', s[3], lease + 3700000)
  if cost > 0 then
    redis.call('HINCRBY', s[4], 'h:' .. s[6], cost)
    keep_budget(s[4], s[7])
  end
  out[#out + 1] = s[8]
  out[#out + 1] = s[9]
  out[#out + 1] = s[10]
  out[#out + 1] = s[11]
  out[#out + 1] = s[12]
end
return out
"""
)

SETTLE = (
    _COMMON
    + """
local rid, tokens, cost = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local n, charge, requests = tonumber(ARGV[4]), ARGV[5] == '1', tonumber(ARGV[6])
for i = 1, n do
  local k = (i - 1) * 5
  local w, h, a, b, x = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]
  local per = tonumber(ARGV[6 + i])
  local v = redis.call('HGET', a, rid)
  local p, bk, et, er = nil, bucket, 0, 0
  if v then
    local expired = string.sub(v, 1, 2) == 'x|'
    if expired then v = string.sub(v, 3) end
    local sbk, set, sec_, ser = nil, nil, nil, nil
    p, sbk, set, sec_, ser = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
    bk, et, er = tonumber(sbk), tonumber(set), tonumber(ser)
    if expired then
      redis.call('ZREM', x, rid)
    else
      redis.call('ZREM', h, rid)
      if tonumber(sec_) > 0 then redis.call('HINCRBY', b, 'h:' .. p, -tonumber(sec_)) end
    end
    redis.call('HDEL', a, rid)
  elseif charge then
    p = period(per)
    redis.call('HINCRBY', w, 'r' .. bucket, requests)
    redis.call('PEXPIRE', w, 70000)
    er = requests
  end
  if p then
    if cost > 0 then
      redis.call('HINCRBY', b, 's:' .. p, cost)
      keep_budget(b, per)
    end
    local d = tokens - et
    if d ~= 0 and bk >= oldest then
      redis.call('HINCRBY', w, 't' .. bk, d)
      redis.call('PEXPIRE', w, 70000)
    end
    if requests ~= er and bk >= oldest then  -- a borrowed chunk returns what it did not use
      redis.call('HINCRBY', w, 'r' .. bk, requests - er)
    end
  end
end
return 1
"""
)

# Live holds of one scope pushed on while their requests run (KEYS: the scope's h and a;
# ARGV: hold id, lease ms, …). XX: a hold already settled or expired is not brought back.
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local longest = 0
for i = 1, #ARGV, 2 do
  local lease = tonumber(ARGV[i + 1])
  redis.call('ZADD', KEYS[1], 'XX', 'GT', now + lease, ARGV[i])
  if lease > longest then longest = lease end
end
redis.call('PEXPIRE', KEYS[1], longest + 3700000)
redis.call('PEXPIRE', KEYS[2], longest + 3700000)
return 1
"""

# Each instance says it is alive every second; the count divides limits while Redis is away.
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 5000)
redis.call('PEXPIRE', KEYS[1], 60000)
return redis.call('ZCARD', KEYS[1])
"""

# A scope's current use, for GET /admin/keys/{id}: requests and tokens in the sliding minute,
# holds, and the budget period's spent and held amounts.
INSPECT = (
    _COMMON
    + """
local reqs, toks = 0, 0
local all = redis.call('HGETALL', KEYS[1])
for j = 1, #all, 2 do
  local bk = tonumber(string.sub(all[j], 2))
  if bk >= oldest then
    if string.byte(all[j], 1) == 114 then reqs = reqs + tonumber(all[j + 1])
    else toks = toks + tonumber(all[j + 1]) end
  end
end
local live = redis.call('ZCOUNT', KEYS[2], now, '+inf')
local p = period(tonumber(ARGV[1]))
local vals = redis.call('HMGET', KEYS[4], 's:' .. p, 'h:' .. p)
return {reqs, toks, live, tonumber(vals[1]) or 0, tonumber(vals[2]) or 0, p}
"""
)


def keys_of(scope: str) -> list[str]:
    return [f"gw:{{{scope}}}:{kind}" for kind in KEY_KINDS]
