/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <string.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include "bff_url.h"

static void test_return_to_accepts(void **state)
{
    apr_pool_t *p = *state;
    char *longest;

    (void)p;
    assert_true(bff_url_return_to_ok("/"));
    assert_true(bff_url_return_to_ok("/app"));
    assert_true(bff_url_return_to_ok("/app/"));
    assert_true(bff_url_return_to_ok("/app?x=1#frag"));
    assert_true(bff_url_return_to_ok("/app/page?next=//x"));     /* query is no authority */
    assert_true(bff_url_return_to_ok("/app?next=https://evil")); /* nor is the query a scheme */
    assert_true(bff_url_return_to_ok("/app#/route/%2F"));
    assert_true(bff_url_return_to_ok("/a//b")); /* "//" later is a path */
    assert_true(bff_url_return_to_ok("/a%20b"));
    assert_true(bff_url_return_to_ok("/caf%C3%A9")); /* encoded UTF-8 */
    assert_true(bff_url_return_to_ok("/@evil.com")); /* a path segment */
    assert_true(bff_url_return_to_ok("/x:y"));
    assert_true(bff_url_return_to_ok("/a/.b/..c/...")); /* dots inside names are no segments */
    assert_true(bff_url_return_to_ok("/q?a={b}|c^d"));
    assert_true(bff_url_return_to_ok("/discount%2550")); /* "%50" then "P" */
    assert_true(bff_url_return_to_ok("/a?x=%2F%2Fy"));
    assert_true(bff_url_return_to_ok("/%252541")); /* "/A" after 3 levels */

    /* 2048 bytes is the limit. */
    longest = apr_palloc(p, 2050);
    memset(longest, 'a', 2049);
    longest[0] = '/';
    longest[2048] = '\0';
    assert_true(bff_url_return_to_ok(longest));
}

static void test_return_to_refuses(void **state)
{
    apr_pool_t *p = *state;
    char *overlong;
    static const char *const bad[] = {
        NULL,
        "",
        "//evil.com",
        "//evil.com/path",
        "///evil",
        "/\\evil.com",
        "\\\\evil.com",
        "/a\\b",
        "/%2F/evil",
        "/%2f/evil",
        "/%2F%2Fevil",
        "/%5Cevil",
        "/%5cevil",
        "/%5C%5Cevil",
        "%2F%2Fevil",
        "%2Fevil",
        "/%252F%252Fevil",     /* double-encoded: "/%2F%2Fevil", then "//evil" */
        "/%25252F%25252Fevil", /* triple */
        "/%2525252525252Fx",   /* "//x" after six rounds */
        "/%25252541",          /* harmless "/A", but 4 levels of encoding */
        "/%255Cevil",
        "/a%5Cb", /* a backslash after decoding, past the start */
        "/a%5cb/c",
        "/a/b%5C",
        "/a%255Cb",
        "https://evil",
        "http://evil.com/",
        "HTTPS://evil",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,x",
        "mailto:x@evil.com",
        "@evil.com",
        "evil.com",
        "evil.com/path",
        "app",
        "?x=1",
        "#frag",
        "./x",
        "../x",
        "/path\r\nSet-Cookie:x",
        "/path\nLocation:x",
        "/path\rx",
        "/a b",
        " /a",
        "/a ",
        "\t/x",
        "/\t/evil",
        "/x\t",
        "/%09/evil",
        "/%0D%0ASet-Cookie:x",
        "/%0a",
        "/%7F",
        "/%00",
        "/a%00b",
        "/a%2500", /* NUL after a second decoding */
        "/\x7f",
        "/\x01",
        "/caf\xc3\xa9", /* raw non-ASCII */
        "/\xff",
        "/%C0%AF", /* overlong '/' */
        "/%C0%AFevil",
        "/%E0%80%AF",
        "/%ED%A0%80",    /* surrogate */
        "/%F4%90%80%80", /* above U+10FFFF */
        "/%FF",
        "/%C3", /* truncated sequence */
        "/%",   /* malformed escapes */
        "/%2",
        "/%zz",
        "/100%",
        "/.//evil", /* dot-segments (see bff_url.c) */
        "/./evil",
        "/../evil",
        "/a/../b",
        "/a/..",
        "/a/.",
        "/.",
        "/..?x",
        "/.#x",
        "/%2E%2E/evil",
        "/%2e/%2Fevil",
        "/a\"b",
        "/a<script>",
        "/a>b",
        "/a`b",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bff_url_return_to_ok(bad[i])) {
            fail_msg("accepted return target #%u: %s", (unsigned)i, bad[i] ? bad[i] : "(null)");
        }
    }

    overlong = apr_palloc(p, 5000);
    memset(overlong, 'a', 4999);
    overlong[0] = '/';
    overlong[2049] = '\0';
    assert_false(bff_url_return_to_ok(overlong));
    overlong[2049] = 'a';
    overlong[4999] = '\0';
    assert_false(bff_url_return_to_ok(overlong));
}

static void test_parse_query(void **state)
{
    apr_pool_t *p = *state;
    apr_table_t *t;
    const apr_array_header_t *arr;
    const apr_table_entry_t *e;
    char *many;
    int i;

    assert_int_equal(bff_url_parse_query(p, "code=abc%2Bd&state=x+y&iss=https%3A%2F%2Fidp", &t),
                     APR_SUCCESS);
    assert_string_equal(apr_table_get(t, "code"), "abc+d");
    assert_string_equal(apr_table_get(t, "state"), "x y");
    assert_string_equal(apr_table_get(t, "iss"), "https://idp");
    assert_string_equal(apr_table_get(t, "STATE"), "x y");
    assert_null(apr_table_get(t, "nonce"));

    /* Repeated names kept in order, empty pairs skipped, bare names. */
    assert_int_equal(bff_url_parse_query(p, "&a=1&&a=2&flag&=orphan&b=&", &t), APR_SUCCESS);
    arr = apr_table_elts(t);
    e = (const apr_table_entry_t *)arr->elts;
    assert_int_equal(arr->nelts, 4);
    assert_string_equal(e[0].key, "a");
    assert_string_equal(e[0].val, "1");
    assert_string_equal(e[1].key, "a");
    assert_string_equal(e[1].val, "2");
    assert_string_equal(e[2].key, "flag");
    assert_string_equal(e[2].val, "");
    assert_string_equal(e[3].key, "b");
    assert_string_equal(e[3].val, "");
    assert_string_equal(apr_table_get(t, "a"), "1");

    assert_int_equal(bff_url_parse_query(p, "", &t), APR_SUCCESS);
    assert_int_equal(apr_table_elts(t)->nelts, 0);
    assert_int_equal(bff_url_parse_query(p, NULL, &t), APR_SUCCESS);
    assert_int_equal(apr_table_elts(t)->nelts, 0);
    /* '=' inside a value stays. */
    assert_int_equal(bff_url_parse_query(p, "x=a=b", &t), APR_SUCCESS);
    assert_string_equal(apr_table_get(t, "x"), "a=b");

    /* Malformed escapes and encoded NULs. */
    t = NULL;
    assert_int_equal(bff_url_parse_query(p, "a=%zz", &t), APR_EINVAL);
    assert_null(t);
    assert_int_equal(bff_url_parse_query(p, "a=1&b=%", &t), APR_EINVAL);
    assert_int_equal(bff_url_parse_query(p, "a%0=1", &t), APR_EINVAL);
    assert_int_equal(bff_url_parse_query(p, "a=x%00y", &t), APR_EINVAL);
    assert_int_equal(bff_url_parse_query(p, "a", NULL), APR_EINVAL);

    /* At most 64 parameters. */
    many = apr_pstrdup(p, "");
    for (i = 0; i < 64; i++) {
        many = apr_psprintf(p, "%s&p%d=%d", many, i, i);
    }
    assert_int_equal(bff_url_parse_query(p, many, &t), APR_SUCCESS);
    assert_int_equal(apr_table_elts(t)->nelts, 64);
    assert_string_equal(apr_table_get(t, "p63"), "63");
    many = apr_pstrcat(p, many, "&one=more", NULL);
    assert_int_equal(bff_url_parse_query(p, many, &t), APR_EINVAL);
}

static void test_parse_ok(void **state)
{
    apr_pool_t *p = *state;
    bff_url_t u;

    assert_int_equal(bff_url_parse(p, "https://idp.example.com", &u), APR_SUCCESS);
    assert_string_equal(u.scheme, "https");
    assert_string_equal(u.host, "idp.example.com");
    assert_int_equal(u.port, 443);
    assert_string_equal(u.path, "/");
    assert_null(u.query);

    assert_int_equal(bff_url_parse(p, "http://app.example:8080/cb/x?a=1&b=/c", &u), APR_SUCCESS);
    assert_string_equal(u.scheme, "http");
    assert_string_equal(u.host, "app.example");
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.path, "/cb/x");
    assert_string_equal(u.query, "a=1&b=/c");

    assert_int_equal(bff_url_parse(p, "HTTPS://IdP.Example/realms/x/", &u), APR_SUCCESS);
    assert_string_equal(u.scheme, "https");
    assert_string_equal(u.host, "IdP.Example");
    assert_string_equal(u.path, "/realms/x/");

    assert_int_equal(bff_url_parse(p, "http://[::1]:9000/cb", &u), APR_SUCCESS);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 9000);
    assert_string_equal(u.path, "/cb");

    assert_int_equal(bff_url_parse(p, "https://[2001:db8::1]", &u), APR_SUCCESS);
    assert_string_equal(u.host, "2001:db8::1");
    assert_int_equal(u.port, 443);

    assert_int_equal(bff_url_parse(p, "http://127.0.0.1:65535?x", &u), APR_SUCCESS);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 65535);
    assert_string_equal(u.path, "/");
    assert_string_equal(u.query, "x");

    assert_int_equal(bff_url_parse(p, "http://h/p?", &u), APR_SUCCESS);
    assert_string_equal(u.query, "");
    assert_int_equal(bff_url_parse(p, "http://h:1", &u), APR_SUCCESS);
    assert_int_equal(u.port, 1);
    /* '@' after the authority is only a path character. */
    assert_int_equal(bff_url_parse(p, "https://h/users/@me", &u), APR_SUCCESS);
    assert_string_equal(u.path, "/users/@me");
}

static void test_parse_refuses(void **state)
{
    apr_pool_t *p = *state;
    bff_url_t u;
    apr_size_t i;
    static const char *const bad[] = {
        NULL,
        "",
        "idp.example.com",
        "/path",
        "//idp.example.com/",
        "ftp://idp.example.com/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https:/idp.example.com",
        "https:idp.example.com",
        "https://",
        "https:///path",
        "https://?x",
        "https://:443/",
        "https://user@idp.example.com/",
        "https://user:pw@idp.example.com/",
        "https://@idp.example.com/",
        "https://idp.example.com@evil.com/",
        "https://idp.example.com/#frag",
        "https://idp.example.com#",
        "https://idp.example.com/ path",
        "https://idp.example.com/\tpath",
        " https://idp.example.com/",
        "https://idp.example.com/\r\n",
        "https://idp.exa\x01mple.com/",
        "https://idp.example.com/\x7f",
        "https://idp.ex\xc3\xa4mple.com/",
        "https://idp.example.com\\@evil.com/",
        "https://idp.example.com:/",
        "https://idp.example.com:0/",
        "https://idp.example.com:65536/",
        "https://idp.example.com:99999/",
        "https://idp.example.com:123456/",
        "https://idp.example.com:-1/",
        "https://idp.example.com:+80/",
        "https://idp.example.com:80a/",
        "https://idp.example.com:80:81/",
        "https://idp%2eexample.com/",
        "https://[::1/",
        "https://[]/",
        "https://[::1]x/",
        "https://[::1]:/",
        "https://[not-ipv6]/",
        "https://[fe80::1%25eth0]/",
        "https://[127.0.0.1]/",
        "https://::1/",
        "https://a<b/",
        "https://h/\"x",
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bff_url_parse(p, bad[i], &u) == APR_SUCCESS) {
            fail_msg("accepted URL #%u: %s", (unsigned)i, bad[i] ? bad[i] : "(null)");
        }
    }
    assert_int_equal(bff_url_parse(p, "https://h/", NULL), APR_EINVAL);
}

static void test_parse_userinfo(void **state)
{
    apr_pool_t *p = *state;
    bff_url_t u;
    apr_size_t i;
    static const char *const bad[] = {
        "https://user@idp.example.com/", "https://user:pw@idp.example.com/",
        "https://@idp.example.com/",     "https://idp.example.com@evil.com/",
        "https://[::1]:443@evil.com/",   "http://127.0.0.1:8080@evil.com",
    };

    /* Refused as userinfo, not by chance of the host or port checks. */
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bff_url_parse(p, bad[i], &u) != APR_EACCES) {
            fail_msg("not refused as userinfo #%u: %s", (unsigned)i, bad[i]);
        }
    }
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(bff_url_host_is_loopback("localhost"));
    assert_true(bff_url_host_is_loopback("LocalHost"));
    assert_true(bff_url_host_is_loopback("app.localhost"));
    assert_true(bff_url_host_is_loopback("a.b-c.localhost"));
    assert_true(bff_url_host_is_loopback("127.0.0.1"));
    assert_true(bff_url_host_is_loopback("127.1.2.3"));
    assert_true(bff_url_host_is_loopback("127.255.255.255"));
    assert_true(bff_url_host_is_loopback("::1"));
    assert_true(bff_url_host_is_loopback("0:0:0:0:0:0:0:1"));
    assert_true(bff_url_host_is_loopback("::ffff:127.0.0.1"));

    assert_false(bff_url_host_is_loopback(NULL));
    assert_false(bff_url_host_is_loopback(""));
    assert_false(bff_url_host_is_loopback(".localhost"));
    assert_false(bff_url_host_is_loopback("a..localhost"));
    assert_false(bff_url_host_is_loopback("..localhost"));
    assert_false(bff_url_host_is_loopback("evil/.localhost"));
    assert_false(bff_url_host_is_loopback("localhost.evil.com"));
    assert_false(bff_url_host_is_loopback("evillocalhost"));
    assert_false(bff_url_host_is_loopback("localhost."));
    assert_false(bff_url_host_is_loopback("127.0.0.1.evil.com"));
    assert_false(bff_url_host_is_loopback("127.0.0.1."));
    assert_false(bff_url_host_is_loopback("127.0.0"));
    assert_false(bff_url_host_is_loopback("127.1"));
    assert_false(bff_url_host_is_loopback("127"));
    assert_false(bff_url_host_is_loopback("127.0.0.256"));
    assert_false(bff_url_host_is_loopback("127.0.0.01"));
    assert_false(bff_url_host_is_loopback("0177.0.0.1"));
    assert_false(bff_url_host_is_loopback("127.0.0.1 "));
    assert_false(bff_url_host_is_loopback("127.0.0.-1"));
    assert_false(bff_url_host_is_loopback("127..0.1"));
    assert_false(bff_url_host_is_loopback("2130706433"));
    assert_false(bff_url_host_is_loopback("0x7f.0.0.1"));
    assert_false(bff_url_host_is_loopback("128.0.0.1"));
    assert_false(bff_url_host_is_loopback("10.0.0.1"));
    assert_false(bff_url_host_is_loopback("0.0.0.0"));
    assert_false(bff_url_host_is_loopback("[::1]"));
    assert_false(bff_url_host_is_loopback("::2"));
    assert_false(bff_url_host_is_loopback("::"));
    assert_false(bff_url_host_is_loopback("::ffff:10.0.0.1"));
    assert_false(bff_url_host_is_loopback("idp.example.com"));
}

static void test_add_param(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bff_url_add_param(p, "https://idp/auth", "state", "a b"),
                        "https://idp/auth?state=a%20b");
    assert_string_equal(bff_url_add_param(p, "https://idp/auth?x=1", "redirect_uri",
                                          "https://app/cb"),
                        "https://idp/auth?x=1&redirect_uri=https%3A%2F%2Fapp%2Fcb");
    assert_string_equal(bff_url_add_param(p, "https://idp/auth?", "a", "1"),
                        "https://idp/auth?a=1");
    assert_string_equal(bff_url_add_param(p, "https://idp/auth?x=1&", "a", "1"),
                        "https://idp/auth?x=1&a=1");
    assert_string_equal(bff_url_add_param(p, "/app#frag?x", "a&b", "c=d"),
                        "/app?a%26b=c%3Dd#frag?x");
    assert_string_equal(bff_url_add_param(p, "/app?y=2#f", "a", NULL), "/app?y=2&a=#f");
    assert_string_equal(bff_url_add_param(p, "", "a", "1"), "?a=1");
    assert_null(bff_url_add_param(p, NULL, "a", "1"));
    assert_null(bff_url_add_param(p, "/x", NULL, "1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_return_to_accepts, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_return_to_refuses, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_parse_query, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_parse_ok, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_parse_refuses, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_parse_userinfo, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_loopback, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_add_param, unit_pool_setup, unit_pool_teardown),
    };
    return unit_run("url", tests);
}
