/*
 * One process_video task: fetch, process, publish, report; in-slot retries of transient failures
 * with backoff (RETRY records), one hard time limit over all attempts, cleanup of scratch files
 * left by an earlier delivery whose worker died, no re-run of a task whose result already exists,
 * and worker_lost for a task that killed TASK_MAX_DELIVERIES workers. Every state is written
 * through the delivery's fence, so a delivery that lost its lease writes nothing.
 */
#include "worker/task.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "analysis/analysis.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "core/media_url.h"
#include "media/media.h"
#include "metrics/metrics.h"
#include "queue/queue.h"
#include "store/store.h"
#include "util/os.h"
#include "util/uuid.h"
#include "webhook/webhook.h"

#define METADATA_SCHEMA 1
#define PROGRESS_INTERVAL_MS 500

struct task_run {
    const struct task_env *env;
    const struct claimed_task *t;
    const char *video_id; /* the video is named after the task, so a re-run replaces nothing */
    char *work_dir;
    int work_lock; /* held while work_dir is in use (store_work_dir_new) */
    char stage[32];
    int64_t deadline_ms; /* TASK_TIME_LIMIT_S from the start of the run, over all attempts */
    int64_t last_report_ms;
    char submitted_at[32];
    atomic_uint children; /* ffmpeg/ffprobe children started by the current attempt */
};

/* Writes PROGRESS at stage changes and at most every PROGRESS_INTERVAL_MS otherwise. */
static void task_progress(const char *stage, double progress, void *ctx)
{
    struct task_run *run = ctx;
    int64_t now = os_monotonic_ms();
    bool new_stage = strcmp(stage, run->stage) != 0;
    if (!new_stage && now - run->last_report_ms < PROGRESS_INTERVAL_MS)
        return;
    snprintf(run->stage, sizeof(run->stage), "%s", stage);
    run->last_report_ms = now;
    json_t *meta = json_pack("{s:s, s:f}", "stage", stage, "progress", progress);
    queue_task_set_state(run->env->queue, run->t, "PROGRESS", meta);
    json_decref(meta);
}

/* A stage ended (started at t0_ms): its time goes to the metrics and to one log line. */
static void stage_done(const struct task_run *run, enum metrics_stage stage, int64_t t0_ms,
                       enum ia_err err)
{
    int64_t ms = os_monotonic_ms() - t0_ms;
    metrics_task_stage(stage, ms);
    log_msg(LOG_INFO, "worker", "task=%s stage=%s ms=%lld result=%s", run->t->task_id,
            metrics_stage_name(stage), (long long)ms, ia_err_code(err));
}

static void media_opts_init(struct media_opts *o, struct task_run *run)
{
    const struct config *cfg = run->env->cfg;
    memset(o, 0, sizeof(*o));
    o->max_download_bytes = (uint64_t)cfg->max_download_bytes;
    o->connect_timeout_s = (long)cfg->fetch_connect_timeout_s;
    o->fetch_timeout_s = (long)cfg->fetch_timeout_s;
    o->low_speed_bytes_s = (long)cfg->fetch_low_speed_bytes_s;
    o->low_speed_time_s = (long)cfg->fetch_low_speed_time_s;
    o->policy = run->env->policy;
    o->max_duration_s = (long)cfg->max_duration_s;
    o->max_height = (int)cfg->max_height;
    o->preset = cfg->preset;
    o->crf = (int)cfg->crf;
    o->deadline_ms = run->deadline_ms;
    o->cancel = run->env->cancel;
    o->progress = task_progress;
    o->progress_ctx = run;
    o->children = &run->children;
}

static json_t *fetch_facts(const char *url, const struct fetch_result *fr)
{
    return json_pack("{s:s, s:s?, s:I, s:s?, s:I, s:s}", "url", url, "final_url", fr->final_url,
                     "http_status", (json_int_t)fr->http_status, "content_type",
                     fr->content_type, "bytes", (json_int_t)fr->bytes, "sha256", fr->sha256);
}

/* Builds the metadata document from the media report and the fetch facts (steals both). */
static json_t *metadata_build(struct task_run *run, json_t *report, json_t *fetched)
{
    char done[40];
    log_iso_now(done, sizeof(done));
    json_t *source = json_object_get(report, "source");
    if (!json_is_object(source)) {
        source = json_object();
        json_object_set_new(report, "source", source);
    }
    json_object_update(source, fetched);
    json_decref(fetched);
    json_t *doc = json_pack("{s:i, s:s, s:s, s:s, s:s}", "schema", METADATA_SCHEMA, "video_id",
                            run->video_id, "task_id", run->t->task_id, "started_at",
                            run->submitted_at, "completed_at", done);
    json_object_update(doc, report);
    json_decref(report);
    return doc;
}

static enum ia_err write_json_file(const struct store *store, const char *path, json_t *doc)
{
    size_t flags = JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10);
    if (json_dump_file(doc, path, flags) == 0)
        return IA_OK;
    unlink(path);
    return store_free_bytes(store) < 65536 ? IA_ERR_STORAGE_FULL : IA_ERR_IO;
}

struct outputs {
    char *input, *mp4, *jpg, *json;
};

static void outputs_init(struct outputs *o, const char *dir)
{
    o->input = xasprintf("%s/input", dir);
    o->mp4 = xasprintf("%s/video.mp4", dir);
    o->jpg = xasprintf("%s/poster.jpg", dir);
    o->json = xasprintf("%s/metadata.json", dir);
}

static void outputs_cleanup(struct outputs *o)
{
    free(o->input);
    free(o->mp4);
    free(o->jpg);
    free(o->json);
}

/* Publishes the poster and video, then the metadata last: its presence means complete. */
static enum ia_err publish_all(struct task_run *run, const struct outputs *out)
{
    const struct store *store = run->env->store;
    task_progress("publishing", 0.0, run);
    enum ia_err err = IA_OK;
    if (access(out->jpg, F_OK) == 0)
        err = store_publish(store, out->jpg, run->video_id, "jpg");
    if (!err)
        err = store_publish(store, out->mp4, run->video_id, "mp4");
    if (!err)
        err = store_publish(store, out->json, run->video_id, "json");
    return err;
}

/* True unless the request asked for no analysis, or ANALYSIS=0 and it did not ask for one. */
static bool analysis_wanted(const struct task_run *run)
{
    const json_t *flag = json_object_get(run->t->kwargs, "analysis");
    return json_is_boolean(flag) ? json_is_true(flag) : run->env->cfg->analysis != 0;
}

/*
 * Adds the analysis to the report and lists its files in *aout. Only a time limit or a stop fails
 * the task: a video that could not be analysed is still worth publishing, with the reason recorded.
 */
static enum ia_err task_analyse(struct task_run *run, const struct media_opts *opts,
                                const char *mp4, json_t *report, struct analysis_outputs *aout)
{
    char detail[256] = "";
    if (!analysis_wanted(run)) {
        json_object_set_new(report, "analysis", json_pack("{s:b}", "skipped", 1));
        return IA_OK;
    }
    task_progress("analysing", 0.0, run);
    struct analysis_opts ao;
    analysis_opts_from_config(&ao, run->env->cfg);
    ao.work_dir = run->work_dir;
    int64_t t0 = os_monotonic_ms();
    enum ia_err err = analysis_run(&ao, opts, mp4, report, aout, detail, sizeof(detail));
    stage_done(run, METRICS_STAGE_ANALYSE, t0, err);
    if (err == IA_ERR_TIMEOUT)
        return err;
    if (err) {
        log_msg(LOG_WARN, "worker", "task=%s analysis failed: %s", run->t->task_id, detail);
        json_object_set_new(report, "analysis", json_pack("{s:s}", "error", ia_err_code(err)));
    }
    json_t *timings = json_object_get(json_object_get(report, "processing"), "timings_ms");
    if (json_is_object(timings))
        json_object_set_new(timings, "analysis", json_integer(os_monotonic_ms() - t0));
    return IA_OK;
}

/* Publishes the analysis files (events, review rendition, evidence) before the metadata. */
static enum ia_err publish_analysis(struct task_run *run, const struct analysis_outputs *a)
{
    const struct store *store = run->env->store;
    enum ia_err err = IA_OK;
    for (size_t i = 0; i < a->nevidence && !err; i++) {
        char ext[48];
        snprintf(ext, sizeof ext, "evidence-%s.jpg", a->evidence[i].id);
        err = store_publish(store, a->evidence[i].path, run->video_id, ext);
    }
    if (!err && a->vtt_path)
        err = store_publish(store, a->vtt_path, run->video_id, "vtt");
    if (!err && a->review_path)
        err = store_publish(store, a->review_path, run->video_id, "review.mp4");
    return err;
}

/*
 * The input file and its description: a staged upload ("upload:<id>") is used where it lies,
 * anything else is fetched into the scratch directory.
 */
static enum ia_err task_source(struct task_run *run, const struct media_opts *opts,
                               const char *url, struct outputs *out, struct fetch_result *fetched,
                               json_t **facts, char *detail, size_t len)
{
    const char *upload_id = queue_upload_id(url);
    if (upload_id) {
        char *path = NULL;
        enum ia_err err =
            task_upload_source(run->env, upload_id, out->input, &path, facts, detail, len);
        if (!err) {
            free(out->input);
            out->input = path;
        }
        return err;
    }
    /* No PROGRESS before the fetch reports one: until the origin answers, the task is STARTED. */
    enum ia_err err = media_fetch_to_file(opts, url, out->input, fetched, detail, len);
    if (!err)
        *facts = fetch_facts(url, fetched);
    return err;
}

/* Fetch, process, analyse, describe and publish, in the run's scratch directory. */
static enum ia_err task_pipeline(struct task_run *run, const char *url, char *detail, size_t len)
{
    struct media_opts opts;
    struct outputs out;
    struct fetch_result fetched;
    json_t *report = NULL;
    struct analysis_outputs aout = {0};
    memset(&fetched, 0, sizeof(fetched));
    atomic_store(&run->children, 0);
    media_opts_init(&opts, run);
    outputs_init(&out, run->work_dir);
    json_t *facts = NULL;
    int64_t t0 = os_monotonic_ms();
    enum ia_err err = task_source(run, &opts, url, &out, &fetched, &facts, detail, len);
    stage_done(run, METRICS_STAGE_FETCH, t0, err);
    if (!err) {
        t0 = os_monotonic_ms();
        err = media_process(&opts, out.input, out.mp4, out.jpg, &report, detail, len);
        stage_done(run, METRICS_STAGE_PROCESS, t0, err);
    }
    if (!err)
        err = task_analyse(run, &opts, out.mp4, report, &aout);
    if (!err) {
        t0 = os_monotonic_ms();
        json_t *doc = metadata_build(run, report, facts); /* steals both */
        report = NULL;
        facts = NULL;
        err = write_json_file(run->env->store, out.json, doc);
        json_decref(doc);
        if (!err)
            err = publish_analysis(run, &aout);
        if (!err)
            err = publish_all(run, &out);
        stage_done(run, METRICS_STAGE_PUBLISH, t0, err);
    }
    log_msg(LOG_INFO, "worker", "task=%s children=%u", run->t->task_id,
            atomic_load(&run->children));
    analysis_outputs_cleanup(&aout);
    json_decref(report); /* an analysis cut off (deadline, shutdown) leaves it here */
    json_decref(facts);
    fetch_result_cleanup(&fetched);
    outputs_cleanup(&out);
    return err;
}

static json_t *success_result(const struct task_run *run)
{
    const struct config *cfg = run->env->cfg;
    const char *id = run->video_id;
    char *video = media_url_public(cfg, "/stream/", id, "");
    char *download = media_url_public(cfg, "/download/", id, "");
    char *metadata = media_url_public(cfg, "/metadata/", id, "");
    json_t *r = json_pack("{s:s, s:s, s:s, s:s}", "video_id", id, "video_url", video,
                          "download_video_url", download, "metadata_url", metadata);
    free(video);
    free(download);
    free(metadata);
    return r;
}

/*
 * True when the video was deleted (DELETE /videos, retention: queue_delete.c): then its files
 * are removed, including any this delivery published, and the task must write nothing more.
 * Checked before a task starts and after it publishes, so that whichever of the deletion and
 * the publication comes second removes the files.
 */
static bool task_deleted(const struct task_run *run)
{
    bool deleted = false;
    if (queue_video_deleted(run->env->queue, run->video_id, &deleted) || !deleted)
        return false;
    metrics_task_outcome(METRICS_TASK_DELETED, IA_OK);
    struct store_video_id v;
    snprintf(v.id, sizeof(v.id), "%s", run->video_id);
    store_remove_videos(run->env->store, &v, 1, NULL);
    log_msg(LOG_INFO, "worker", "task=%s video deleted; dropping the task", run->t->task_id);
    return true;
}

/* After a final state could not be written: the task goes back (or to its new holder). */
static enum task_outcome task_unsettled(const struct task_run *run, enum ia_err err)
{
    if (err == IA_ERR_NOT_FOUND)
        log_msg(LOG_WARN, "worker", "task=%s another delivery holds it now; no state written",
                run->t->task_id);
    metrics_task_outcome(METRICS_TASK_RETURNED, err);
    return TASK_OUTCOME_REQUEUE;
}

/* The alert level of the published analysis (summary.final_level), or NULL; a heap string. */
static char *task_alert_level(const struct task_run *run)
{
    char *path = store_path(run->env->store, run->video_id, "json");
    json_t *doc = json_load_file(path, 0, NULL);
    free(path);
    const char *level = json_string_value(json_object_get(
        json_object_get(json_object_get(doc, "analysis"), "summary"), "final_level"));
    char *out = level ? xstrdup(level) : NULL;
    json_decref(doc);
    return out;
}

/*
 * The webhook event of the final state about to be written (result for a success, else code and
 * message), when the task carries a callback URL and WEBHOOK_SECRET is set: fills ev and returns
 * its body (the caller frees it), or returns NULL for no event.
 */
static char *task_event(const struct task_run *run, const json_t *result, const char *code,
                        const char *message, struct queue_webhook_event *ev, char *event_id)
{
    memset(ev, 0, sizeof(*ev));
    const char *url = webhook_task_callback(run->t->kwargs);
    if (!url)
        return NULL;
    if (!run->env->cfg->webhook_secret[0]) {
        log_msg(LOG_WARN, "worker",
                "task=%s has a callback_url but WEBHOOK_SECRET is not set: no event",
                run->t->task_id);
        return NULL;
    }
    uuid_v4_new(event_id);
    char *level = result ? task_alert_level(run) : NULL;
    char *body = webhook_event_body(event_id, run->t->task_id, result ? "success" : "failed",
                                    result, level, code, message, (long long)time(NULL));
    free(level);
    ev->event_id = event_id;
    ev->url = url;
    ev->body = body;
    return body;
}

static enum task_outcome task_succeed(struct task_run *run)
{
    if (task_deleted(run))
        return TASK_OUTCOME_ACK;
    json_t *result = success_result(run);
    struct queue_webhook_event ev;
    char event_id[UUID_STR_LEN + 1];
    char *body = task_event(run, result, NULL, NULL, &ev, event_id);
    enum ia_err err = queue_task_succeed(run->env->queue, run->t, result, body ? &ev : NULL);
    free(body);
    json_decref(result);
    if (err) /* the files are there; the next run only writes SUCCESS */
        return task_unsettled(run, err);
    log_msg(LOG_INFO, "worker", "task=%s success", run->t->task_id);
    metrics_task_outcome(METRICS_TASK_SUCCESS, IA_OK);
    return TASK_OUTCOME_ACK;
}

static enum task_outcome task_fail(struct task_run *run, enum ia_err err, const char *detail)
{
    char escaped[512];
    log_escape(escaped, sizeof(escaped), detail, strlen(detail));
    log_msg(LOG_WARN, "worker", "task=%s failed code=%s detail=\"%s\"", run->t->task_id,
            ia_err_code(err), escaped);
    struct queue_webhook_event ev;
    char event_id[UUID_STR_LEN + 1];
    char *body = task_event(run, NULL, ia_err_code(err), ia_strerror(err), &ev, event_id);
    enum ia_err werr = queue_task_fail(run->env->queue, run->t, ia_err_code(err), ia_strerror(err),
                                       body ? &ev : NULL);
    free(body);
    if (werr)
        return task_unsettled(run, werr);
    metrics_task_outcome(METRICS_TASK_FAILURE, err);
    return TASK_OUTCOME_ACK;
}

/* Sleeps up to seconds, waking early on cancel; false when cancelled. */
static bool backoff_sleep(const struct task_env *env, long long seconds)
{
    for (long long i = 0; i < seconds * 10; i++) {
        if (atomic_load(env->cancel) || atomic_load(env->draining))
            return false;
        usleep(100 * 1000);
    }
    return true;
}

/* One attempt in a fresh scratch directory. */
static enum ia_err task_attempt(struct task_run *run, const char *url, char *detail, size_t len)
{
    run->work_dir =
        store_work_dir_new(run->env->store, run->t->task_id, &run->work_lock, detail, len);
    if (!run->work_dir)
        return IA_ERR_IO;
    enum ia_err err = task_pipeline(run, url, detail, len);
    store_work_dir_remove(run->work_dir, run->work_lock);
    free(run->work_dir);
    run->work_dir = NULL;
    return err;
}

/* The delay before retry number `retry` (1, 2, ...): TASK_RETRY_BACKOFF_S doubled each time. */
static long long retry_delay_s(const struct config *cfg, int retry)
{
    int shift = retry - 1 < 16 ? retry - 1 : 16;
    return cfg->task_retry_backoff_s << shift;
}

/*
 * Attempts until success, a permanent failure, TASK_MAX_RETRIES retries (counting those of
 * earlier deliveries, from the message headers) or the time limit. The slot sleeps between
 * attempts while the heartbeat keeps the lease, so the task is never held only in memory.
 */
static enum task_outcome task_process(struct task_run *run, const char *url)
{
    const struct config *cfg = run->env->cfg;
    char detail[512];
    for (int retry = run->t->retries + 1;; retry++) {
        detail[0] = '\0';
        enum ia_err err = task_attempt(run, url, detail, sizeof(detail));
        if (err == IA_OK)
            return task_succeed(run);
        if (atomic_load(run->env->cancel)) {
            log_msg(LOG_INFO, "worker", "task=%s interrupted; returning it", run->t->task_id);
            metrics_task_outcome(METRICS_TASK_RETURNED, IA_OK);
            return TASK_OUTCOME_REQUEUE;
        }
        long long delay = retry_delay_s(cfg, retry);
        if (!ia_err_is_transient(err) || retry > cfg->task_max_retries ||
            os_monotonic_ms() + delay * 1000 >= run->deadline_ms)
            return task_fail(run, err, detail);
        log_msg(LOG_INFO, "worker", "task=%s transient %s; retry %d in %lld s", run->t->task_id,
                ia_err_code(err), retry, delay);
        queue_task_set_retry(run->env->queue, run->t, ia_err_code(err), ia_strerror(err));
        metrics_task_outcome(METRICS_TASK_RETRY, err);
        if (!backoff_sleep(run->env, delay)) {
            metrics_task_outcome(METRICS_TASK_RETURNED, IA_OK);
            return TASK_OUTCOME_REQUEUE;
        }
    }
}

/* The video URL from the message, or NULL when the message is not a process_video call. */
static const char *task_video_url(const struct claimed_task *t)
{
    if (!t->task_name || strcmp(t->task_name, QUEUE_TASK_NAME) != 0)
        return NULL;
    return json_string_value(json_array_get(t->args, 0));
}

/* True when the task's record holds a final state already (a re-delivery after it). */
static bool task_final(const char *status)
{
    return !strcmp(status, "SUCCESS") || !strcmp(status, "FAILURE") || !strcmp(status, "REVOKED");
}

/* Runs the task: STARTED, then the stages (or only SUCCESS when its files are there). */
static enum task_outcome task_start(struct task_run *run, const char *url)
{
    const struct task_env *env = run->env;
    const struct claimed_task *t = run->t;
    if (store_exists(env->store, run->video_id, "json"))
        return task_succeed(run);
    run->deadline_ms = os_monotonic_ms() + env->cfg->task_time_limit_s * 1000;
    log_msg(LOG_INFO, "worker", "task=%s started (delivery %d, retries=%d)", t->task_id,
            t->deliveries, t->retries);
    json_t *meta = json_pack("{s:s, s:f, s:i}", "stage", "starting", "progress", 0.0, "pid",
                             (int)getpid());
    queue_task_set_state(env->queue, t, "STARTED", meta);
    json_decref(meta);
    return task_process(run, url);
}

enum task_outcome task_run(const struct task_env *env, const struct claimed_task *t)
{
    struct task_run run = {.env = env, .t = t, .video_id = t->task_id, .work_lock = -1};
    log_iso_now(run.submitted_at, sizeof(run.submitted_at));
    char status[16];
    if (queue_get_celery_status(env->queue, t->task_id, status, sizeof(status)))
        return TASK_OUTCOME_REQUEUE;
    if (task_final(status)) {
        log_msg(LOG_INFO, "worker", "task=%s already %s; acknowledging", t->task_id, status);
        return TASK_OUTCOME_ACK;
    }
    const char *url = task_video_url(t);
    if (!uuid_is_canonical(t->task_id, strlen(t->task_id)) || !url)
        return task_fail(&run, IA_ERR_INVALID, "not a process_video(url) call with a UUID id");
    store_work_dir_remove_task(env->store, t->task_id); /* of deliveries whose worker died */
    enum task_outcome outcome;
    if (task_deleted(&run)) {
        outcome = TASK_OUTCOME_ACK;
    } else if (t->deliveries > env->cfg->task_max_deliveries) { /* it keeps killing its workers */
        char detail[96];
        snprintf(detail, sizeof(detail), "delivery %d: the %d before it each lost their worker",
                 t->deliveries, t->deliveries - 1);
        outcome = task_fail(&run, IA_ERR_WORKER_LOST, detail);
    } else {
        outcome = task_start(&run, url);
    }
    const char *upload_id = queue_upload_id(url);
    if (upload_id && outcome == TASK_OUTCOME_ACK) /* over for good: the staged file is spent */
        task_upload_release(env, upload_id, t->task_id);
    return outcome;
}
