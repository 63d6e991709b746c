/* What start-up and check-config learn of the Redis URLs: parsed, checked, shown without secrets.
 */
#include "queue/queue.h"

#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "queue/redis_url.h"

/* Checks one URL option; the reason, naming the option, in err. */
static enum ia_err check_one(const char *option, const char *url, char *err, size_t errlen)
{
    char why[160];
    enum ia_err rc;
    if (redis_url_is_sentinel(url)) {
        struct redis_sentinel_url su;
        rc = redis_sentinel_url_parse(url, &su, why, sizeof(why));
        memset(&su, 0, sizeof(su));
    } else {
        struct redis_url u;
        rc = redis_url_parse(url, &u, why, sizeof(why));
        memset(&u, 0, sizeof(u));
    }
    if (rc)
        snprintf(err, errlen, "%s: %s", option, why);
    return rc;
}

enum ia_err queue_config_check(const struct config *cfg, char *err, size_t errlen)
{
    enum ia_err rc = check_one("CELERY_BROKER_URL", cfg->broker_url, err, errlen);
    return rc ? rc : check_one("CELERY_BACKEND_URL", cfg->backend_url, err, errlen);
}

/* Prints one "# what: ..." line of a parsed URL option. */
static void print_one(FILE *out, const char *what, const char *url, const char *master_name)
{
    if (!redis_url_is_sentinel(url)) {
        struct redis_url u;
        if (redis_url_parse(url, &u, NULL, 0) == IA_OK)
            fprintf(out, "# %s: redis %s%s%s:%d, db %d, password %s\n", what,
                    strchr(u.host, ':') ? "[" : "", u.host, strchr(u.host, ':') ? "]" : "", u.port,
                    u.db, u.password[0] ? "set" : "none");
        memset(&u, 0, sizeof(u));
        return;
    }
    struct redis_sentinel_url su;
    if (redis_sentinel_url_parse(url, &su, NULL, 0) == IA_OK) {
        fprintf(out, "# %s: sentinels", what);
        for (int i = 0; i < su.count; i++) {
            const char *h = su.sentinel[i].host;
            bool v6 = strchr(h, ':') != NULL;
            fprintf(out, "%s %s%s%s:%d", i ? "," : "", v6 ? "[" : "", h, v6 ? "]" : "",
                    su.sentinel[i].port);
        }
        fprintf(out, "; master name '%s', db %d, password %s\n", master_name, su.master.db,
                su.master.password[0] ? "set" : "none");
    }
    memset(&su, 0, sizeof(su));
}

void queue_config_print(const struct config *cfg, FILE *out)
{
    print_one(out, "broker", cfg->broker_url, cfg->broker_master_name);
    print_one(out, "backend", cfg->backend_url, cfg->backend_master_name);
}
