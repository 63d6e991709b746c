/*
 * The Lua scripts that make each queue step atomic on the Redis server. Each runs as one unit,
 * so any number of workers (ours, or kombu's) may call them at the same time.
 *
 * Leases and kombu's bookkeeping. kombu records a delivery as HSET unacked <tag>
 * json([message, exchange, routing_key]) plus ZADD unacked_index <time()> <tag>, and its
 * restore_visible() puts back every entry whose score is older than now - visibility_timeout
 * (3600 s by default). We write the same two entries, but our score is the lease DEADLINE
 * (now + lease_s, server TIME): kombu sees a score in the future and leaves a live lease alone;
 * it would only restore one of ours whose lease ran out more than visibility_timeout ago, which
 * is harmless because queue_restore_expired() does that much sooner. We restore only tags in our
 * own hash interview-leases (tag -> owner token), never kombu's own deliveries, whose scores are
 * delivery times and would look expired to us at once.
 *
 * A restored message goes back byte for byte (RPUSH: it is taken next, as kombu's restore does);
 * kombu also sets headers.redelivered, which we leave out so the message keeps its bytes. A
 * task's retries happen within its worker slot (worker/task.c), so headers.retries is never
 * changed by us; deliveries are counted beside the message (claim_src).
 */
#include "queue/queue_int.h"

/* Shared by the scripts that move a message: the message out of a kombu unacked entry. */
#define LUA_MESSAGE_OF                                                                             \
    "local function message_of(v)\n"                                                               \
    "  local suffix = ', \"\", \"celery\"]'\n"                                                     \
    "  if v:sub(1, 1) == '[' and v:sub(-#suffix) == suffix then\n"                                 \
    "    return v:sub(2, #v - #suffix)\n"                                                          \
    "  end\n"                                                                                      \
    "  local ok, e = pcall(cjson.decode, v)\n"                                                     \
    "  if ok and type(e) == 'table' and type(e[1]) == 'table' then return cjson.encode(e[1]) "     \
    "end\n"                                                                                        \
    "  return nil\n"                                                                               \
    "end\n"

#define LUA_NOW                                                                                    \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"

/*
 * KEYS: queue, unacked, unacked_index, dead, leases, pending log, deliveries.
 * ARGV: lease_s, token. Returns nil (empty), {0, message} (malformed: moved to dead) or
 * {1, message, tag, claims, lost}. A claimed task is no longer pending (see lost_src): its
 * entry leaves the pending log when it is the log's first (the usual case: the log and the
 * queue are both in publication order); else lost_src drops it later.
 * Deliveries are counted beside the message (it goes back byte for byte): the hash field <id>
 * counts claims (it never goes down, so it orders the claims of one task: the fence), and
 * "<id> returned" counts deliveries handed back in order (release_src, head or tail); lost is
 * the number of earlier deliveries that ended otherwise (their worker died: restore_src).
 */
static const char claim_src[] =
    "local m = redis.call('RPOP', KEYS[1])\n"
    "if not m then return false end\n"
    "local ok, env = pcall(cjson.decode, m)\n"
    "local tag, id\n"
    "if ok and type(env) == 'table' and type(env.properties) == 'table' then\n"
    "  tag = env.properties.delivery_tag\n"
    "end\n"
    "if ok and type(env) == 'table' and type(env.headers) == 'table'\n"
    "   and type(env.headers.id) == 'string' then\n"
    "  id = env.headers.id\n"
    "  local head = redis.call('LINDEX', KEYS[6], 0)\n"
    "  local at = head and head:find(' ', 1, true)\n"
    "  if at and head:sub(at + 1, at + #id + 1) == id .. ' ' then redis.call('LPOP', KEYS[6]) end\n"
    "end\n"
    "if type(tag) ~= 'string' or #tag == 0 or #tag > 63 or tag:find('[^%w%-%._:]')\n"
    "   or redis.call('HEXISTS', KEYS[2], tag) == 1 then\n"
    "  redis.call('LPUSH', KEYS[4], m)\n"
    "  redis.call('LTRIM', KEYS[4], 0, 999)\n"
    "  return {0, m}\n"
    "end\n" LUA_NOW "redis.call('HSET', KEYS[2], tag, '[' .. m .. ', \"\", \"celery\"]')\n"
    "redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), tag)\n"
    "redis.call('HSET', KEYS[5], tag, ARGV[2])\n"
    "local claims, lost = 0, 0\n"
    "if id then\n"
    "  claims = redis.call('HINCRBY', KEYS[7], id, 1)\n"
    "  lost = claims - 1 - tonumber(redis.call('HGET', KEYS[7], id .. ' returned') or '0')\n"
    "end\n"
    "return {1, m, tag, claims, lost}\n";

/* KEYS: unacked, unacked_index, leases. ARGV: tag, token, lease_s. Returns 1, or 0 if lost. */
static const char renew_src[] =
    "if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2]\n"
    "   or redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0\n"
    "   or not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end\n" LUA_NOW
    "redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[3]), ARGV[1])\n"
    "return 1\n";

/*
 * KEYS: queue, unacked, unacked_index, leases, dead, deliveries. ARGV: tag, token, mode, message,
 * task_id. Ends a lease we own and, by mode, pushes message: "head" (RPUSH, taken next), "dead" (to
 * the dead list) or "none" (ack). Head counts the delivery as handed back in order; dead and
 * none end the task's counts (see claim_src).
 * Returns 1, or 0 if the lease was lost.
 */
static const char release_src[] =
    "if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end\n"
    "redis.call('HDEL', KEYS[4], ARGV[1])\n"
    "redis.call('ZREM', KEYS[3], ARGV[1])\n"
    "if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end\n"
    "if ARGV[3] == 'head' then redis.call('RPUSH', KEYS[1], ARGV[4])\n"
    "elseif ARGV[3] == 'dead' then\n"
    "  redis.call('LPUSH', KEYS[5], ARGV[4])\n"
    "  redis.call('LTRIM', KEYS[5], 0, 999)\n"
    "end\n"
    "if ARGV[5] ~= '' and ARGV[3] == 'head' then\n"
    "  redis.call('HINCRBY', KEYS[6], ARGV[5] .. ' returned', 1)\n"
    "elseif ARGV[5] ~= '' then\n"
    "  redis.call('HDEL', KEYS[6], ARGV[5], ARGV[5] .. ' returned')\n"
    "end\n"
    "return 1\n";

/* KEYS: queue, unacked, unacked_index, leases, dead. Returns the number put back. */
static const char restore_src[] =
    LUA_MESSAGE_OF LUA_NOW "local n = 0\n"
                           "for _, tag in ipairs(redis.call('HKEYS', KEYS[4])) do\n"
                           "  local score = redis.call('ZSCORE', KEYS[3], tag)\n"
                           "  if not score then\n"
                           "    redis.call('HDEL', KEYS[4], tag)\n"
                           "  elseif tonumber(score) < now then\n"
                           "    local v = redis.call('HGET', KEYS[2], tag)\n"
                           "    redis.call('HDEL', KEYS[2], tag)\n"
                           "    redis.call('ZREM', KEYS[3], tag)\n"
                           "    redis.call('HDEL', KEYS[4], tag)\n"
                           "    local m = v and message_of(v)\n"
                           "    if m then\n"
                           "      redis.call('RPUSH', KEYS[1], m)\n"
                           "      n = n + 1\n"
                           "    elseif v then\n"
                           "      redis.call('LPUSH', KEYS[5], v)\n"
                           "      redis.call('LTRIM', KEYS[5], 0, 999)\n"
                           "    end\n"
                           "  end\n"
                           "end\n"
                           "return n\n";

/*
 * KEYS: celery-task-meta-<id>, interview-fence-<id>, interview-webhooks, interview-webhooks-due,
 * interview-task-<id>. ARGV: value, ttl_s, fence, final, event_id, event.
 * As Celery's backend: SET EX and PUBLISH on the channel named by the key. A final state
 * (SUCCESS, FAILURE, REVOKED) is never replaced, by anything. A final state written (final =
 * "1") gives the accepted record the same TTL (submit_src writes it without one) and, with a
 * fence (a worker's write), ends the fence. With a fence, writes only while the fence key holds
 * that fence, i.e. while this delivery is the task's newest and its lease has not run out
 * (fence_src).
 * A webhook event (event_id not "") is queued in the same step as the state it reports, so a
 * final state written has its event and one already there gets none (webhook_claim_src).
 * Returns 1 when written, 0 when a final state was already there, -1 when fenced out.
 */
static const char set_result_src[] =
    "if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[3] then return -1 end\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then\n"
    "  local ok, m = pcall(cjson.decode, cur)\n"
    "  if ok and type(m) == 'table' and (m.status == 'SUCCESS' or m.status == 'FAILURE'\n"
    "     or m.status == 'REVOKED') then return 0 end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "redis.call('PUBLISH', KEYS[1], ARGV[1])\n"
    "if ARGV[4] == '1' then\n"
    "  redis.call('EXPIRE', KEYS[5], ARGV[2])\n"
    "  if ARGV[3] ~= '' then redis.call('DEL', KEYS[2]) end\n"
    "end\n"
    "if ARGV[5] ~= '' then\n" LUA_NOW
    "  redis.call('HSET', KEYS[3], ARGV[5], ARGV[6], ARGV[5] .. ' n', 0, ARGV[5] .. ' t', now)\n"
    "  redis.call('ZADD', KEYS[4], now, ARGV[5])\n"
    "end\n"
    "return 1\n";

/*
 * KEYS: interview-fence-<id> (backend). ARGV: fence ("<claims> <token>"), ttl_ms, mode.
 * The fence says which delivery of a task may write its states; it lives beside the results
 * (the broker may be another server) and lasts as long as the lease. "take" (after a claim)
 * sets it unless a later claim (more claims) holds it already; "keep" (with each lease renewal)
 * extends it only while it is still ours. Returns 1, or 0 when another delivery holds it (or,
 * for keep, it ran out).
 */
static const char fence_src[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if ARGV[3] == 'keep' then\n"
    "  if cur ~= ARGV[1] then return 0 end\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "local function claims(f) return tonumber(f:match('^%d+')) or 0 end\n"
    "if cur and claims(cur) > claims(ARGV[1]) then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "return 1\n";

/*
 * The pending log lists, in the order they were written, entries "<time> <task id> <message>" of
 * tasks published and not yet claimed, with server time (LUA_NOW), so that lost_src can tell
 * later whether the message still exists. A list append costs Redis less than a hash's or a
 * sorted set's insert, and a claim finds its entry first in the log. pending_entry() writes one.
 */
#define LUA_PENDING_ENTRY                                                                          \
    "local function pending_entry(id, msg) return now .. ' ' .. id .. ' ' .. msg end\n"

/*
 * KEYS: queue, pending log[, published]. ARGV: message, task_id, max_queued (0: no bound)[,
 * published_ttl_s]. Returns 0 without publishing when max_queued messages wait, else publishes
 * the message as kombu's _put (LPUSH), appends its pending entry and returns 1. With a third
 * key, publishes once: returns 2 without publishing when that marker is there, and writes it
 * (for published_ttl_s) in the same step as the message.
 */
static const char publish_src[] =
    "if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then return 2 end\n"
    LUA_NOW LUA_PENDING_ENTRY
    "local max = tonumber(ARGV[3])\n"
    "if max > 0 and redis.call('LLEN', KEYS[1]) >= max then return 0 end\n"
    "redis.call('LPUSH', KEYS[1], ARGV[1])\n"
    "redis.call('RPUSH', KEYS[2], pending_entry(ARGV[2], ARGV[1]))\n"
    "if KEYS[3] then redis.call('SET', KEYS[3], '1', 'EX', tonumber(ARGV[4])) end\n"
    "return 1\n";

/*
 * KEYS: queue, pending log (the broker's). ARGV: max_queued, the backend's db, the broker's db,
 * then a message, its task id and its accepted record for each of a batch of submits, for a
 * broker and a backend that are databases of one server (queue_async.c). The submits are taken
 * in order until max_queued messages wait; the rest are refused. The messages taken are
 * published as publish_src does with two keys (no once marker: a submit with an Idempotency-Key
 * never comes this way, it goes to queue_submit_once() on the pool), and their accepted records
 * written in the backend's database, in one command per key for the whole batch (LPUSH, RPUSH,
 * MSET: Redis's cost of a call from Lua is then paid three times, not three times a submit).
 * Returns 1 (queued) or 0 (the queue is full: nothing written) for each. SELECT back: before
 * Redis 7 a script's SELECT stays with the connection.
 * The records have no TTL until the task's final state gives one (set_result_src): written in
 * the same step as the pending log's entry, a record belongs to a task that either ends or is
 * found lost by lost_src, which ends it. A queued task is then never forgotten while it waits,
 * and Redis keeps no expiry per waiting task.
 */
static const char submit_src[] =
    LUA_NOW LUA_PENDING_ENTRY
    "local max = tonumber(ARGV[1])\n"
    "local room = max - redis.call('LLEN', KEYS[1])\n"
    "local msgs, entries, records, out = {}, {}, {}, {}\n"
    "for i = 4, #ARGV, 3 do\n"
    "  if max > 0 and #msgs >= room then out[#out + 1] = 0 else\n"
    "    msgs[#msgs + 1] = ARGV[i]\n"
    "    entries[#entries + 1] = pending_entry(ARGV[i + 1], ARGV[i])\n"
    "    records[#records + 1] = '" QUEUE_ACCEPTED_PREFIX "' .. ARGV[i + 1]\n"
    "    records[#records + 1] = ARGV[i + 2]\n"
    "    out[#out + 1] = 1\n"
    "  end\n"
    "end\n"
    "if #msgs > 0 then\n"
    "  redis.call('LPUSH', KEYS[1], unpack(msgs))\n"
    "  redis.call('RPUSH', KEYS[2], unpack(entries))\n"
    "  redis.call('SELECT', tonumber(ARGV[2]))\n"
    "  redis.call('MSET', unpack(records))\n"
    "  redis.call('SELECT', tonumber(ARGV[3]))\n"
    "end\n"
    "return out\n";

/*
 * KEYS: pending log, queue, unacked, deliveries. ARGV: age_s, limit, look_max.
 * Walks the pending log from its oldest entry while entries are older than age_s, at most
 * look_max of them. An entry whose task was claimed by one of our workers (it has a count in
 * deliveries) is dropped, and so is one of an older form, without the message. A task not
 * claimed by us is looked at, at most limit of them: one whose message is still on the queue
 * (LPOS) or delivered to a consumer (its tag in unacked: a kombu worker took it) gets a new entry
 * with now at the log's end, so each is looked at once per age_s; the others are returned, to be
 * failed as lost unless they have a result (a task claimed, then finished, when its entry was not
 * the log's first: queue_lost.c). Cost: at most limit list scans per call, whatever the backlog.
 */
static const char lost_src[] =
    LUA_NOW LUA_PENDING_ENTRY
    "local lost, looked, limit = {}, 0, tonumber(ARGV[2])\n"
    "local oldest = now - tonumber(ARGV[1])\n"
    "for _ = 1, tonumber(ARGV[3]) do\n"
    "  local e = redis.call('LINDEX', KEYS[1], 0)\n"
    "  if not e then break end\n"
    "  local t, id, m = e:match('^(%S+) (%S+) (.+)$')\n"
    "  t = tonumber(t)\n"
    "  if t and t > oldest then break end\n"
    "  local judge = m and redis.call('HEXISTS', KEYS[4], id) == 0\n"
    "  if judge and looked >= limit then break end\n"
    "  redis.call('LPOP', KEYS[1])\n"
    "  if judge then\n"
    "    looked = looked + 1\n"
    "    local alive = redis.call('LPOS', KEYS[2], m)\n"
    "    if not alive then\n"
    "      local ok, env = pcall(cjson.decode, m)\n"
    "      local tag = ok and type(env) == 'table' and type(env.properties) == 'table'\n"
    "                  and env.properties.delivery_tag\n"
    "      alive = type(tag) == 'string' and redis.call('HEXISTS', KEYS[3], tag) == 1\n"
    "    end\n"
    "    if alive then redis.call('RPUSH', KEYS[1], pending_entry(id, m))\n"
    "    else lost[#lost + 1] = id end\n"
    "  end\n"
    "end\n"
    "return lost\n";

static const char idem_src[] =
    "local v = ARGV[1] .. ' ' .. ARGV[2]\n"
    "if redis.call('SET', KEYS[1], v, 'NX', 'EX', ARGV[3]) then return {1, ARGV[2]} end\n"
    "return {0, redis.call('GET', KEYS[1]) or ''}\n";

/*
 * Webhook events (backend). KEYS: interview-webhooks (hash: <id> = the event's envelope,
 * "<id> n" = attempts claimed, "<id> t" = when it was queued, server time), interview-webhooks-due
 * (zset: <id> by the time of its next attempt). ARGV: lease_s, limit.
 * Claims up to limit due events: each is pushed lease_s into the future (if its sender dies, it
 * is due again then) and its attempt count, which fences the settle of this attempt, goes up.
 * Returns {now, {{id, envelope, attempt, queued_at}, ...}}, times as strings.
 */
static const char webhook_claim_src[] =
    LUA_NOW "local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0,\n"
            "                       tonumber(ARGV[2]))\n"
            "local out = {}\n"
            "for _, id in ipairs(ids) do\n"
            "  local env = redis.call('HGET', KEYS[1], id)\n"
            "  if not env then redis.call('ZREM', KEYS[2], id)\n"
            "  else\n"
            "    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), id)\n"
            "    local n = redis.call('HINCRBY', KEYS[1], id .. ' n', 1)\n"
            "    local queued = redis.call('HGET', KEYS[1], id .. ' t') or tostring(now)\n"
            "    out[#out + 1] = {id, env, tostring(n), queued}\n"
            "  end\n"
            "end\n"
            "return {tostring(now), out}\n";

/*
 * KEYS: interview-webhooks, interview-webhooks-due. ARGV: id, attempt, delay_s ("-1": done).
 * Ends the attempt that claimed the event as attempt number `attempt`: removes the event, or
 * makes it due delay_s from now. Returns 1, or 0 when a later claim holds it (this sender's
 * lease ran out) or it is gone.
 */
static const char webhook_settle_src[] =
    "if redis.call('HGET', KEYS[1], ARGV[1] .. ' n') ~= ARGV[2] then return 0 end\n"
    "if tonumber(ARGV[3]) < 0 then\n"
    "  redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1], ARGV[1] .. ' n', ARGV[1] .. ' t')\n"
    "  return 1\n"
    "end\n" LUA_NOW "redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])\n"
    "return 1\n";

const char *const queue_script_src[SCRIPT__COUNT] = {
    [SCRIPT_CLAIM] = claim_src,
    [SCRIPT_RENEW] = renew_src,
    [SCRIPT_RELEASE] = release_src,
    [SCRIPT_RESTORE] = restore_src,
    [SCRIPT_SET_RESULT] = set_result_src,
    [SCRIPT_PUBLISH] = publish_src,
    [SCRIPT_SUBMIT] = submit_src,
    [SCRIPT_LOST] = lost_src,
    [SCRIPT_IDEM] = idem_src,
    [SCRIPT_FENCE] = fence_src,
    [SCRIPT_WEBHOOK_CLAIM] = webhook_claim_src,
    [SCRIPT_WEBHOOK_SETTLE] = webhook_settle_src,
};
