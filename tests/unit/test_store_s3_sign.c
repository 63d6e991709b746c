/*
 * Tests for store/s3_sign.c against AWS's published SigV4 examples: the S3 API reference's
 * worked examples (access key AKIAIOSFODNN7EXAMPLE, 2013-05-24, bucket examplebucket) and the
 * generic Signature Version 4 test suite (AKIDEXAMPLE, service "service", 2015-08-30).
 * The inputs and expected signatures are facts from that documentation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/s3_sign.h"
#include "util/str.h"

#define S3_DATE "20130524T000000Z"
#define S3_HOST "examplebucket.s3.amazonaws.com"
#define SUITE_DATE "20150830T123600Z"
#define SUITE_HOST "example.amazonaws.com"

static const struct sigv4_creds s3_creds = {"AKIAIOSFODNN7EXAMPLE",
                                            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL};
static const struct sigv4_creds suite_creds = {"AKIDEXAMPLE",
                                               "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL};

static void assert_signature(const struct sigv4_creds *c, const struct sigv4_request *r,
                             const char *want)
{
    char sig[65];
    sigv4_signature(c, r, sig);
    assert_string_equal(sig, want);
}

/* S3 "GET Object": the first 10 bytes of test.txt, empty payload hash. */
static void test_s3_get_object_with_range(void **state)
{
    (void)state;
    const struct sigv4_pair h[] = {{"Host", S3_HOST},
                                   {"Range", "bytes=0-9"},
                                   {"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
                                   {"x-amz-date", S3_DATE}};
    struct sigv4_request r = {"GET", "/test.txt", NULL, 0, h, 4, SIGV4_EMPTY_SHA256,
                              "us-east-1", "s3", S3_DATE};
    char *sh = NULL;
    char *canon = sigv4_canonical_request(&r, &sh);
    assert_string_equal(canon, "GET\n/test.txt\n\nhost:" S3_HOST "\nrange:bytes=0-9\n"
                               "x-amz-content-sha256:" SIGV4_EMPTY_SHA256 "\n"
                               "x-amz-date:" S3_DATE "\n\n"
                               "host;range;x-amz-content-sha256;x-amz-date\n" SIGV4_EMPTY_SHA256);
    assert_string_equal(sh, "host;range;x-amz-content-sha256;x-amz-date");
    free(canon);
    free(sh);
    assert_signature(&s3_creds, &r,
                     "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    char *auth = sigv4_authorization(&s3_creds, &r);
    assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
                              "us-east-1/s3/aws4_request, SignedHeaders=host;range;"
                              "x-amz-content-sha256;x-amz-date, Signature="
                              "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    free(auth);
}

/* S3 "PUT Object": key test$file.text ('$' encoded), a signed body and a storage class. */
static void test_s3_put_object(void **state)
{
    (void)state;
    unsigned char md[SHA256_LEN];
    char payload[65];
    const char *body = "Welcome to Amazon S3.";
    crypto_sha256(body, strlen(body), md);
    str_hex(payload, md, sizeof md);
    assert_string_equal(payload,
                        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    char *path = sigv4_encode_path("test$file.text");
    assert_string_equal(path, "/test%24file.text");
    const struct sigv4_pair h[] = {{"Host", S3_HOST},
                                   {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                                   {"x-amz-date", S3_DATE},
                                   {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                                   {"x-amz-content-sha256", payload}};
    struct sigv4_request r = {"PUT", path, NULL, 0, h, 5, payload, "us-east-1", "s3", S3_DATE};
    char *sh = NULL;
    char *canon = sigv4_canonical_request(&r, &sh);
    assert_string_equal(sh, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
    free(canon);
    free(sh);
    assert_signature(&s3_creds, &r,
                     "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    free(path);
}

/* S3 "GET Bucket Lifecycle": a query parameter without a value becomes "lifecycle=". */
static void test_s3_get_lifecycle(void **state)
{
    (void)state;
    const struct sigv4_pair q[] = {{"lifecycle", ""}};
    const struct sigv4_pair h[] = {{"Host", S3_HOST},
                                   {"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
                                   {"x-amz-date", S3_DATE}};
    struct sigv4_request r = {"GET", "/", q, 1, h, 3, SIGV4_EMPTY_SHA256,
                              "us-east-1", "s3", S3_DATE};
    char *canon = sigv4_canonical_request(&r, NULL);
    assert_non_null(strstr(canon, "GET\n/\nlifecycle=\n"));
    free(canon);
    assert_signature(&s3_creds, &r,
                     "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

/* S3 "GET Bucket (List Objects)": parameters given out of order are sorted. */
static void test_s3_list_objects(void **state)
{
    (void)state;
    const struct sigv4_pair q[] = {{"prefix", "J"}, {"max-keys", "2"}};
    const struct sigv4_pair h[] = {{"x-amz-date", S3_DATE},
                                   {"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
                                   {"host", S3_HOST}};
    struct sigv4_request r = {"GET", "/", q, 2, h, 3, SIGV4_EMPTY_SHA256,
                              "us-east-1", "s3", S3_DATE};
    char *query = sigv4_canonical_query(q, 2);
    assert_string_equal(query, "max-keys=2&prefix=J");
    free(query);
    assert_signature(&s3_creds, &r,
                     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

/* S3 "presigned URL" example: GET test.txt for 86400 s, only host signed. */
static void test_s3_presigned_get(void **state)
{
    (void)state;
    char *q = sigv4_presign_query(&s3_creds, "GET", S3_HOST, "/test.txt", NULL, 0, "us-east-1",
                                  "s3", S3_DATE, 86400);
    assert_string_equal(q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
                           "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
                           "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
                           "&X-Amz-SignedHeaders=host&X-Amz-Signature="
                           "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    free(q);
}

/* Presigning: a response-content-disposition and a session token are signed into the URL. */
static void test_presign_extras_change_the_signature(void **state)
{
    (void)state;
    const struct sigv4_pair disp[] = {{"response-content-disposition",
                                       "attachment; filename=\"a b.mp4\""}};
    char *plain = sigv4_presign_query(&s3_creds, "GET", S3_HOST, "/test.txt", NULL, 0,
                                      "us-east-1", "s3", S3_DATE, 60);
    char *with = sigv4_presign_query(&s3_creds, "GET", S3_HOST, "/test.txt", disp, 1,
                                     "us-east-1", "s3", S3_DATE, 60);
    char *head = sigv4_presign_query(&s3_creds, "HEAD", S3_HOST, "/test.txt", NULL, 0,
                                     "us-east-1", "s3", S3_DATE, 60);
    struct sigv4_creds tok = s3_creds;
    tok.session_token = "token/with+chars=";
    char *withtok = sigv4_presign_query(&tok, "GET", S3_HOST, "/test.txt", NULL, 0,
                                        "us-east-1", "s3", S3_DATE, 60);
    assert_non_null(strstr(with, "&response-content-disposition=attachment%3B%20filename%3D"
                                 "%22a%20b.mp4%22&X-Amz-Signature="));
    assert_non_null(strstr(withtok, "&X-Amz-Security-Token=token%2Fwith%2Bchars%3D&"));
    assert_null(strstr(plain, "Security-Token"));
    const char *s1 = strstr(plain, "X-Amz-Signature="), *s2 = strstr(with, "X-Amz-Signature="),
               *s3 = strstr(head, "X-Amz-Signature="), *s4 = strstr(withtok, "X-Amz-Signature=");
    assert_string_not_equal(s1, s2);
    assert_string_not_equal(s1, s3);
    assert_string_not_equal(s1, s4);
    free(plain);
    free(with);
    free(head);
    free(withtok);
}

struct suite_case {
    const char *name;
    const char *method;
    const char *path;
    struct sigv4_pair query[2];
    size_t nquery;
    struct sigv4_pair extra[2];
    size_t nextra;
    const char *auth;
};

/* The generic test suite: service "service", region us-east-1, empty body. */
static void test_generic_suite(void **state)
{
    (void)state;
    static const struct suite_case cases[] = {
        {"get-vanilla", "GET", "/", {{0}}, 0, {{0}}, 0,
         "SignedHeaders=host;x-amz-date, "
         "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
        {"post-vanilla", "POST", "/", {{0}}, 0, {{0}}, 0,
         "SignedHeaders=host;x-amz-date, "
         "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
        {"get-vanilla-query-order-key-case", "GET", "/",
         {{"Param2", "value2"}, {"Param1", "value1"}}, 2, {{0}}, 0,
         "SignedHeaders=host;x-amz-date, "
         "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
        {"get-unreserved", "GET",
         "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", {{0}}, 0,
         {{0}}, 0,
         "SignedHeaders=host;x-amz-date, "
         "Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
        {"post-header-value-case", "POST", "/", {{0}}, 0, {{"My-Header1", "VALUE1"}}, 1,
         "SignedHeaders=host;my-header1;x-amz-date, "
         "Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
        {"get-header-value-trim", "GET", "/", {{0}}, 0,
         {{"My-Header1", " value1"}, {"My-Header2", "\"a   b   c\""}}, 2,
         "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
         "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct suite_case *c = &cases[i];
        struct sigv4_pair h[4] = {{"Host", SUITE_HOST}, {"X-Amz-Date", SUITE_DATE}};
        size_t nh = 2;
        for (size_t j = 0; j < c->nextra; j++)
            h[nh++] = c->extra[j];
        struct sigv4_request r = {c->method, c->path, c->query, c->nquery, h, nh,
                                  SIGV4_EMPTY_SHA256, "us-east-1", "service", SUITE_DATE};
        char *auth = sigv4_authorization(&suite_creds, &r);
        char *want = NULL;
        size_t wl = strlen(c->auth) + 200;
        want = malloc(wl);
        snprintf(want, wl,
                 "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                 "aws4_request, %s",
                 c->auth);
        if (strcmp(auth, want) != 0)
            print_error("case %s\n", c->name);
        assert_string_equal(auth, want);
        free(want);
        free(auth);
    }
}

/* The suite's canonical request for get-vanilla-query-order-key-case, line by line. */
static void test_generic_canonical_request(void **state)
{
    (void)state;
    const struct sigv4_pair q[] = {{"Param2", "value2"}, {"Param1", "value1"}};
    const struct sigv4_pair h[] = {{"Host", SUITE_HOST}, {"X-Amz-Date", SUITE_DATE}};
    struct sigv4_request r = {"GET", "/", q, 2, h, 2, SIGV4_EMPTY_SHA256, "us-east-1",
                              "service", SUITE_DATE};
    char *canon = sigv4_canonical_request(&r, NULL);
    assert_string_equal(canon, "GET\n/\nParam1=value1&Param2=value2\nhost:" SUITE_HOST
                               "\nx-amz-date:" SUITE_DATE "\n\nhost;x-amz-date\n"
                               SIGV4_EMPTY_SHA256);
    free(canon);
}

/* S3's multipart query: "?uploads" is "uploads=", part numbers and ids are encoded. */
static void test_query_encoding(void **state)
{
    (void)state;
    const struct sigv4_pair q[] = {{"uploads", ""}};
    char *s = sigv4_canonical_query(q, 1);
    assert_string_equal(s, "uploads=");
    free(s);
    const struct sigv4_pair q2[] = {{"uploadId", "2~a/b+c=d"}, {"partNumber", "10"},
                                    {"prefix", "a b/ü"}, {"list-type", "2"}};
    s = sigv4_canonical_query(q2, 4);
    assert_string_equal(s, "list-type=2&partNumber=10&prefix=a%20b%2F%C3%BC&"
                           "uploadId=2~a%2Fb%2Bc%3Dd");
    free(s);
    char *p = sigv4_encode_path("videos/processed_1 (copy)+x.mp4");
    assert_string_equal(p, "/videos/processed_1%20%28copy%29%2Bx.mp4");
    free(p);
}

/* The key derivation example of the SigV4 documentation (secret of the test suite, iam). */
static void test_signing_key(void **state)
{
    (void)state;
    unsigned char k[SHA256_LEN];
    char hex[65];
    sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1",
                      "iam", k);
    str_hex(hex, k, sizeof k);
    assert_string_equal(hex, "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
}

static void test_format_date(void **state)
{
    (void)state;
    char d[SIGV4_DATE_LEN];
    sigv4_format_date(1369353600, d);
    assert_string_equal(d, "20130524T000000Z");
    sigv4_format_date(1440938160, d);
    assert_string_equal(d, SUITE_DATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s3_get_object_with_range),
        cmocka_unit_test(test_s3_put_object),
        cmocka_unit_test(test_s3_get_lifecycle),
        cmocka_unit_test(test_s3_list_objects),
        cmocka_unit_test(test_s3_presigned_get),
        cmocka_unit_test(test_presign_extras_change_the_signature),
        cmocka_unit_test(test_generic_suite),
        cmocka_unit_test(test_generic_canonical_request),
        cmocka_unit_test(test_query_encoding),
        cmocka_unit_test(test_signing_key),
        cmocka_unit_test(test_format_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
