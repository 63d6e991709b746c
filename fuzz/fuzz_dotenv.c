/*
 * libFuzzer target for the .env reader in core/config.c: the input is a .env file. dotenv_parse
 * must hand over only well-formed pairs, and config_load_from must either load a configuration
 * whose values respect the option table or fail with a message that names the option. An empty
 * environment is used, so every option the text sets is read from it.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct pair_count {
    int calls;
};

/* A key is 1..128 letters, digits or '_'; a value has no NUL (it is a C string by contract). */
static void on_pair(const char *key, const char *value, void *ctx)
{
    struct pair_count *c = ctx;
    size_t n = strlen(key);
    if (n == 0 || n > 128 || !value)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)key[i]) && key[i] != '_')
            abort();
    (void)strlen(value);
    c->calls++;
}

static const char *empty_env(const char *name, void *ctx)
{
    (void)name;
    (void)ctx;
    return NULL;
}

/* A loaded configuration has every string set and its documented derived values. */
static void check_config(const struct config *cfg)
{
    if (!cfg->host || !cfg->processed_dir[0] || !cfg->broker_url || !cfg->backend_url ||
        !cfg->log_level || !cfg->preset || !cfg->api_keys || !cfg->signing_key)
        abort();
    /*
     * Only the scheme is checked: PUBLIC_BASE_URL=http:// (no host) is accepted and its trailing
     * slashes trimmed to "http:"; reported to core/'s owner rather than enforced here.
     */
    if (strncmp(cfg->public_base_url, "http:", 5) != 0 &&
        strncmp(cfg->public_base_url, "https:", 6) != 0)
        abort();
    if (cfg->port < 0 || cfg->port > 65535 || cfg->worker_concurrency < 1 ||
        cfg->serve_threads < 1 || cfg->crf < 0 || cfg->crf > 51)
        abort();
}

/* A refusal names the option: "NAME: ...", NAME in upper case, digits and '_' (S3_LIST_PAGE). */
static void check_error(const char *err)
{
    const char *colon = strstr(err, ": ");
    if (!colon || colon == err)
        abort();
    for (const char *p = err; p < colon; p++)
        if (!isupper((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_')
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (size)
        memcpy(text, data, size);
    text[size] = '\0';
    struct pair_count count = {0};
    int pairs = dotenv_parse(text, size, on_pair, &count);
    if (pairs != count.calls || pairs < 0)
        abort();

    struct config cfg;
    char err[256] = "";
    if (config_load_from(&cfg, empty_env, NULL, text, err, sizeof(err)) == 0) {
        check_config(&cfg);
        config_cleanup(&cfg);
    } else {
        check_error(err);
    }
    free(text);
    return 0;
}
