/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <string.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include "bff_cookie.h"

#define BFF "__Host-Http-bff"

static void test_name_ok(void **state)
{
    (void)state;
    assert_true(bff_cookie_name_ok(BFF));
    assert_true(bff_cookie_name_ok("a"));
    assert_true(bff_cookie_name_ok("!#$%&'*+-.^_`|~09AZaz"));

    assert_false(bff_cookie_name_ok(NULL));
    assert_false(bff_cookie_name_ok(""));
    assert_false(bff_cookie_name_ok("a b"));
    assert_false(bff_cookie_name_ok("a=b"));
    assert_false(bff_cookie_name_ok("a;b"));
    assert_false(bff_cookie_name_ok("a,b"));
    assert_false(bff_cookie_name_ok("a\"b"));
    assert_false(bff_cookie_name_ok("a(b)"));
    assert_false(bff_cookie_name_ok("a/b"));
    assert_false(bff_cookie_name_ok("a:b"));
    assert_false(bff_cookie_name_ok("a@b"));
    assert_false(bff_cookie_name_ok("a\tb"));
    assert_false(bff_cookie_name_ok("a\r\nb"));
    assert_false(bff_cookie_name_ok("a\x7f"));
    assert_false(bff_cookie_name_ok("caf\xc3\xa9"));
}

static void test_name_too_long(void **state)
{
    apr_pool_t *p = *state;
    char *n = apr_palloc(p, 300);

    memset(n, 'n', 299);
    n[256] = '\0';
    assert_true(bff_cookie_name_ok(n));
    n[256] = 'n';
    n[257] = '\0';
    assert_false(bff_cookie_name_ok(n));
}

static void test_get(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bff_cookie_get(p, BFF "=abc", BFF), "abc");
    assert_string_equal(bff_cookie_get(p, "a=1; " BFF "=abc-_9; b=2", BFF), "abc-_9");
    assert_string_equal(bff_cookie_get(p, "a=1;" BFF "=abc;b=2", BFF), "abc");
    /* Odd whitespace, empty pairs, pairs without '='. */
    assert_string_equal(bff_cookie_get(p, " ;; \t a=1 ;  ;junk; " BFF " = abc \t; ", BFF), "abc");
    assert_string_equal(bff_cookie_get(p, "a=1;b=2", "b"), "2");
    /* Surrounding DQUOTEs are removed. */
    assert_string_equal(bff_cookie_get(p, "a=\"xyz\"", "a"), "xyz");
    assert_string_equal(bff_cookie_get(p, "a=\"\"", "a"), "");
    /* Empty value is present and empty. */
    assert_string_equal(bff_cookie_get(p, "a=; b=1", "a"), "");
    /* '=' in a value is a cookie-octet (base64 padding). */
    assert_string_equal(bff_cookie_get(p, "a=x==", "a"), "x==");
    /* Duplicate names: the first wins. */
    assert_string_equal(bff_cookie_get(p, BFF "=first; " BFF "=second", BFF), "first");
    /* Names are case-sensitive and compared whole. */
    assert_null(bff_cookie_get(p, "__host-http-bff=x", BFF));
    assert_null(bff_cookie_get(p, BFF "x=abc", BFF));
    assert_null(bff_cookie_get(p, "x" BFF "=abc", BFF));
    assert_string_equal(bff_cookie_get(p, "ab=1; a=2", "a"), "2");
    assert_null(bff_cookie_get(p, "a=1", "ab"));

    /* Absent. */
    assert_null(bff_cookie_get(p, "", BFF));
    assert_null(bff_cookie_get(p, ";;;", BFF));
    assert_null(bff_cookie_get(p, "a=1; b=2", BFF));
    assert_null(bff_cookie_get(p, BFF, BFF)); /* no '=' */
    assert_null(bff_cookie_get(p, "=" BFF, BFF));
    assert_null(bff_cookie_get(p, NULL, BFF));
    assert_null(bff_cookie_get(p, "a=1", NULL));
    assert_null(bff_cookie_get(p, "a=1", ""));
    assert_null(bff_cookie_get(p, "a b=1", "a b")); /* not a legal name */
}

static void test_get_bad_values(void **state)
{
    apr_pool_t *p = *state;

    /* Bytes outside cookie-octet make the cookie absent. */
    assert_null(bff_cookie_get(p, "a=x y", "a"));
    assert_null(bff_cookie_get(p, "a=x\ty", "a"));
    assert_null(bff_cookie_get(p, "a=x\"y", "a"));
    assert_null(bff_cookie_get(p, "a=\"xy", "a")); /* lone quote */
    assert_null(bff_cookie_get(p, "a=xy\"", "a"));
    assert_null(bff_cookie_get(p, "a=\"", "a"));
    assert_null(bff_cookie_get(p, "a=\"x y\"", "a"));
    assert_null(bff_cookie_get(p, "a=x,y", "a"));
    assert_null(bff_cookie_get(p, "a=x\\y", "a"));
    assert_null(bff_cookie_get(p, "a=x\x01y", "a"));
    assert_null(bff_cookie_get(p, "a=x\x7fy", "a"));
    assert_null(bff_cookie_get(p, "a=x\r\ny", "a"));
    assert_null(bff_cookie_get(p, "a=caf\xc3\xa9", "a"));
    /* A bad first copy is not skipped in favour of a later one. */
    assert_null(bff_cookie_get(p, "a=x y; a=good", "a"));
    /* A bad other cookie does not hide ours. */
    assert_string_equal(bff_cookie_get(p, "b=x y\x01\"; a=good", "a"), "good");
}

static void test_get_long(void **state)
{
    apr_pool_t *p = *state;
    char *v = apr_palloc(p, 5000);
    apr_array_header_t *parts;
    char *hdr;
    int i;

    memset(v, 'v', 4097);
    v[4096] = '\0';
    assert_string_equal(bff_cookie_get(p, apr_pstrcat(p, "a=", v, NULL), "a"), v);
    hdr = apr_pstrcat(p, "a=\"", v, "\"", NULL);
    assert_string_equal(bff_cookie_get(p, hdr, "a"), v);
    v[4096] = 'v';
    v[4097] = '\0';
    assert_null(bff_cookie_get(p, apr_pstrcat(p, "a=", v, NULL), "a"));

    /* A very long header of junk and many cookies: ours is still found. */
    parts = apr_array_make(p, 2001, sizeof(char *));
    for (i = 0; i < 2000; i++) {
        APR_ARRAY_PUSH(parts, char *) = apr_psprintf(p, "c%d=%d; ;;junk%d; ", i, i, i);
    }
    APR_ARRAY_PUSH(parts, char *) = apr_pstrdup(p, BFF "=found");
    hdr = apr_array_pstrcat(p, parts, 0);
    assert_true(strlen(hdr) > 40000);
    assert_string_equal(bff_cookie_get(p, hdr, BFF), "found");
    assert_string_equal(bff_cookie_get(p, hdr, "c1999"), "1999");
    assert_null(bff_cookie_get(p, hdr, "junk5"));
}

static void test_strip(void **state)
{
    apr_pool_t *p = *state;
    static const char *const ours[] = { BFF, "__Host-bff-state", NULL };
    static const char *const none[] = { NULL };

    assert_string_equal(bff_cookie_strip(p, "a=1; " BFF "=abc; b=2", ours), "a=1; b=2");
    assert_string_equal(bff_cookie_strip(p, BFF "=abc; a=1", ours), "a=1");
    assert_string_equal(bff_cookie_strip(p, "a=1; " BFF "=abc", ours), "a=1");
    /* All copies go, others keep their bytes and order. */
    assert_string_equal(
        bff_cookie_strip(p, "z=\"q\"; " BFF "=1; y=a=b; __Host-bff-state=s; " BFF "=2; x=", ours),
        "z=\"q\"; y=a=b; x=");
    /* Odd whitespace: pairs are trimmed, joined by "; "; values untouched. */
    assert_string_equal(bff_cookie_strip(p, "  a=1 ;;\t" BFF " = x ;b=2;  ", ours), "a=1; b=2");
    assert_string_equal(bff_cookie_strip(p, "a= 1 2 ;b=\t", ours), "a= 1 2; b=");
    /* Pairs without '=' are kept, unless they are one of our names. */
    assert_string_equal(bff_cookie_strip(p, "junk; " BFF "; a=1", ours), "junk; a=1");
    /* Case-sensitive, whole-name match. */
    assert_string_equal(bff_cookie_strip(p, "__host-http-bff=1; " BFF "x=2", ours),
                        "__host-http-bff=1; " BFF "x=2");
    /* Nothing left: NULL. */
    assert_null(bff_cookie_strip(p, BFF "=abc", ours));
    assert_null(bff_cookie_strip(p, BFF "=abc; __Host-bff-state=x;;", ours));
    assert_null(bff_cookie_strip(p, "", ours));
    assert_null(bff_cookie_strip(p, " ; ;", ours));
    assert_null(bff_cookie_strip(p, NULL, ours));
    /* No names: only normalised. */
    assert_string_equal(bff_cookie_strip(p, "a=1;b=2", none), "a=1; b=2");
    assert_string_equal(bff_cookie_strip(p, "a=1;b=2", NULL), "a=1; b=2");
}

static void test_strip_prefix(void **state)
{
    apr_pool_t *p = *state;
    static const char *const ours[] = { BFF, BFF "-tx", NULL };
    const char *pre = BFF "-tx.";

    assert_string_equal(bff_cookie_strip_prefix(p,
                                                "a=1; " BFF "-tx.AbCd1234=v; " BFF "-tx=b; " BFF
                                                "-tx.x=w; b=2",
                                                ours, pre),
                        "a=1; b=2");
    /* The prefix alone is no pending-login cookie; a near miss stays. */
    assert_string_equal(bff_cookie_strip_prefix(p, BFF "-tx.=1; " BFF "-txx.a=2", ours, pre),
                        BFF "-tx.=1; " BFF "-txx.a=2");
    assert_null(bff_cookie_strip_prefix(p, BFF "-tx.a=1;" BFF "-tx.b", ours, pre));
    assert_string_equal(bff_cookie_strip_prefix(p, "a=1; " BFF "-tx.a=1", ours, NULL),
                        "a=1; " BFF "-tx.a=1");
}

static void test_with_prefix(void **state)
{
    apr_pool_t *p = *state;
    const char *pre = BFF "-tx.";
    apr_array_header_t *a;
    const bff_cookie_pair_t *c;

    a = bff_cookie_with_prefix(p,
                               "a=1; " BFF "-tx.one=v1; " BFF "-tx=b; " BFF "-tx.two=\"v2\"; " BFF
                               "-tx.one=again; " BFF "-tx.bad=a,b; " BFF "-tx.noval; " BFF
                               "-tx.=empty; " BFF "-tx.three=",
                               pre, 10);
    assert_non_null(a);
    c = (const bff_cookie_pair_t *)a->elts;
    assert_int_equal(a->nelts, 3);
    assert_string_equal(c[0].name, BFF "-tx.one");
    assert_string_equal(c[0].value, "v1"); /* the first of a name decides */
    assert_string_equal(c[1].name, BFF "-tx.two");
    assert_string_equal(c[1].value, "v2");
    assert_string_equal(c[2].name, BFF "-tx.three");
    assert_string_equal(c[2].value, "");
    /* At most max. */
    a = bff_cookie_with_prefix(p, BFF "-tx.a=1; " BFF "-tx.b=2; " BFF "-tx.c=3", pre, 2);
    assert_int_equal(a->nelts, 2);
    assert_null(bff_cookie_with_prefix(p, "a=1; " BFF "-tx=2", pre, 4));
    assert_null(bff_cookie_with_prefix(p, NULL, pre, 4));
    assert_null(bff_cookie_with_prefix(p, BFF "-tx.a=1", pre, 0));
    assert_null(bff_cookie_with_prefix(p, BFF "-tx.a=1", "", 4));
}

static void test_strip_long(void **state)
{
    apr_pool_t *p = *state;
    static const char *const ours[] = { BFF, NULL };
    char *hdr = apr_palloc(p, 6001), *expect = apr_palloc(p, 9001);
    int i;

    /* Worst case for growth: many one-byte pairs without a space. */
    for (i = 0; i < 3000; i++) {
        memcpy(hdr + 2 * i, "a;", 2);
        memcpy(expect + 3 * i, "a; ", 3);
    }
    hdr[6000] = '\0';
    expect[8998] = '\0';
    assert_string_equal(bff_cookie_strip(p, hdr, ours), expect);
}

static void test_format(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bff_cookie_format(p, BFF, "abc", -1, BFF_SAMESITE_STRICT),
                        BFF "=abc; Path=/; Secure; HttpOnly; SameSite=Strict");
    assert_string_equal(bff_cookie_format(p, BFF, "abc-_", 3600, BFF_SAMESITE_LAX),
                        BFF "=abc-_; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=3600");
    /* Deletion. */
    assert_string_equal(bff_cookie_format(p, BFF, "", 0, BFF_SAMESITE_STRICT),
                        BFF "=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
    assert_string_equal(bff_cookie_format(p, BFF, NULL, 0, BFF_SAMESITE_STRICT),
                        BFF "=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
    assert_string_equal(bff_cookie_format(p, "n", "v", 9223372036854775807LL, BFF_SAMESITE_STRICT),
                        "n=v; Path=/; Secure; HttpOnly; SameSite=Strict; "
                        "Max-Age=9223372036854775807");
    assert_null(strstr(bff_cookie_format(p, BFF, "abc", 10, BFF_SAMESITE_LAX), "Domain"));

    /* Values must be cookie-octets. */
    assert_null(bff_cookie_format(p, BFF, "a b", -1, BFF_SAMESITE_STRICT));
    assert_null(bff_cookie_format(p, BFF, "a;b", -1, BFF_SAMESITE_STRICT));
    assert_null(bff_cookie_format(p, BFF, "a; Domain=evil", -1, BFF_SAMESITE_STRICT));
    assert_null(bff_cookie_format(p, BFF, "a,b", -1, BFF_SAMESITE_STRICT));
    assert_null(bff_cookie_format(p, BFF, "\"ab\"", -1, BFF_SAMESITE_STRICT));
    assert_null(bff_cookie_format(p, BFF, "a\\b", -1, BFF_SAMESITE_STRICT));
    assert_null(bff_cookie_format(p, BFF, "a\r\nSet-Cookie: x=y", -1, BFF_SAMESITE_STRICT));
    assert_null(bff_cookie_format(p, BFF, "a\x7f", -1, BFF_SAMESITE_STRICT));
    assert_null(bff_cookie_format(p, BFF, "\xc3\xa9", -1, BFF_SAMESITE_STRICT));
    /* Names must be tokens. */
    assert_null(bff_cookie_format(p, "a=b", "v", -1, BFF_SAMESITE_STRICT));
    assert_null(bff_cookie_format(p, "a b", "v", -1, BFF_SAMESITE_STRICT));
    assert_null(bff_cookie_format(p, "", "v", -1, BFF_SAMESITE_STRICT));
    assert_null(bff_cookie_format(p, NULL, "v", -1, BFF_SAMESITE_STRICT));
    /* Unknown SameSite value. */
    assert_null(bff_cookie_format(p, BFF, "v", -1, (bff_samesite_e)7));
}

static void test_format_long(void **state)
{
    apr_pool_t *p = *state;
    char *v = apr_palloc(p, 4100);

    memset(v, 'v', 4097);
    v[4096] = '\0';
    assert_non_null(bff_cookie_format(p, BFF, v, -1, BFF_SAMESITE_STRICT));
    v[4096] = 'v';
    v[4097] = '\0';
    assert_null(bff_cookie_format(p, BFF, v, -1, BFF_SAMESITE_STRICT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_name_ok, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_name_too_long, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_get, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_get_bad_values, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_get_long, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_strip, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_strip_long, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_strip_prefix, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_with_prefix, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_format, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_format_long, unit_pool_setup, unit_pool_teardown),
    };
    return unit_run("cookie", tests);
}
