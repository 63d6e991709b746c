/* The option table: every setting, read from the environment and ./.env, validated at start. */
#ifndef IA_CORE_CONFIG_H
#define IA_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct config {
    char *host;
    long long port;
    char *processed_dir;
    char *public_base_url;
    char *broker_url;
    char *backend_url;
    char *broker_master_name;
    char *backend_master_name;
    long long worker_concurrency;
    long long serve_threads;
    long long offload_threads;
    long long worker_metrics_port;
    char *worker_metrics_addr;
    char *fetch_allow_cidrs;
    char *allowed_ports;
    long long max_download_bytes;
    long long fetch_connect_timeout_s;
    long long fetch_timeout_s;
    long long task_lease_s;
    long long task_time_limit_s;
    long long task_max_retries;
    long long task_retry_backoff_s;
    long long task_lost_after_s;
    long long task_max_deliveries;
    long long worker_shutdown_grace_s;
    long long result_ttl_s;
    long long max_queued;
    char *preset;
    long long crf;
    long long max_height;
    long long max_duration_s;
    char *log_level;
    char *api_keys;
    char *signing_key;
    bool signing_key_derived; /* SIGNING_KEY was empty: derived from API_KEYS (see config.c) */
    long long signed_url_ttl_s;
    long long max_connections;
    long long body_budget_bytes;
    long long request_timeout_s;
    long long idle_timeout_s;
    long long rate_limit;
    long long fetch_low_speed_bytes_s;
    long long fetch_low_speed_time_s;
    long long upload_simple_max;
    long long upload_expire_s;
    char *models_dir;
    long long analysis;
    long long analysis_fps;
    long long analysis_width;
    long long analysis_threads;
    long long analysis_objects_every_s;
    long long analysis_identity_every_s;
    long long face_min_score_pct;
    long long face_absent_min_s;
    long long multiple_faces_min_s;
    long long look_away_yaw_deg;
    long long look_away_pitch_deg;
    long long look_away_min_s;
    long long gaze_away_pct;
    long long object_min_score_pct;
    long long face_match_min_pct;
    long long silence_min_s;
    long long alert_suspicious_score;
    long long alert_cheating_score;
    long long review_video;
    long long retention_days;
    long long retention_sweep_s;
    char *storage_url;
    char *media_delivery; /* "redirect" or "proxy": media routes with STORAGE_URL set */
    char *aws_endpoint_url_s3;
    char *aws_endpoint_url;
    char *aws_region;
    char *aws_default_region;
    char *aws_access_key_id;
    char *aws_secret_access_key;
    char *aws_session_token;
    long long s3_force_path_style;
    char *s3_allow_cidrs;
    long long s3_connect_timeout_s;
    long long s3_timeout_s;
    long long s3_multipart_threshold;
    long long s3_part_size;
    long long s3_list_page;
    char *webhook_secret;
    long long webhook_retry_base_s;
    long long webhook_retry_max_s;
    long long webhook_max_age_s;
    long long webhook_timeout_s;
};

/* A lookup of a name in an environment: returns NULL when unset. */
typedef const char *(*config_getenv_fn)(const char *name, void *ctx);

/*
 * Fills cfg from getenv(), then from the .env file at dotenv_path (may be NULL or missing),
 * then from the defaults. Returns 0, or -1 with a message naming the option in err.
 */
int config_load(struct config *cfg, const char *dotenv_path, char *err, size_t errlen);
/* The same, with an explicit environment (for tests). */
int config_load_from(struct config *cfg, config_getenv_fn env, void *env_ctx,
                     const char *dotenv_text, char *err, size_t errlen);
/* Prints NAME=value lines with secrets redacted. */
void config_print(const struct config *cfg, FILE *out);
void config_cleanup(struct config *cfg);

/*
 * Parses .env text: KEY=VALUE lines, '#' comments, optional "export ", single or double quotes.
 * Calls fn for each well-formed pair; malformed lines are skipped. Returns the number of pairs.
 */
typedef void (*dotenv_pair_cb)(const char *key, const char *value, void *ctx);
int dotenv_parse(const char *text, size_t len, dotenv_pair_cb fn, void *ctx);

#endif
