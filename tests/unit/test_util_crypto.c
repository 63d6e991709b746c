/* Tests for util/crypto.c's streamed SHA-256 of a file range (the S3 client's payload hash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/crypto.h"
#include "util/str.h"

static void test_sha256_fd_ranges(void **state)
{
    (void)state;
    char path[] = "/tmp/ia-crypto-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    size_t n = 200000; /* more than one 64 KiB block, not a multiple of it */
    unsigned char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 7 + (i >> 9));
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    const size_t ranges[][2] = {{0, 0}, {0, n}, {1, 65536}, {65535, 70000}, {n - 1, 1}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        unsigned char want[SHA256_LEN], got[SHA256_LEN];
        crypto_sha256(data + ranges[i][0], ranges[i][1], want);
        assert_int_equal(crypto_sha256_fd(fd, ranges[i][0], ranges[i][1], got), 0);
        assert_memory_equal(got, want, SHA256_LEN);
    }
    /* The empty string's hash, the S3 payload hash of a bodiless request. */
    unsigned char md[SHA256_LEN];
    char hex[65];
    assert_int_equal(crypto_sha256_fd(fd, 5, 0, md), 0);
    str_hex(hex, md, sizeof md);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* A range past the end of the file is an error, not a short hash. */
    errno = 0;
    assert_int_equal(crypto_sha256_fd(fd, n - 10, 11, md), -1);
    assert_int_equal(errno, EIO);
    /* The file position is untouched (pread). */
    assert_int_equal(lseek(fd, 0, SEEK_CUR), (off_t)n);
    close(fd);
    assert_int_equal(crypto_sha256_fd(fd, 0, 1, md), -1);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_fd_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
