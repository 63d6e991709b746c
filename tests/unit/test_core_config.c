/* Tests for core/config.c: defaults, environment over .env, validation, redaction, .env parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

struct fake_env {
    const char *const *pairs; /* name, value, name, value, ..., NULL */
};

static const char *fake_getenv(const char *name, void *ctx)
{
    const struct fake_env *e = ctx;
    for (size_t i = 0; e->pairs[i]; i += 2)
        if (strcmp(e->pairs[i], name) == 0)
            return e->pairs[i + 1];
    return NULL;
}

static int load(struct config *cfg, const char *const *pairs, const char *dotenv, char *err)
{
    struct fake_env env = {pairs};
    return config_load_from(cfg, fake_getenv, &env, dotenv, err, 256);
}

static void test_defaults(void **state)
{
    (void)state;
    const char *const none[] = {NULL};
    struct config cfg;
    char err[256] = "";
    assert_int_equal(load(&cfg, none, NULL, err), 0);
    assert_int_equal(cfg.port, 8000);
    assert_string_equal(cfg.processed_dir, "./processed");
    assert_string_equal(cfg.broker_url, "redis://localhost:6379/0");
    assert_string_equal(cfg.backend_url, "redis://localhost:6379/1");
    assert_string_equal(cfg.public_base_url, "http://127.0.0.1:8000");
    assert_true(cfg.worker_concurrency >= 1);
    assert_int_equal(cfg.max_queued, 10000);
    assert_int_equal(cfg.task_lease_s, 60);
    assert_string_equal(cfg.media_delivery, "redirect");
    config_cleanup(&cfg);
}

static void test_env_wins_over_dotenv(void **state)
{
    (void)state;
    const char *const env[] = {"PORT", "9001", NULL};
    struct config cfg;
    char err[256] = "";
    assert_int_equal(load(&cfg, env, "PORT=9002\nPROCESSED_DIR='/tmp/x y'\n", err), 0);
    assert_int_equal(cfg.port, 9001);
    assert_string_equal(cfg.processed_dir, "/tmp/x y");
    assert_string_equal(cfg.public_base_url, "http://127.0.0.1:9001");
    config_cleanup(&cfg);
}

static void test_invalid_values_name_the_option(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"PORT", "70000", "PORT"},
        {"PORT", "80x", "PORT"},
        {"PORT", "", "PORT"},
        {"WORKER_CONCURRENCY", "-1", "WORKER_CONCURRENCY"},
        {"CELERY_BROKER_URL", "amqp://x", "CELERY_BROKER_URL"},
        {"PUBLIC_BASE_URL", "ftp://x", "PUBLIC_BASE_URL"},
        {"PUBLIC_BASE_URL", "http://", "PUBLIC_BASE_URL"},
        {"PUBLIC_BASE_URL", "https:///path", "PUBLIC_BASE_URL"},
        {"LOG_LEVEL", "loud", "LOG_LEVEL"},
        {"MAX_DOWNLOAD_BYTES", "99999999999999999999999", "MAX_DOWNLOAD_BYTES"},
        {"PRESET", "turbo", "PRESET"},
        {"PRESET", "", "PRESET"},
        {"PRESET", "fast -y", "PRESET"},
        {"PRESET", "VeryFast", "PRESET"},
        {"MEDIA_DELIVERY", "", "MEDIA_DELIVERY"},
        {"MEDIA_DELIVERY", "Redirect", "MEDIA_DELIVERY"},
        {"MEDIA_DELIVERY", "stream", "MEDIA_DELIVERY"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *const env[] = {cases[i][0], cases[i][1], NULL};
        struct config cfg;
        char err[256] = "";
        assert_int_equal(load(&cfg, env, NULL, err), -1);
        assert_non_null(strstr(err, cases[i][2]));
    }
}

static void test_preset_accepts_every_libx264_preset(void **state)
{
    (void)state;
    static const char *const presets[] = {"ultrafast", "superfast", "veryfast", "faster",
                                          "fast",      "medium",    "slow",     "slower",
                                          "veryslow",  "placebo"};
    for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++) {
        const char *const env[] = {"PRESET", presets[i], NULL};
        struct config cfg;
        char err[256] = "";
        assert_int_equal(load(&cfg, env, NULL, err), 0);
        assert_string_equal(cfg.preset, presets[i]);
        config_cleanup(&cfg);
    }
}

static void test_public_base_url_trailing_slash(void **state)
{
    (void)state;
    const char *const env[] = {"PUBLIC_BASE_URL", "https://videos.example.com//", NULL};
    struct config cfg;
    char err[256] = "";
    assert_int_equal(load(&cfg, env, NULL, err), 0);
    assert_string_equal(cfg.public_base_url, "https://videos.example.com");
    config_cleanup(&cfg);
}

static void test_print_redacts_secrets(void **state)
{
    (void)state;
    const char *const env[] = {"CELERY_BROKER_URL",
                               "redis://:hunter2@db:6379/0",
                               "SIGNING_KEY",
                               "topsecret",
                               "API_KEYS",
                               "k1,k2",
                               "WEBHOOK_SECRET",
                               "whsec-42",
                               NULL};
    struct config cfg;
    char err[256] = "";
    assert_int_equal(load(&cfg, env, NULL, err), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    config_print(&cfg, out);
    fclose(out);
    assert_null(strstr(text, "hunter2"));
    assert_null(strstr(text, "topsecret"));
    assert_null(strstr(text, "k1,k2"));
    assert_null(strstr(text, "whsec-42"));
    assert_non_null(strstr(text, "WEBHOOK_SECRET=(set, redacted)"));
    assert_non_null(strstr(text, "CELERY_BROKER_URL=redis://***@db:6379/0"));
    assert_non_null(strstr(text, "PORT=8000"));
    free(text);
    config_cleanup(&cfg);
}

/* kombu's sentinel lists: each entry redacted; a master name is required. */
static void test_sentinel_urls(void **state)
{
    (void)state;
    const char *const unnamed[] = {"CELERY_BACKEND_URL", "sentinel://h:26379", NULL};
    struct config cfg;
    char err[256] = "";
    assert_int_equal(load(&cfg, unnamed, NULL, err), -1);
    assert_string_equal(err, "CELERY_BACKEND_MASTER_NAME: a sentinel:// URL needs "
                             "CELERY_BACKEND_MASTER_NAME");
    const char *const env[] = {"CELERY_BROKER_URL",
                               "sentinel://:hunter2@a:1/2;sentinel://b:2;:hunter2@c",
                               "CELERY_BROKER_MASTER_NAME", "mymaster", NULL};
    assert_int_equal(load(&cfg, env, NULL, err), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    config_print(&cfg, out);
    fclose(out);
    assert_null(strstr(text, "hunter2"));
    assert_non_null(strstr(text, "CELERY_BROKER_URL=sentinel://***@a:1/2;sentinel://b:2;***@c\t"));
    assert_non_null(strstr(text, "CELERY_BROKER_MASTER_NAME=mymaster\t"));
    free(text);
    config_cleanup(&cfg);
}

struct collected {
    char text[512];
};

static void collect_pair(const char *key, const char *value, void *ctx)
{
    struct collected *c = ctx;
    size_t n = strlen(c->text);
    snprintf(c->text + n, sizeof(c->text) - n, "[%s=%s]", key, value);
}

static void test_dotenv_parse(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"A=1\nB=2", "[A=1][B=2]"},
        {"# comment\n\nA = 1 # trailing\n", "[A=1]"},
        {"export A=x\n", "[A=x]"},
        {"A=\"quoted # not comment\"\n", "[A=quoted # not comment]"},
        {"A='single'\r\n", "[A=single]"},
        {"A=\"unterminated\n", ""},
        {"=novalue\nnoequals\n", ""},
        {"A-B=1\n", ""},
        {"A=\n", "[A=]"},
        {"A=url#frag\n", "[A=url#frag]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct collected c = {""};
        dotenv_parse(cases[i].in, strlen(cases[i].in), collect_pair, &c);
        assert_string_equal(c.text, cases[i].out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_env_wins_over_dotenv),
        cmocka_unit_test(test_invalid_values_name_the_option),
        cmocka_unit_test(test_preset_accepts_every_libx264_preset),
        cmocka_unit_test(test_public_base_url_trailing_slash),
        cmocka_unit_test(test_print_redacts_secrets),
        cmocka_unit_test(test_sentinel_urls),
        cmocka_unit_test(test_dotenv_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
