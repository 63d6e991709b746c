/* Tests for the pure part of store/store_upload_s3.c: piece keys, the completeness check of a
 * listing, and the lock's lease. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "store/store_upload_int.h"

#define ID "11111111-2222-4333-8444-555555555555"
#define OTHER "11111111-2222-4333-8444-555555555556"

static void test_piece_keys_sort_by_offset(void **state)
{
    (void)state;
    char a[UPLOAD_PIECE_KEY_MAX], b[UPLOAD_PIECE_KEY_MAX], c[UPLOAD_PIECE_KEY_MAX];
    upload_piece_key(ID, 0, a);
    upload_piece_key(ID, 8388608, b);
    upload_piece_key(ID, UINT64_MAX, c);
    assert_string_equal(a, "uploads/" ID "/00000000000000000000");
    assert_string_equal(b, "uploads/" ID "/00000000000008388608");
    assert_string_equal(c, "uploads/" ID "/18446744073709551615");
    assert_true(strcmp(a, b) < 0 && strcmp(b, c) < 0); /* a listing comes in offset order */
    uint64_t off = 1;
    assert_true(upload_piece_offset(ID, a, &off));
    assert_int_equal(off, 0);
    assert_true(upload_piece_offset(ID, b, &off));
    assert_int_equal(off, 8388608);
    assert_true(upload_piece_offset(ID, c, &off));
    assert_true(off == UINT64_MAX);
}

static void test_other_keys_are_not_pieces(void **state)
{
    (void)state;
    uint64_t off;
    assert_false(upload_piece_offset(ID, "uploads/" OTHER "/00000000000000000000", &off));
    assert_false(upload_piece_offset(ID, "uploads/" ID "/0000000000000000000", &off));
    assert_false(upload_piece_offset(ID, "uploads/" ID "/000000000000000000000", &off));
    assert_false(upload_piece_offset(ID, "uploads/" ID "/0000000000000000000x", &off));
    assert_false(upload_piece_offset(ID, "uploads/" ID "/-0000000000000000001", &off));
    assert_false(upload_piece_offset(ID, "uploads/" ID "/99999999999999999999", &off)); /* > 2^64 */
    assert_false(upload_piece_offset(ID, "uploads/" ID "00000000000000000000", &off));
    assert_false(upload_piece_offset(ID, "processed_" ID ".mp4", &off));
    assert_false(upload_piece_offset(ID, "uploads/" ID "/", &off));
}

static void test_pieces_must_tile_the_upload(void **state)
{
    (void)state;
    uint64_t offs[] = {0, 8, 9}, sizes[] = {8, 1, 11};
    assert_true(upload_pieces_complete(offs, sizes, 3, 20));
    assert_false(upload_pieces_complete(offs, sizes, 3, 21)); /* the end is missing */
    assert_false(upload_pieces_complete(offs, sizes, 3, 19)); /* more than the length */
    assert_false(upload_pieces_complete(offs, sizes, 2, 20));
    uint64_t gap[] = {0, 8, 10};
    assert_false(upload_pieces_complete(gap, sizes, 3, 20));
    uint64_t overlap[] = {0, 7, 8}, osizes[] = {8, 1, 12};
    assert_false(upload_pieces_complete(overlap, osizes, 3, 20));
    uint64_t empty_sizes[] = {8, 0, 12};
    assert_false(upload_pieces_complete(offs, empty_sizes, 3, 20)); /* no empty piece */
    uint64_t late[] = {1}, one[] = {20};
    assert_false(upload_pieces_complete(late, one, 1, 21)); /* must start at 0 */
    assert_true(upload_pieces_complete(NULL, NULL, 0, 0));  /* an empty file */
    assert_false(upload_pieces_complete(NULL, NULL, 0, 1));
    uint64_t huge[] = {0, 1}, hsizes[] = {1, UINT64_MAX}; /* no wrap-around */
    assert_false(upload_pieces_complete(huge, hsizes, 2, 5));
}

static void test_lease_outlasts_the_put(void **state)
{
    (void)state;
    /* One PUT ends within S3_CONNECT_TIMEOUT_S + S3_TIMEOUT_S (whole-request limits). */
    assert_int_equal(upload_lease_ms(60, 30), (2 * 90 + 60) * 1000LL);
    assert_int_equal(upload_lease_ms(1, 1), 64000);
    assert_true(upload_lease_ms(600, 30) > (600 + 30) * 1000LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_piece_keys_sort_by_offset),
        cmocka_unit_test(test_other_keys_are_not_pieces),
        cmocka_unit_test(test_pieces_must_tile_the_upload),
        cmocka_unit_test(test_lease_outlasts_the_put),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
