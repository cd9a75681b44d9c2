/** `now`: the Redis server's time in ms. */
const NOW = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
`;

/**
 * `live(subscribers)`: the subscribers of a diagnosis over all instances. Its hash holds, per
 * instance, `count|expires at (ms)`; an entry whose instance stopped renewing it (dead, or its
 * write failed) no longer counts once it expired (see SET_SUBSCRIBERS).
 */
const LIVE = `
local function live(subscribers)
  local total = 0
  for _, value in ipairs(redis.call('HVALS', subscribers)) do
    local count, expires = string.match(value, '^(%d+)|(%d+)$')
    if count and tonumber(expires) > now then total = total + tonumber(count) end
  end
  return total
end
`;

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
${NOW}
${LIVE}
-- an entry's tag (its field g; '' for an entry stored before events had tags)
local function tag_of(entry)
  if entry[2][5] == 'g' then return entry[2][6] end
  return ''
end

-- meta b: '<offset>:<tag>' of the newest dropped event, which a cursor at the boundary names
local function remember_dropped(entry)
  redis.call('HSET', meta, 'b', string.match(entry[1], '^%d+') .. ':' .. tag_of(entry))
end

local function expire(ttl)
  local cutoff = now - ttl
  local oldest = redis.call('XRANGE', history, '-', '+', 'COUNT', 1)
  if #oldest == 0 then
    -- Redis itself removed the idle stream's key when its TTL ran out: its events expired, the
    -- newest (meta o, lt) now the newest dropped one
    local last = redis.call('HGET', meta, 'o') or '0'
    if tonumber(last) > 0 then redis.call('HSET', meta, 'dr', 'EXPIRED', 'b', last .. ':' .. (redis.call('HGET', meta, 'lt') or '')) end
    return
  end
  if tonumber(oldest[1][2][2]) > cutoff then return end
  local keep, dropped = nil, nil
  for _, entry in ipairs(redis.call('XRANGE', history, '-', '+')) do
    if tonumber(entry[2][2]) > cutoff then keep = entry[1] break end
    dropped = entry
  end
  if keep then redis.call('XTRIM', history, 'MINID', keep) else redis.call('DEL', history) end
  redis.call('HSET', meta, 'dr', 'EXPIRED')
  remember_dropped(dropped)
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

-- the tag of the event at first - 1 ('' when not known): the newest event when none is
-- retained (meta lt, also when the history key timed out), else the newest dropped one
local function boundary_tag(first)
  local last = tonumber(redis.call('HGET', meta, 'o') or '0')
  if first > last then return redis.call('HGET', meta, 'lt') or '' end
  local offset, tag = string.match(redis.call('HGET', meta, 'b') or '', '^(%d+):(.*)$')
  if offset and tonumber(offset) == first - 1 then return tag end
  return ''
end

-- epoch, last offset, first offset, dropped-by ('' when nothing is gone), boundary tag
local function bounds(epoch)
  local last = tonumber(redis.call('HGET', meta, 'o') or '0')
  local first = first_offset(last)
  forget_pending_before(first)
  local dropped = redis.call('HGET', meta, 'dr') or ''
  -- only expiry empties a stream (trimming keeps the newest), also when its key timed out
  if first > last and last > 0 then dropped = 'EXPIRED' end
  return {epoch, last, first, dropped, boundary_tag(first)}
end

-- false when a position (of this epoch) is not of this history: past its last offset, or
-- tagged otherwise than the event the stream knows there (retained, or the newest dropped)
local function holds(offset, tag, last, first)
  if offset > last then return false end
  if tag == '' then return true end
  local known = ''
  if offset == first - 1 then
    known = boundary_tag(first)
  elseif offset >= first then
    local found = redis.call('XRANGE', history, offset .. '-0', offset .. '-0')
    if #found > 0 then known = tag_of(found[1]) end
  end
  return known == '' or known == tag
end
`;

/**
 * KEYS: meta, history, pending, subscribers, idempotency (or meta when there is no key), channel
 * ARGV: new epoch, event JSON, size, ttl ms, meta ttl ms, idempotency ttl ms, input digest, has key (1/0),
 * the event's tag
 * The live message goes out with SPUBLISH: sharded pub/sub, served by the diagnosis's own slot.
 * Returns {'ok', epoch, offset, time, live subscribers} for a new event; for a known key,
 * {'dup', epoch, offset, time, live subscribers, tag} when the digest matches (the receipt is
 * written again, unchanged), else {'reused'}.
 * The receipt is stored as `digest|epoch|offset|time|live|tag` (never the event; a receipt
 * stored before events had tags lacks `|tag`), the live message as `epoch|offset|time|tag|json` where
 * the JSON starts with `"_p":"<previous>"`, the tag of the event at offset - 1 (so that a listener
 * can tell that the event it holds there is the one this follows; see RedisEngine's Topic; inside
 * the JSON, so that an instance that does not know it still reads the message: see codec.ts),
 * the history entry with fields t (time), v (JSON) and g (tag), and the tag as meta lt. When the
 * append trims the oldest event, its offset and tag are kept (meta b) for a cursor at the new
 * boundary.
 */
export const APPEND = `${PROLOGUE}
local subscribers, idempotency = KEYS[4], KEYS[5]
local size, ttl, meta_ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if ARGV[8] == '1' then
  local prior = redis.call('GET', idempotency)
  if prior then
    local digest, e, o, t, l, g = string.match(prior, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|?([^|]*)$')
    if digest ~= ARGV[7] then return {'reused'} end
    -- rewritten as it is: a WAIT after this script then covers the original write (see RedisEngine.append)
    redis.call('SET', idempotency, prior, 'KEEPTTL')
    return {'dup', e, tonumber(o), tonumber(t), tonumber(l), g}
  end
end
-- the epoch, and the tag of the event this one follows ('' for the first of an epoch), sent along live
local known = redis.call('HMGET', meta, 'e', 'lt')
local epoch, previous = known[1], known[2] or ''
if not epoch then
  epoch, previous = ARGV[1], ''
  redis.call('DEL', history, pending)
  redis.call('HSET', meta, 'e', epoch, 'o', 0)
  redis.call('HDEL', meta, 'dr')
end
expire(ttl)
local offset = redis.call('HINCRBY', meta, 'o', 1)
redis.call('HSET', meta, 'lt', ARGV[9])
local retained = redis.call('XLEN', history)
if retained >= size then
  redis.call('HSET', meta, 'dr', 'TRIMMED')
  local trimmed = redis.call('XRANGE', history, '-', '+', 'COUNT', retained - size + 1)
  remember_dropped(trimmed[#trimmed])
end
redis.call('XADD', history, 'MAXLEN', size, offset .. '-0', 't', now, 'v', ARGV[2], 'g', ARGV[9])
forget_pending_before(first_offset(offset))

local receivers = redis.call('SPUBLISH', KEYS[6], epoch .. '|' .. offset .. '|' .. now .. '|' .. ARGV[9] .. '|{"_p":"' .. previous .. '",' .. string.sub(ARGV[2], 2))
-- members are zero-padded so that events of the same millisecond sort by offset
if receivers == 0 then redis.call('ZADD', pending, now, string.format('%020d', offset)) end
local live = live(subscribers)

redis.call('PEXPIRE', meta, meta_ttl)
redis.call('PEXPIRE', history, ttl)
redis.call('PEXPIRE', pending, ttl)
if ARGV[8] == '1' then
  redis.call('SET', idempotency, ARGV[7] .. '|' .. epoch .. '|' .. offset .. '|' .. now .. '|' .. live .. '|' .. ARGV[9], 'PX', ARGV[6])
end
return {'ok', epoch, offset, now, live}
`;

/**
 * KEYS: meta, history, pending. ARGV: ttl ms, after epoch, after offset ('' for none), limit,
 * mark ('1': pending events up to the newest one read are delivered; a resume), after tag.
 * Returns {epoch, last, first, dropped, boundary tag, replaced, entries, marked, ticket}; epoch ''
 * when the diagnosis has no stream; replaced 1 when `after` is of this epoch but not of this
 * history (see Engine.read), and the entries are then read from the oldest; marked: the offsets
 * the mark took from the pending set; ticket: the resume's, when it marked any (meta 't' counts
 * claims and resumes, 'r' and 'rt' are the last resume's ticket and the offset it replayed up to).
 */
export const READ = `${PROLOGUE}
local epoch = redis.call('HGET', meta, 'e')
if not epoch then return {'', 0, 1, '', '', 0, {}} end
expire(tonumber(ARGV[1]))
local result = bounds(epoch)
local start, replaced = '-', 0
if ARGV[2] == epoch and ARGV[3] ~= '' then
  if holds(tonumber(ARGV[3]), ARGV[6], result[2], result[3]) then start = '(' .. ARGV[3] .. '-0' else replaced = 1 end
end
local entries = redis.call('XRANGE', history, start, '+', 'COUNT', ARGV[4])
local marked = {}
result[6] = replaced
result[7] = entries
result[8] = marked
if ARGV[5] == '1' and #entries > 0 then
  local newest = tonumber(string.match(entries[#entries][1], '^%d+'))
  for _, member in ipairs(redis.call('ZRANGE', pending, 0, -1)) do
    local offset = tonumber(member)
    if offset <= newest then
      redis.call('ZREM', pending, member)
      marked[#marked + 1] = offset
    end
  end
  -- the resume's ticket, and how far it replayed (see RESTORE)
  local ticket = redis.call('HINCRBY', meta, 't', 1)
  redis.call('HSET', meta, 'r', ticket, 'rt', newest)
  if #marked > 0 then result[9] = ticket end
end
return result
`;

/**
 * Takes the pending events and marks them delivered. KEYS: meta, history, pending. ARGV: ttl ms.
 * Returns {epoch, last, first, dropped, boundary tag, 0, entries, {}, ticket}; ticket when it
 * took any (see READ).
 */
export const CLAIM = `${PROLOGUE}
local epoch = redis.call('HGET', meta, 'e')
if not epoch then return {'', 0, 1, '', '', 0, {}} end
expire(tonumber(ARGV[1]))
local result = bounds(epoch)
local entries = {}
for _, member in ipairs(redis.call('ZRANGE', pending, 0, -1)) do
  local offset = tonumber(member)
  local found = redis.call('XRANGE', history, offset .. '-0', offset .. '-0')
  if #found > 0 then entries[#entries + 1] = found[1] end
end
redis.call('DEL', pending)
result[6] = 0
result[7] = entries
result[8] = {}
if #entries > 0 then result[9] = redis.call('HINCRBY', meta, 't', 1) end
return result
`;

/**
 * Gives claimed events back as pending. KEYS: meta, history, pending. ARGV: ttl ms, epoch, the
 * claim's ticket, then the offsets. Only offsets of the stream's current epoch whose events are
 * still retained, and that no resume after the claim replayed, are added, each scored with its
 * event's time (its place among the pending ones); NX leaves one that is pending already as it
 * is. Resumes read up to the stream's last offset, which only grows, so the last one replayed the
 * most. Returns how many became pending.
 */
export const RESTORE = `${PROLOGUE}
local epoch = redis.call('HGET', meta, 'e')
if not epoch or epoch ~= ARGV[2] then return 0 end
expire(tonumber(ARGV[1]))
local replayed = 0
if tonumber(redis.call('HGET', meta, 'r') or '0') > tonumber(ARGV[3]) then
  replayed = tonumber(redis.call('HGET', meta, 'rt') or '0')
end
local restored = 0
for i = 4, #ARGV do
  local offset = tonumber(ARGV[i])
  if offset and offset > replayed and offset >= 1 and offset == math.floor(offset) then
    local found = redis.call('XRANGE', history, offset .. '-0', offset .. '-0')
    if #found > 0 then
      restored = restored + redis.call('ZADD', pending, 'NX', found[1][2][2], string.format('%020d', offset))
    end
  end
end
-- the pending set lives as long as the history it points into
local ttl = redis.call('PTTL', history)
if restored > 0 and ttl > 0 then redis.call('PEXPIRE', pending, ttl) end
return restored
`;

/**
 * Makes pending an event whose live message reached an instance that had no subscriber of the
 * diagnosis left (its unsubscribe was on its way): the append counted that instance as a
 * receiver, so the event was not made pending, and nobody received it. KEYS: meta, history,
 * pending, subscribers. ARGV: ttl ms, epoch, offset, the instance's id. Nothing when another
 * instance counts subscribers of the diagnosis (they received it), when a resume has replayed it
 * (see READ), or when the event is no longer retained or of the stream's epoch. Returns 1 when it
 * became pending.
 */
export const UNHEARD = `${PROLOGUE}
local subscribers = KEYS[4]
local epoch = redis.call('HGET', meta, 'e')
local offset = tonumber(ARGV[3])
if not epoch or epoch ~= ARGV[2] or not offset then return 0 end
if tonumber(redis.call('HGET', meta, 'rt') or '0') >= offset then return 0 end
local entries = redis.call('HGETALL', subscribers)
for i = 1, #entries, 2 do
  local count, expires = string.match(entries[i + 1], '^(%d+)|(%d+)$')
  if entries[i] ~= ARGV[4] and count and tonumber(count) > 0 and tonumber(expires) > now then return 0 end
end
local found = redis.call('XRANGE', history, offset .. '-0', offset .. '-0')
if #found == 0 then return 0 end
expire(tonumber(ARGV[1]))
local added = redis.call('ZADD', pending, 'NX', found[1][2][2], string.format('%020d', offset))
local ttl = redis.call('PTTL', history)
if added > 0 and ttl > 0 then redis.call('PEXPIRE', pending, ttl) end
return added
`;

/**
 * Counts for one diagnosis. KEYS: meta, history, pending, subscribers. ARGV: ttl ms.
 * Returns {epoch, last, retained, pending, subscribers, the last event's tag ('' when not known)}.
 */
export const TOPIC_STATS = `${PROLOGUE}
local live = live(KEYS[4])
local epoch = redis.call('HGET', meta, 'e')
if not epoch then return {'', 0, 0, 0, live} end
expire(tonumber(ARGV[1]))
local result = bounds(epoch)
-- the newest event is retained, or else the newest dropped one (the boundary)
local newest, tag = redis.call('XREVRANGE', history, '+', '-', 'COUNT', 1), result[5]
if #newest > 0 then tag = tag_of(newest[1]) end
return {epoch, result[2], redis.call('XLEN', history), redis.call('ZCARD', pending), live, tag}
`;

/**
 * One instance's subscriber count of one diagnosis, leased. KEYS: subscribers. ARGV: instance id,
 * count, lease ms. Stores `count|now + lease` (removes the entry at 0), drops entries that
 * expired, and keeps the hash as long as its newest lease. An instance renews its leases every
 * heartbeat with its own counts, so a count that a failed write left wrong is corrected, and the
 * counts of a dead instance expire, with no step that spans two slots.
 */
export const SET_SUBSCRIBERS = `${NOW}
local subscribers, lease = KEYS[1], tonumber(ARGV[3])
local entries = redis.call('HGETALL', subscribers)
for i = 1, #entries, 2 do
  local expires = string.match(entries[i + 1], '|(%d+)$')
  if not expires or tonumber(expires) <= now then redis.call('HDEL', subscribers, entries[i]) end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', subscribers, ARGV[1], ARGV[2] .. '|' .. (now + lease))
  redis.call('PEXPIRE', subscribers, lease)
else
  redis.call('HDEL', subscribers, ARGV[1])
end
return 1
`;

/**
 * Writes nothing, but its shebang makes it a write script, which Redis refuses to run where it
 * refuses writes: on a replica (READONLY, a master demoted by a failover included), and on a
 * master short of min-replicas-to-write (NOREPLICAS) or over maxmemory (OOM). Nothing is
 * propagated to replicas. KEYS and ARGV: none.
 */
export const WRITABLE = `#!lua
return 1
`;

/**
 * Revocations (KEYS: the index, a sorted set of entry key by expiry in ms, and the data, a hash of
 * entry key → JSON; both under the `{revocations}` hash tag). Prologue: drop the expired ones.
 */
const REVOCATIONS_PROLOGUE = `
local index, data = KEYS[1], KEYS[2]
${NOW}
for _, key in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now)) do redis.call('HDEL', data, key) end
redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
`;

/**
 * ARGV: entry key, entry JSON, its expiry (ms), the limit, the channel. Stores the entry unless
 * `limit` others are stored (returns 0, storing nothing), keeps both keys until the last entry
 * expires, and publishes the JSON on the channel (same slot). Returns 1 when stored.
 */
export const REVOKE = `${REVOCATIONS_PROLOGUE}
local key, json, expires, limit, channel = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
if not redis.call('ZSCORE', index, key) and redis.call('ZCARD', index) >= limit then return 0 end
redis.call('ZADD', index, expires, key)
redis.call('HSET', data, key, json)
local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', index, last[2])
redis.call('PEXPIREAT', data, last[2])
redis.call('SPUBLISH', channel, json)
return 1
`;

/** The unexpired entries' JSON. */
export const REVOCATIONS = `${REVOCATIONS_PROLOGUE}
return redis.call('HVALS', data)
`;
