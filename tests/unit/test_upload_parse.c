/* Tests for the direct-upload parsers of api/upload_parse.c: tus header values and multipart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"

static void test_u64(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_true(upload_parse_u64("0", &v));
    assert_int_equal(v, 0);
    assert_true(upload_parse_u64("18446744073709551615", &v));
    assert_true(v == UINT64_MAX);
    assert_false(upload_parse_u64("18446744073709551616", &v));
    assert_false(upload_parse_u64("", &v));
    assert_false(upload_parse_u64(NULL, &v));
    assert_false(upload_parse_u64("-1", &v));
    assert_false(upload_parse_u64("+1", &v));
    assert_false(upload_parse_u64(" 1", &v));
    assert_false(upload_parse_u64("1 ", &v));
    assert_false(upload_parse_u64("0x10", &v));
}

static void test_metadata(void **state)
{
    (void)state;
    assert_true(upload_metadata_valid(""));
    assert_true(upload_metadata_valid("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg=="));
    assert_true(upload_metadata_valid("filename ZmlsZQ==,is_confidential"));
    assert_true(upload_metadata_valid("a YQ==, b Yg=="));
    assert_false(upload_metadata_valid("filename not base64!"));
    assert_false(upload_metadata_valid("filename  YQ=="));
    assert_false(upload_metadata_valid(",,"));
    assert_false(upload_metadata_valid("k\x01 YQ=="));
    char big[UPLOAD_METADATA_MAX + 10];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(upload_metadata_valid(big));
}

/* ?analysis= of POST /upload: exactly "true" or "false". */
static void test_flag(void **state)
{
    (void)state;
    bool off = true;
    assert_true(upload_parse_flag("true", &off));
    assert_false(off);
    assert_true(upload_parse_flag("false", &off));
    assert_true(off);
    const char *bad[] = {"", "False", "FALSE", "0", "1", "no", "false ", " true", "truex", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(upload_parse_flag(bad[i], &off));
}

/* The analysis key of Upload-Metadata; "ZmFsc2U=" is base64 of false, "dHJ1ZQ==" of true. */
static void test_metadata_analysis(void **state)
{
    (void)state;
    bool off = true;
    assert_true(upload_metadata_analysis("", &off));
    assert_false(off);
    assert_true(upload_metadata_analysis("filename YS5tcDQ=,private", &off));
    assert_false(off);
    assert_true(upload_metadata_analysis("analysis ZmFsc2U=", &off));
    assert_true(off);
    assert_true(upload_metadata_analysis("filename YS5tcDQ=, analysis ZmFsc2U", &off));
    assert_true(off); /* padding is optional */
    assert_true(upload_metadata_analysis("analysis dHJ1ZQ==,filename YQ==", &off));
    assert_false(off);
    assert_true(upload_metadata_analysis("analysisx ZmFsc2U=,analyse ZmFsc2U=", &off));
    assert_false(off); /* other keys */
    assert_false(upload_metadata_analysis("analysis", &off));           /* no value */
    assert_false(upload_metadata_analysis("analysis ", &off));          /* empty value */
    assert_false(upload_metadata_analysis("analysis bm8=", &off));      /* "no" */
    assert_false(upload_metadata_analysis("analysis RmFsc2U=", &off));  /* "False" */
    assert_false(upload_metadata_analysis("analysis ZmFsc2UK", &off));  /* "false\n" */
    assert_false(upload_metadata_analysis("analysis ZmFsc2VmYWxzZQ==", &off)); /* too long */
    assert_false(upload_metadata_analysis("analysis ZmFsc2U=,analysis ZmFsc2U=", &off));
    assert_false(upload_metadata_analysis("analysis dHJ1ZQ==,analysis ZmFsc2U=", &off));
    assert_false(upload_metadata_analysis("analysis Zm", &off)); /* "f" */
}

static void test_boundary(void **state)
{
    (void)state;
    char b[80];
    assert_true(upload_multipart_boundary("multipart/form-data; boundary=abc123", b, sizeof(b)));
    assert_string_equal(b, "abc123");
    assert_true(upload_multipart_boundary("Multipart/Form-Data;boundary=\"a b;c\"", b, sizeof(b)));
    assert_string_equal(b, "a b;c");
    assert_true(
        upload_multipart_boundary("multipart/form-data; charset=x; boundary=zz", b, sizeof(b)));
    assert_string_equal(b, "zz");
    assert_false(upload_multipart_boundary("multipart/form-data", b, sizeof(b)));
    assert_false(upload_multipart_boundary("multipart/mixed; boundary=a", b, sizeof(b)));
    assert_false(upload_multipart_boundary("multipart/form-dataX; boundary=a", b, sizeof(b)));
    assert_false(upload_multipart_boundary("multipart/form-data; boundary=", b, sizeof(b)));
    assert_false(upload_multipart_boundary(NULL, b, sizeof(b)));
    char long_ct[200];
    snprintf(long_ct, sizeof(long_ct), "multipart/form-data; boundary=%0*d", 71, 0);
    assert_false(upload_multipart_boundary(long_ct, b, sizeof(b)));
}

static const char *parse(const char *body, struct upload_file_part *p)
{
    return upload_multipart_parse((const unsigned char *)body, strlen(body), "XyZ", p);
}

static void test_multipart_file_part(void **state)
{
    (void)state;
    struct upload_file_part p;
    const char *body = "preamble\r\n--XyZ\r\n"
                       "Content-Disposition: form-data; name=\"note\"\r\n\r\n"
                       "hello\r\n--XyZ\r\n"
                       "Content-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n"
                       "Content-Type: video/mp4\r\n\r\n"
                       "BYTES\r\n--XyZ--\r\n";
    assert_null(parse(body, &p));
    assert_string_equal(p.filename, "a.mp4");
    assert_string_equal(p.content_type, "video/mp4");
    assert_int_equal(p.length, 5);
    assert_memory_equal(body + p.offset, "BYTES", 5);
    /* The content may hold CRLF and dashes that are not the delimiter. */
    body = "--XyZ\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\n"
           "a\r\n--XyZa\r\n--Xy\r\n--XyZ--";
    assert_null(parse(body, &p));
    assert_int_equal(p.length, strlen("a\r\n--XyZa\r\n--Xy"));
    assert_string_equal(p.filename, "x");
    assert_string_equal(p.content_type, "");
}

static void test_multipart_refusals(void **state)
{
    (void)state;
    struct upload_file_part p;
    assert_non_null(parse("no boundary here", &p));
    assert_non_null(parse("--XyZ--\r\n", &p));
    assert_non_null(
        parse("--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--XyZ--", &p));
    assert_non_null(
        parse("--XyZ\r\nContent-Disposition: form-data; filename=a\r\n\r\nnot closed", &p));
    assert_non_null(parse("--XyZ\r\nContent-Disposition: form-data; filename=a", &p));
    assert_non_null(parse("--XyZgarbage\r\n", &p));
    /* A part with no headers is not a file. */
    assert_non_null(parse("--XyZ\r\n\r\nx\r\n--XyZ--", &p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_flag),
        cmocka_unit_test(test_metadata_analysis),
        cmocka_unit_test(test_boundary),
        cmocka_unit_test(test_multipart_file_part),
        cmocka_unit_test(test_multipart_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
