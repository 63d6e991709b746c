/* Tests for the upload staging area of store/store_upload.c, in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "store/store.h"
#include "store/store_upload.h"
#include "util/crypto.h"

#define ID "11111111-2222-4333-8444-555555555555"

/* fdatasync is wrapped (-Wl,--wrap=fdatasync in CMakeLists.txt): the test counts the syncs. */
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
static int syncs;

int __wrap_fdatasync(int fd)
{
    syncs++;
    return __real_fdatasync(fd);
}

static int setup(void **state)
{
    char tmpl[] = "/tmp/ia-upload-XXXXXX";
    char *dir = mkdtemp(tmpl);
    char err[128];
    assert_non_null(dir);
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

static void append(struct store *s, uint64_t offset, const char *bytes, enum ia_err want)
{
    struct store_upload *u;
    enum ia_err err = store_upload_begin(s, NULL, ID, offset, strlen(bytes), &u);
    assert_int_equal(err, want);
    if (err)
        return;
    assert_int_equal(write(store_upload_fd(u), bytes, strlen(bytes)), (ssize_t)strlen(bytes));
    assert_int_equal(store_upload_commit(u, true, NULL), IA_OK);
    store_upload_close(u);
}

static void test_create_append_complete(void **state)
{
    struct store *s = *state;
    struct store_upload_info info;
    assert_int_equal(store_upload_stat(s, NULL, ID, &info), IA_ERR_NOT_FOUND);
    assert_int_equal(store_upload_create(s, NULL, ID, 10, "filename YS5tcDQ="), IA_OK);
    assert_int_equal(store_upload_create(s, NULL, ID, 10, NULL), IA_ERR_INVALID);
    assert_int_equal(store_upload_stat(s, NULL, ID, &info), IA_OK);
    assert_true(info.length == 10 && info.offset == 0 && info.task_id[0] == '\0');
    assert_string_equal(info.metadata, "filename YS5tcDQ=");
    assert_null(store_upload_data_path(s, ID));
    append(s, 0, "abcd", IA_OK);
    append(s, 0, "abcd", IA_ERR_INVALID);         /* wrong offset */
    append(s, 4, "0123456789", IA_ERR_TOO_LARGE); /* past the length */
    append(s, 4, "efghij", IA_OK);
    assert_int_equal(store_upload_stat(s, NULL, ID, &info), IA_OK);
    assert_true(info.offset == 10);
    char *path = store_upload_data_path(s, ID);
    assert_non_null(path);
    uint64_t bytes;
    char hex[65];
    assert_true(crypto_sha256_file(path, &bytes, hex));
    assert_true(bytes == 10);
    /* sha256("abcdefghij") */
    assert_string_equal(hex, "72399361da6a7754fec986dca5b7cbaf1c810a28ded4abaf56b2106d06cb78b0");
    free(path);
    store_upload_remove(s, NULL, ID);
    assert_int_equal(store_upload_stat(s, NULL, ID, &info), IA_ERR_NOT_FOUND);
}

/* One sync per upload, by the append that completes it; the offset is the file's size. */
static void test_synced_once_when_complete_and_offset_is_on_disk(void **state)
{
    struct store *s = *state;
    struct store_upload_info info;
    assert_int_equal(store_upload_create(s, NULL, ID, 10, NULL), IA_OK);
    syncs = 0;
    append(s, 0, "abcd", IA_OK);
    append(s, 4, "ef", IA_OK);
    assert_int_equal(syncs, 0);
    /* A crash of the machine lost the last append: the offset is what the file kept. */
    char *bin = xasprintf("%s/.uploads/%s.bin", store_dir(s), ID);
    assert_int_equal(truncate(bin, 4), 0);
    free(bin);
    assert_int_equal(store_upload_stat(s, NULL, ID, &info), IA_OK);
    assert_true(info.offset == 4);
    append(s, 6, "ghij", IA_ERR_INVALID); /* the client's offset: asks HEAD, sends again */
    append(s, 4, "ef", IA_OK);
    assert_int_equal(syncs, 0);
    append(s, 6, "ghij", IA_OK);
    assert_int_equal(syncs, 1);
    assert_int_equal(store_upload_stat(s, NULL, ID, &info), IA_OK);
    assert_true(info.offset == 10);
}

static void test_failed_append_is_cut_back(void **state)
{
    struct store *s = *state;
    struct store_upload *u;
    struct store_upload_info info;
    assert_int_equal(store_upload_create(s, NULL, ID, 100, NULL), IA_OK);
    assert_int_equal(store_upload_begin(s, NULL, ID, 0, 50, &u), IA_OK);
    assert_int_equal(write(store_upload_fd(u), "partial", 7), 7);
    assert_int_not_equal(store_upload_commit(u, false, &info), IA_OK);
    assert_true(info.offset == 0);
    store_upload_close(u);
}

static void test_one_appender_and_one_task(void **state)
{
    struct store *s = *state;
    struct store_upload *u, *v;
    struct store_upload_info info;
    assert_int_equal(store_upload_create(s, NULL, ID, 0, NULL), IA_OK);
    assert_int_equal(store_upload_begin(s, NULL, ID, 0, 0, &u), IA_OK);
    /* A second appender while the first holds the lock: refused, as a conflict. */
    assert_int_equal(store_upload_begin(s, NULL, ID, 0, 0, &v), IA_ERR_INVALID);
    assert_null(v);
    assert_int_equal(store_upload_set_task(u, "task-1"), IA_OK);
    assert_int_equal(store_upload_set_task(u, "task-2"), IA_ERR_INVALID);
    store_upload_close(u);
    assert_int_equal(store_upload_stat(s, NULL, ID, &info), IA_OK);
    assert_string_equal(info.task_id, "task-1");
    assert_int_equal(store_upload_begin(s, NULL, ID, 0, 0, &u), IA_OK);
    store_upload_clear_task(u);
    store_upload_close(u);
    assert_int_equal(store_upload_stat(s, NULL, ID, &info), IA_OK);
    assert_string_equal(info.task_id, "");
}

static void age_files(struct store *s, long seconds)
{
    static const char *const exts[] = {"bin", "len"};
    struct timeval old[2];
    gettimeofday(&old[0], NULL);
    old[0].tv_sec -= seconds;
    old[1] = old[0];
    for (int i = 0; i < 2; i++) {
        char *p = xasprintf("%s/.uploads/%s.%s", store_dir(s), ID, exts[i]);
        assert_int_equal(utimes(p, old), 0);
        free(p);
    }
}

static void test_sweep(void **state)
{
    struct store *s = *state;
    struct store_upload_info info;
    assert_int_equal(store_upload_create(s, NULL, ID, 100, NULL), IA_OK);
    assert_int_equal(store_upload_sweep(s, NULL, 60, 3600), 0);
    age_files(s, 120);
    assert_int_equal(store_upload_sweep(s, NULL, 60, 3600), 1);
    assert_int_equal(store_upload_stat(s, NULL, ID, &info), IA_ERR_NOT_FOUND);
    /* A finished upload waits for its task longer. */
    struct store_upload *u;
    assert_int_equal(store_upload_create(s, NULL, ID, 0, NULL), IA_OK);
    assert_int_equal(store_upload_begin(s, NULL, ID, 0, 0, &u), IA_OK);
    assert_int_equal(store_upload_set_task(u, "t"), IA_OK);
    store_upload_close(u);
    age_files(s, 120);
    assert_int_equal(store_upload_sweep(s, NULL, 60, 3600), 0);
    age_files(s, 7200);
    assert_int_equal(store_upload_sweep(s, NULL, 60, 3600), 1);
}

static void test_ids_must_be_uuids(void **state)
{
    struct store *s = *state;
    struct store_upload *u;
    struct store_upload_info info;
    assert_int_equal(store_upload_create(s, NULL, "../x", 1, NULL), IA_ERR_INVALID);
    assert_int_equal(store_upload_create(s, NULL, ID, 1, "line\nbreak"), IA_ERR_INVALID);
    assert_int_equal(store_upload_stat(s, NULL, "../../etc/passwd", &info), IA_ERR_NOT_FOUND);
    assert_int_equal(store_upload_begin(s, NULL, "..", 0, 0, &u), IA_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_append_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_synced_once_when_complete_and_offset_is_on_disk, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_append_is_cut_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_appender_and_one_task, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_must_be_uuids, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
