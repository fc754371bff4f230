/**
 * Lua scripts of `RedisLimiter`. Every script reads the clock with Redis `TIME` (never the
 * hub's), so hub processes with skewed clocks still agree; Redis ≥ 5 replicates script effects,
 * so calling TIME before writing is allowed.
 *
 * Per rule key two Redis keys: `z` = ZSET (member = entry id, score = charge time in ms with µs
 * fraction) and `h` = HASH (entry id → units, plus "#sum" = total units of live entries).
 * Entries with score <= now - windowMs have left the window and are trimmed on every call.
 * Both keys get PEXPIRE windowMs whenever an entry is added at "now", so an idle key vanishes
 * exactly when its last entry leaves the window.
 */
import { createHash } from "node:crypto";

const COMMON = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local function ms(x) return string.format('%.3f', x) end
local function trim(z, h, w)
  while true do
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', ms(now - w), 'LIMIT', 0, 256)
    if #old == 0 then break end
    local vals = redis.call('HMGET', h, unpack(old))
    local freed = 0
    for i = 1, #vals do freed = freed + (tonumber(vals[i]) or 0) end
    redis.call('ZREM', z, unpack(old))
    redis.call('HDEL', h, unpack(old))
    redis.call('HINCRBY', h, '#sum', -freed)
  end
  if redis.call('EXISTS', z) == 0 then redis.call('DEL', h) end
end
local function sum(h) return tonumber(redis.call('HGET', h, '#sum') or 0) end
local function add(z, h, w, id, units)
  redis.call('ZADD', z, ms(now), id)
  redis.call('HSET', h, id, units)
  redis.call('HINCRBY', h, '#sum', units)
  redis.call('PEXPIRE', z, w)
  redis.call('PEXPIRE', h, w)
end
`;

/**
 * KEYS = z1, h1, z2, h2, ...; ARGV = id, then (limit, windowMs, units) per rule.
 * Returns {1, 0, 0} when every rule fits (all charged) or {0, refusingRuleIndex, retryAfterMs}
 * with nothing charged; the refusing rule is the one with the largest retryAfterMs.
 */
const ACQUIRE = COMMON + `
local function retry_after(z, h, w, need)
  local freed, start = 0, 0
  while true do
    local page = redis.call('ZRANGE', z, start, start + 255, 'WITHSCORES')
    if #page == 0 then return w end
    local ids = {}
    for i = 1, #page, 2 do ids[#ids + 1] = page[i] end
    local vals = redis.call('HMGET', h, unpack(ids))
    for i = 1, #ids do
      freed = freed + (tonumber(vals[i]) or 0)
      if freed >= need then
        return math.max(1, math.ceil(tonumber(page[2 * i]) + w - now))
      end
    end
    start = start + 256
  end
end
local id, n = ARGV[1], #KEYS / 2
local worst, worst_retry = 0, -1
for i = 1, n do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  local limit, w, units = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  trim(z, h, w)
  local s = sum(h)
  if s + units > limit then
    local r = w
    if units <= limit then r = retry_after(z, h, w, s + units - limit) end
    if r > worst_retry then worst, worst_retry = i, r end
  end
end
if worst > 0 then return {0, worst, worst_retry} end
for i = 1, n do
  add(KEYS[2 * i - 1], KEYS[2 * i], tonumber(ARGV[3 * i]), id, tonumber(ARGV[3 * i + 1]))
end
return {1, 0, 0}
`;

/**
 * Settle / release. KEYS as for ACQUIRE; ARGV = id, then (windowMs, actual, reserved) per rule.
 * actual = -1 releases (removes the entry and its ":x" excess entry). Otherwise a live entry is
 * set to `actual` in place (keeping its timestamp); an entry that already left the window only
 * charges the excess `actual - reserved`, as entry "<id>:x" at now.
 */
const ADJUST = COMMON + `
local id = ARGV[1]
for i = 1, #KEYS / 2 do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  local w, actual, reserved = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  trim(z, h, w)
  local cur = redis.call('HGET', h, id)
  local xid = id .. ':x'
  if actual < 0 then
    for _, e in ipairs({id, xid}) do
      local u = redis.call('HGET', h, e)
      if u then
        redis.call('ZREM', z, e)
        redis.call('HDEL', h, e)
        redis.call('HINCRBY', h, '#sum', -tonumber(u))
      end
    end
    if redis.call('EXISTS', z) == 0 then redis.call('DEL', h) end
  elseif cur then
    redis.call('HSET', h, id, actual)
    redis.call('HINCRBY', h, '#sum', actual - tonumber(cur))
  elseif actual > reserved then
    local xcur = redis.call('HGET', h, xid)
    if xcur then
      redis.call('HSET', h, xid, actual - reserved)
      redis.call('HINCRBY', h, '#sum', actual - reserved - tonumber(xcur))
    else
      add(z, h, w, xid, actual - reserved)
    end
  end
end
return 1
`;

/**
 * Concurrency slot. KEYS[1] = ZSET (member = slot id, score = expiry ms); ARGV = id, max, ttlMs.
 * Expired slots (a crashed hub's) are dropped first; the key lives as long as its longest slot.
 */
const SLOT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local k, id, max, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', k, '-inf', string.format('%.3f', now))
if redis.call('ZCARD', k) >= max then return 0 end
redis.call('ZADD', k, string.format('%.3f', now + ttl), id)
if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
return 1
`;

/** A script with its SHA1 (for EVALSHA). */
export interface LuaScript {
  readonly name: string;
  readonly src: string;
  readonly sha: string;
}

function script(name: string, src: string): LuaScript {
  return { name, src, sha: createHash("sha1").update(src).digest("hex") };
}

/** The limiter's scripts. */
export const SCRIPTS = {
  acquire: script("acquire", ACQUIRE),
  adjust: script("adjust", ADJUST),
  slot: script("slot", SLOT),
} as const;
