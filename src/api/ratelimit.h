/* The submission rate limit: RATE_LIMIT submissions per minute per API key or client address. */
#ifndef IA_API_RATELIMIT_H
#define IA_API_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct api_call;

/*
 * True when the caller of call may go on; otherwise the request has been answered with 429 and
 * Retry-After. Clients are told apart by their bearer key when API_KEYS is set, else by the peer
 * address. Thread-safe; RATE_LIMIT 0 admits everything.
 */
bool api_ratelimit_admit(struct api_call *call);

/*
 * The token bucket underneath, for tests: takes one token for client at now_ms with per_minute
 * tokens a minute (burst per_minute). Returns 0 when taken, else the seconds until one is free.
 */
unsigned ratelimit_take(const char *client, long long per_minute, int64_t now_ms);
/* Forgets every client (for tests). */
void ratelimit_reset(void);

#endif
