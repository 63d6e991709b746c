/* Tests for store/store_delete.c: removing every file of a video, and listing old videos. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/store.h"

#define A "aaaaaaaa-1111-4111-8111-111111111111"
#define B "bbbbbbbb-2222-4222-8222-222222222222"
#define C "cccccccc-3333-4333-8333-333333333333"
#define DAY (24 * 3600)

static const char *const a_exts[] = {
    "json", "mp4", "jpg", "vtt", "review.mp4", "evidence-e1.jpg", "evidence-e12.jpg"};
#define N_A_EXTS (sizeof(a_exts) / sizeof(a_exts[0]))

static int setup(void **state)
{
    char tmpl[] = "/tmp/ia-delete-XXXXXX";
    char *dir = mkdtemp(tmpl);
    char err[128];
    assert_non_null(dir);
    log_set_level(LOG_ERROR);
    *state = store_new(dir, err, sizeof(err));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    struct store *s = *state;
    char *cmd = xasprintf("rm -rf '%s'", store_dir(s));
    int rc = system(cmd);
    free(cmd);
    store_free(s);
    return rc;
}

/* Creates DIR/name, last changed age_s seconds ago. */
static void touch(const struct store *s, const char *name, long age_s)
{
    char *path = xasprintf("%s/%s", store_dir(s), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    struct timespec times[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
    assert_int_equal(futimens(fd, times), 0);
    close(fd);
    free(path);
}

static void touch_video(const struct store *s, const char *id, const char *ext, long age_s)
{
    char name[128];
    snprintf(name, sizeof(name), "processed_%s.%s", id, ext);
    touch(s, name, age_s);
}

static bool exists(const struct store *s, const char *name)
{
    char *path = xasprintf("%s/%s", store_dir(s), name);
    struct stat st;
    bool ok = lstat(path, &st) == 0;
    free(path);
    return ok;
}

static void test_remove_every_file_of_one_video(void **state)
{
    struct store *s = *state;
    for (size_t i = 0; i < N_A_EXTS; i++)
        touch_video(s, A, a_exts[i], 0);
    touch_video(s, B, "json", 0);
    touch_video(s, B, "mp4", 0);
    touch(s, "processed_" A "x.json", 0); /* a longer name that starts like A's: not A's */
    touch(s, "processed_not-a-uuid.json", 0);
    touch(s, "notes.txt", 0);
    struct store_video_id v = {A};
    size_t removed = 99;
    assert_int_equal(store_remove_videos(s, &v, 1, &removed), IA_OK);
    assert_int_equal(removed, N_A_EXTS);
    for (size_t i = 0; i < N_A_EXTS; i++)
        assert_false(store_exists(s, A, a_exts[i]));
    assert_true(store_exists(s, B, "json"));
    assert_true(store_exists(s, B, "mp4"));
    assert_true(exists(s, "processed_" A "x.json"));
    assert_true(exists(s, "processed_not-a-uuid.json"));
    assert_true(exists(s, "notes.txt"));
    assert_true(exists(s, ".work"));
    /* Again: nothing left, and that is not an error. */
    assert_int_equal(store_remove_videos(s, &v, 1, &removed), IA_OK);
    assert_int_equal(removed, 0);
}

static void test_remove_several_videos_in_one_pass(void **state)
{
    struct store *s = *state;
    touch_video(s, A, "mp4", 0); /* no metadata: an unfinished video still goes */
    touch_video(s, B, "json", 0);
    touch_video(s, B, "evidence-e3.jpg", 0);
    touch_video(s, C, "json", 0);
    struct store_video_id ids[2] = {{A}, {B}};
    size_t removed[2];
    assert_int_equal(store_remove_videos(s, ids, 2, removed), IA_OK);
    assert_int_equal(removed[0], 1);
    assert_int_equal(removed[1], 2);
    assert_false(store_exists(s, B, "evidence-e3.jpg"));
    assert_true(store_exists(s, C, "json"));
    assert_int_equal(store_remove_videos(s, ids, 0, NULL), IA_OK);
    /* None to remove, as retention asks when nothing is old enough: no list at all (the
     * sanitizer build once caught a bsearch of NULL here), and every file stays. */
    assert_int_equal(store_remove_videos(s, NULL, 0, NULL), IA_OK);
    assert_true(store_exists(s, C, "json"));
}

static void test_list_older_takes_complete_videos_by_metadata_age(void **state)
{
    struct store *s = *state;
    touch_video(s, C, "json", 3 * DAY);
    touch_video(s, A, "json", 2 * DAY);
    touch_video(s, A, "mp4", 0);  /* a video's age is its metadata's */
    touch_video(s, B, "json", 0); /* too recent */
    touch_video(s, B, "mp4", 5 * DAY);
    touch(s, "processed_not-a-uuid.json", 5 * DAY);
    struct store_video_id *ids = NULL;
    size_t n = 0;
    assert_int_equal(store_list_older(s, time(NULL) - DAY, 10, &ids, &n), IA_OK);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0].id, A); /* sorted, as store_remove_videos() wants them */
    assert_string_equal(ids[1].id, C);
    free(ids);
    assert_int_equal(store_list_older(s, time(NULL) - DAY, 1, &ids, &n), IA_OK);
    assert_int_equal(n, 1);
    free(ids);
    assert_int_equal(store_list_older(s, time(NULL) - 4 * DAY, 10, &ids, &n), IA_OK);
    assert_int_equal(n, 0);
    assert_null(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_remove_every_file_of_one_video, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_several_videos_in_one_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_older_takes_complete_videos_by_metadata_age,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
