/* Tests for store/s3_xml.c: S3's XML answers read safely, hostile ones refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "store/s3_xml.h"

static struct slice sl(const char *s) { return (struct slice){s, strlen(s)}; }

static void test_list_page(void **state)
{
    (void)state;
    const char *xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                      "<Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
                      "<IsTruncated>true</IsTruncated>"
                      "<Contents><Key>p/a &amp; b&#x2F;&lt;c&gt;</Key><Size>10</Size>"
                      "<ETag>&quot;abc&quot;</ETag></Contents>"
                      "<Contents><Key>p/&#233;t&#xE9;</Key><Size>0</Size></Contents>"
                      "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
                      "</NextContinuationToken></ListBucketResult>";
    struct slice in = sl(xml), c, rest;
    assert_true(s3_xml_element(in, "Contents", &c, &rest));
    char *key = s3_xml_get(c, "Key", 1024), *etag = s3_xml_get(c, "ETag", 100);
    assert_string_equal(key, "p/a & b/<c>");
    assert_string_equal(etag, "\"abc\"");
    free(key), free(etag);
    assert_true(s3_xml_element(rest, "Contents", &c, &rest));
    key = s3_xml_get(c, "Key", 1024);
    assert_string_equal(key, "p/\xc3\xa9t\xc3\xa9");
    assert_null(s3_xml_get(c, "ETag", 100));
    free(key);
    assert_false(s3_xml_element(rest, "Contents", &c, &rest));
    char *t = s3_xml_get(in, "IsTruncated", 8);
    assert_string_equal(t, "true");
    free(t);
    t = s3_xml_get(in, "NextContinuationToken", 4096);
    assert_string_equal(t, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    free(t);
}

static void test_names_match_whole(void **state)
{
    (void)state;
    struct slice in = sl("<KeyCount>3</KeyCount><Key a=\"1\">k</Key><Empty/><Code>x</Code>");
    char *k = s3_xml_get(in, "Key", 10);
    assert_string_equal(k, "k"); /* not KeyCount's text */
    free(k);
    k = s3_xml_get(in, "Empty", 10);
    assert_string_equal(k, "");
    free(k);
    assert_null(s3_xml_get(in, "Cod", 10));
    assert_null(s3_xml_get(in, "Missing", 10));
}

static void test_hostile_text_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "<Key>a<b</Key>",
        "<Key>&bogus;</Key>",
        "<Key>&#0;</Key>",
        "<Key>&#x1;</Key>",
        "<Key>&#127;</Key>", /* DEL: refused as an entity as it is raw (fuzz finding) */
        "<Key>&#xD800;</Key>",
        "<Key>&#x110000;</Key>",
        "<Key>&#;</Key>",
        "<Key>&#x;</Key>",
        "<Key>&amp</Key>",
        "<Key>a\x01</Key>",
        "<Key>&#99999999999;</Key>",
        "<Key>unterminated",
        "<Key",
        "<Key>x</Ke>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *v = s3_xml_get(sl(bad[i]), "Key", 100);
        if (v)
            print_error("accepted: %s -> %s\n", bad[i], v);
        assert_null(v);
    }
    /* A NUL byte inside the slice. */
    const char nul[] = "<Key>a\0b</Key>";
    assert_null(s3_xml_get((struct slice){nul, sizeof nul - 1}, "Key", 100));
    /* Longer than allowed after decoding. */
    assert_null(s3_xml_get(sl("<Key>abcdef</Key>"), "Key", 5));
    char *ok = s3_xml_get(sl("<Key>abcde</Key>"), "Key", 5);
    assert_string_equal(ok, "abcde");
    free(ok);
}

static void test_reads_stay_inside_the_slice(void **state)
{
    (void)state;
    /* The closing tag lies past the slice: not found. */
    const char *xml = "<Key>abc</Key>";
    struct slice cut = {xml, 10};
    assert_null(s3_xml_get(cut, "Key", 100));
    struct slice tiny = {xml, 3};
    assert_null(s3_xml_get(tiny, "Key", 100));
    assert_null(s3_xml_get((struct slice){"", 0}, "Key", 100));
}

static void test_escape(void **state)
{
    (void)state;
    char *e = s3_xml_escape("\"3858f62230ac3c915f300c664312c63f-2\"&<>'");
    assert_string_equal(e, "&quot;3858f62230ac3c915f300c664312c63f-2&quot;&amp;&lt;&gt;&apos;");
    char *back = s3_xml_text(sl(e), 100);
    assert_string_equal(back, "\"3858f62230ac3c915f300c664312c63f-2\"&<>'");
    free(e);
    free(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_page),
        cmocka_unit_test(test_names_match_whole),
        cmocka_unit_test(test_hostile_text_refused),
        cmocka_unit_test(test_reads_stay_inside_the_slice),
        cmocka_unit_test(test_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
