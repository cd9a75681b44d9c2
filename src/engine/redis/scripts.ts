/**
 * The Lua scripts of the Redis engine. Each runs atomically on the slot of one diagnosis, so
 * every instance sees one order per diagnosis. Times come from the Redis server's clock (TIME),
 * the same for every instance.
 *
 * Shared prologue: `now` in ms, and `expire()` which drops events older than the TTL from the
 * front of the stream and forgets pending offsets that history no longer has.
 */
const PROLOGUE = `
local meta, history, pending = KEYS[1], KEYS[2], KEYS[3]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function expire(ttl)
  local cutoff = now - ttl
  local oldest = redis.call('XRANGE', history, '-', '+', 'COUNT', 1)
  if #oldest == 0 then
    -- Redis itself removed the idle stream's key when its TTL ran out: its events expired
    if tonumber(redis.call('HGET', meta, 'o') or '0') > 0 then redis.call('HSET', meta, 'dr', 'EXPIRED') end
    return
  end
  if tonumber(oldest[1][2][2]) > cutoff then return end
  local keep = nil
  for _, entry in ipairs(redis.call('XRANGE', history, '-', '+')) do
    if tonumber(entry[2][2]) > cutoff then keep = entry[1] break end
  end
  if keep then redis.call('XTRIM', history, 'MINID', keep) else redis.call('DEL', history) end
  redis.call('HSET', meta, 'dr', 'EXPIRED')
end

-- the offset of the oldest retained event (last + 1 when none is retained)
local function first_offset(last)
  return last - redis.call('XLEN', history) + 1
end

local function forget_pending_before(first)
  while true do
    local oldest = redis.call('ZRANGE', pending, 0, 0)
    if #oldest == 0 or tonumber(oldest[1]) >= first then return end
    redis.call('ZREM', pending, oldest[1])
  end
end

-- epoch, last offset, first offset, dropped-by ('' when nothing is gone)
local function bounds(epoch)
  local last = tonumber(redis.call('HGET', meta, 'o') or '0')
  local first = first_offset(last)
  forget_pending_before(first)
  local dropped = redis.call('HGET', meta, 'dr') or ''
  -- only expiry empties a stream (trimming keeps the newest), also when its key timed out
  if first > last and last > 0 then dropped = 'EXPIRED' end
  return {epoch, last, first, dropped}
end
`;

/**
 * KEYS: meta, history, pending, subscribers, idempotency (or meta when there is no key), channel
 * ARGV: new epoch, event JSON, size, ttl ms, meta ttl ms, idempotency ttl ms, (unused), has key (1/0)
 * The live message goes out with SPUBLISH: sharded pub/sub, served by the diagnosis's own slot.
 * Returns {'dup', stored receipt} or {'ok', epoch, offset, time, live subscribers}.
 * The receipt is stored as `epoch|offset|time|live|json`, the live message as `epoch|offset|time|json`.
 */
export const APPEND = `${PROLOGUE}
local subscribers, idempotency = KEYS[4], KEYS[5]
local size, ttl, meta_ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if ARGV[8] == '1' then
  local prior = redis.call('GET', idempotency)
  if prior then return {'dup', prior} end
end
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', history, pending)
  redis.call('HSET', meta, 'e', epoch, 'o', 0)
  redis.call('HDEL', meta, 'dr')
end
expire(ttl)
local offset = redis.call('HINCRBY', meta, 'o', 1)
if redis.call('XLEN', history) >= size then redis.call('HSET', meta, 'dr', 'TRIMMED') end
redis.call('XADD', history, 'MAXLEN', size, offset .. '-0', 't', now, 'v', ARGV[2])
forget_pending_before(first_offset(offset))

local receivers = redis.call('SPUBLISH', KEYS[6], epoch .. '|' .. offset .. '|' .. now .. '|' .. ARGV[2])
-- members are zero-padded so that events of the same millisecond sort by offset
if receivers == 0 then redis.call('ZADD', pending, now, string.format('%020d', offset)) end
local live = 0
for _, count in ipairs(redis.call('HVALS', subscribers)) do live = live + tonumber(count) end

redis.call('PEXPIRE', meta, meta_ttl)
redis.call('PEXPIRE', history, ttl)
redis.call('PEXPIRE', pending, ttl)
if ARGV[8] == '1' then
  redis.call('SET', idempotency, epoch .. '|' .. offset .. '|' .. now .. '|' .. live .. '|' .. ARGV[2], 'PX', ARGV[6])
end
return {'ok', epoch, offset, now, live}
`;

/**
 * KEYS: meta, history, pending. ARGV: ttl ms, after epoch, after offset ('' for none), limit,
 * mark ('1': pending events up to the newest one read are delivered; a resume).
 * Returns {epoch, last, first, dropped, entries}; epoch '' when the diagnosis has no stream.
 */
export const READ = `${PROLOGUE}
local epoch = redis.call('HGET', meta, 'e')
if not epoch then return {'', 0, 1, '', {}} end
expire(tonumber(ARGV[1]))
local result = bounds(epoch)
local start = '-'
if ARGV[2] == epoch and ARGV[3] ~= '' then start = '(' .. ARGV[3] .. '-0' end
local entries = redis.call('XRANGE', history, start, '+', 'COUNT', ARGV[4])
if ARGV[5] == '1' and #entries > 0 then
  forget_pending_before(tonumber(string.match(entries[#entries][1], '^%d+')) + 1)
end
result[5] = entries
return result
`;

/**
 * Takes the pending events and marks them delivered. KEYS: meta, history, pending. ARGV: ttl ms.
 * Returns {epoch, last, first, dropped, entries}.
 */
export const CLAIM = `${PROLOGUE}
local epoch = redis.call('HGET', meta, 'e')
if not epoch then return {'', 0, 1, '', {}} end
expire(tonumber(ARGV[1]))
local result = bounds(epoch)
local entries = {}
for _, member in ipairs(redis.call('ZRANGE', pending, 0, -1)) do
  local offset = tonumber(member)
  local found = redis.call('XRANGE', history, offset .. '-0', offset .. '-0')
  if #found > 0 then entries[#entries + 1] = found[1] end
end
redis.call('DEL', pending)
result[5] = entries
return result
`;

/**
 * Counts for one diagnosis. KEYS: meta, history, pending, subscribers. ARGV: ttl ms.
 * Returns {epoch, last, retained, pending, subscribers}.
 */
export const TOPIC_STATS = `${PROLOGUE}
local live = 0
for _, count in ipairs(redis.call('HVALS', KEYS[4])) do live = live + tonumber(count) end
local epoch = redis.call('HGET', meta, 'e')
if not epoch then return {'', 0, 0, 0, live} end
expire(tonumber(ARGV[1]))
local result = bounds(epoch)
return {epoch, result[2], redis.call('XLEN', history), redis.call('ZCARD', pending), live}
`;
