/*
 * Submission rate limit: one token bucket per client (burst RATE_LIMIT, refilled at RATE_LIMIT a
 * minute) in a fixed table, so that memory stays bounded whatever strangers send. Clients are
 * kept as a hash of their key, never the key itself. When the few slots a client may use are all
 * taken, the least recently seen one is reused: that only ever hands a client a fresh bucket, so
 * eviction can let an attacker with many addresses through but never locks anybody else out.
 */
#include "api/ratelimit.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/auth.h"
#include "api/internal.h"
#include "core/config.h"
#include "core/log.h"
#include "http/http.h"
#include "util/crypto.h"
#include "util/os.h"

#define RL_SLOTS 4096
#define RL_PROBES 8
#define RL_ID_LEN 16
#define RL_CLIENT_MAX 512

struct rl_slot {
    unsigned char id[RL_ID_LEN];
    bool used;
    double tokens;
    int64_t last_ms;
};

static struct rl_slot slots[RL_SLOTS];
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;

/* The client's slot: its own, else a free one, else the least recently seen of its probes. */
static struct rl_slot *slot_for(const unsigned char id[RL_ID_LEN], double burst, int64_t now_ms)
{
    uint64_t h;
    memcpy(&h, id, sizeof(h));
    struct rl_slot *victim = NULL;
    for (unsigned i = 0; i < RL_PROBES; i++) {
        struct rl_slot *s = &slots[(h + i) % RL_SLOTS];
        if (s->used && memcmp(s->id, id, RL_ID_LEN) == 0)
            return s;
        if (!victim || (victim->used && (!s->used || s->last_ms < victim->last_ms)))
            victim = s;
    }
    memcpy(victim->id, id, RL_ID_LEN);
    victim->used = true;
    victim->tokens = burst;
    victim->last_ms = now_ms;
    return victim;
}

unsigned ratelimit_take(const char *client, long long per_minute, int64_t now_ms)
{
    unsigned char digest[SHA256_LEN];
    crypto_sha256(client, strlen(client), digest);
    double burst = (double)per_minute, per_ms = (double)per_minute / 60000.0;
    unsigned wait_s = 0;
    pthread_mutex_lock(&slots_lock);
    struct rl_slot *s = slot_for(digest, burst, now_ms);
    if (now_ms > s->last_ms) {
        s->tokens += (double)(now_ms - s->last_ms) * per_ms;
        if (s->tokens > burst)
            s->tokens = burst;
        s->last_ms = now_ms;
    }
    if (s->tokens >= 1.0)
        s->tokens -= 1.0;
    else
        wait_s = (unsigned)((1.0 - s->tokens) / per_ms / 1000.0) + 1;
    pthread_mutex_unlock(&slots_lock);
    return wait_s;
}

void ratelimit_reset(void)
{
    pthread_mutex_lock(&slots_lock);
    memset(slots, 0, sizeof(slots));
    pthread_mutex_unlock(&slots_lock);
}

/* "key:<bearer token>" when API keys are in force (the router checked it), else "ip:<peer>". */
static void client_id(struct api_call *call, char *out, size_t outlen)
{
    const char *key = api_auth_request_key(call->t->app->auth, call->req);
    if (key)
        snprintf(out, outlen, "key:%s", key);
    else
        snprintf(out, outlen, "ip:%s", http_request_peer(call->req));
}

bool api_ratelimit_admit(struct api_call *call)
{
    long long per_minute = call->t->app->cfg->rate_limit;
    if (per_minute <= 0)
        return true;
    char client[RL_CLIENT_MAX];
    client_id(call, client, sizeof(client));
    unsigned wait_s = ratelimit_take(client, per_minute, os_monotonic_ms());
    if (wait_s == 0)
        return true;
    char retry[16];
    snprintf(retry, sizeof(retry), "%u", wait_s);
    log_msg(LOG_INFO, "api", "rate limit: submission refused for %u s", wait_s);
    http_reply_header(call->req, "Retry-After", retry);
    api_reply_error(call->req, 429, "rate_limited", "too many submissions; retry later");
    return false;
}
