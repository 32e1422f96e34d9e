/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include "bff_claims.h"

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);

    assert_non_null(j);
    return j;
}

static apr_array_header_t *vals(apr_pool_t *p, const char *a, const char *b)
{
    apr_array_header_t *v = apr_array_make(p, 2, sizeof(const char *));

    if (a) {
        APR_ARRAY_PUSH(v, const char *) = a;
    }
    if (b) {
        APR_ARRAY_PUSH(v, const char *) = b;
    }
    return v;
}

/* The text of a JSON value, or NULL; rv gets the status. */
static const char *text_of(apr_pool_t *p, const char *json, int for_header, apr_status_t *rv)
{
    json_t *j = parse(json);
    const char *out = "unset";

    *rv = bff_claims_text(p, j, for_header, &out);
    json_decref(j);
    if (*rv != APR_SUCCESS) {
        assert_null(out);
    }
    return out;
}

static void test_get(void **state)
{
    json_t *c = parse("{\"sub\":\"u1\",\"realm_access\":{\"roles\":[\"a\",\"b\"]},"
                      "\"https://example.com/roles\":[\"x\"],\"a.b\":1,\"a\":{\"b\":2},"
                      "\"s\":\"str\",\"n\":{\"x\":null}}");

    (void)state;
    assert_string_equal(json_string_value(bff_claims_get(c, "sub")), "u1");
    assert_true(json_is_array(bff_claims_get(c, "realm_access.roles")));
    assert_true(json_is_object(bff_claims_get(c, "realm_access")));
    /* a top-level name holding dots (and "//") wins over the dotted walk */
    assert_true(json_is_array(bff_claims_get(c, "https://example.com/roles")));
    assert_int_equal(json_integer_value(bff_claims_get(c, "a.b")), 1);
    /* a null claim is there (the caller decides what null means) */
    assert_true(json_is_null(bff_claims_get(c, "n.x")));
    /* missing steps */
    assert_null(bff_claims_get(c, "email"));
    assert_null(bff_claims_get(c, "realm_access.groups"));
    assert_null(bff_claims_get(c, "nope.roles"));
    assert_null(bff_claims_get(c, "realm_access.roles.x"));
    /* a step that is not an object */
    assert_null(bff_claims_get(c, "s.x"));
    assert_null(bff_claims_get(c, "sub.x.y"));
    /* empty segments */
    assert_null(bff_claims_get(c, ""));
    assert_null(bff_claims_get(c, "."));
    assert_null(bff_claims_get(c, ".sub"));
    assert_null(bff_claims_get(c, "sub."));
    assert_null(bff_claims_get(c, "realm_access..roles"));
    json_decref(c);
    /* ... even where an empty name exists: "" is a JSON name, never a step */
    c = parse("{\"\":{\"x\":1,\"\":{\"y\":2}},\"a\":{\"\":{\"b\":3}}}");
    assert_true(json_is_object(bff_claims_get(c, "a")));
    assert_null(bff_claims_get(c, ".x"));
    assert_null(bff_claims_get(c, "..y"));
    assert_null(bff_claims_get(c, "a..b"));
    assert_null(bff_claims_get(c, ""));
    /* not an object, no path */
    assert_null(bff_claims_get(NULL, "sub"));
    assert_null(bff_claims_get(c, NULL));
    assert_null(bff_claims_get(json_object_get(c, "s"), "sub"));
    json_decref(c);
}

static void test_get_limits(void **state)
{
    apr_pool_t *p = *state;
    /* 9 levels: a.a.a.a.a.a.a.a.a */
    json_t *c = parse(
        "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":\"deep\"}}}}}}}}}");
    char *name = apr_palloc(p, BFF_CLAIMS_MAX_PATH + 2);
    json_t *top = json_object();

    assert_true(json_is_object(bff_claims_get(c, "a.a.a.a.a.a.a.a"))); /* 8 steps */
    assert_null(bff_claims_get(c, "a.a.a.a.a.a.a.a.a"));               /* 9: too deep */
    json_decref(c);

    /* too long: a name of exactly BFF_CLAIMS_MAX_PATH is found, one more is not */
    memset(name, 'n', BFF_CLAIMS_MAX_PATH + 1);
    name[BFF_CLAIMS_MAX_PATH + 1] = '\0';
    json_object_set_new(top, name, json_true());
    assert_null(bff_claims_get(top, name));
    name[BFF_CLAIMS_MAX_PATH] = '\0';
    json_object_set_new(top, name, json_true());
    assert_true(json_is_true(bff_claims_get(top, name)));
    json_decref(top);
}

static void test_match(void **state)
{
    apr_pool_t *p = *state;
    json_t *c = parse("{\"email\":\"a@x\",\"groups\":[\"staff\",\"admin\"],\"n\":42,\"r\":1.5,"
                      "\"t\":true,\"f\":false,\"o\":{\"admin\":\"admin\"},\"z\":null,"
                      "\"mix\":[7,false,[\"admin\"],{\"a\":\"admin\"},null],\"e\":[],"
                      "\"nul\":\"admin\\u0000x\"}");

    assert_true(bff_claims_match(bff_claims_get(c, "email"), vals(p, "a@x", NULL)));
    assert_true(bff_claims_match(bff_claims_get(c, "email"), vals(p, "b@x", "a@x")));
    assert_false(bff_claims_match(bff_claims_get(c, "email"), vals(p, "A@X", NULL)));
    assert_false(bff_claims_match(bff_claims_get(c, "email"), vals(p, "a@", NULL)));
    /* array containment */
    assert_true(bff_claims_match(bff_claims_get(c, "groups"), vals(p, "admin", NULL)));
    assert_true(bff_claims_match(bff_claims_get(c, "groups"), vals(p, "x", "staff")));
    assert_false(bff_claims_match(bff_claims_get(c, "groups"), vals(p, "adm", "staff,admin")));
    /* numbers and booleans as JSON text */
    assert_true(bff_claims_match(bff_claims_get(c, "n"), vals(p, "42", NULL)));
    assert_false(bff_claims_match(bff_claims_get(c, "n"), vals(p, "42.0", NULL)));
    assert_true(bff_claims_match(bff_claims_get(c, "r"), vals(p, "1.5", NULL)));
    assert_true(bff_claims_match(bff_claims_get(c, "t"), vals(p, "true", NULL)));
    assert_false(bff_claims_match(bff_claims_get(c, "t"), vals(p, "1", NULL)));
    assert_true(bff_claims_match(bff_claims_get(c, "f"), vals(p, "false", NULL)));
    assert_true(bff_claims_match(bff_claims_get(c, "mix"), vals(p, "7", NULL)));
    assert_true(bff_claims_match(bff_claims_get(c, "mix"), vals(p, "false", NULL)));
    /* objects, null, nested arrays never */
    assert_false(
        bff_claims_match(bff_claims_get(c, "o"), vals(p, "admin", "{\"admin\":\"admin\"}")));
    assert_false(bff_claims_match(bff_claims_get(c, "z"), vals(p, "null", "")));
    assert_false(bff_claims_match(bff_claims_get(c, "mix"), vals(p, "admin", "null")));
    assert_false(bff_claims_match(bff_claims_get(c, "e"), vals(p, "", "[]")));
    /* an embedded NUL does not cut the claim short */
    assert_false(bff_claims_match(bff_claims_get(c, "nul"), vals(p, "admin", NULL)));
    /* an empty values list, an absent claim: never */
    assert_false(bff_claims_match(bff_claims_get(c, "email"), vals(p, NULL, NULL)));
    assert_false(bff_claims_match(bff_claims_get(c, "groups"), vals(p, NULL, NULL)));
    assert_false(bff_claims_match(NULL, vals(p, "admin", NULL)));
    assert_false(bff_claims_match(bff_claims_get(c, "email"), NULL));
    json_decref(c);
}

static void test_text_forms(void **state)
{
    apr_pool_t *p = *state;
    apr_status_t rv;

    assert_string_equal(text_of(p, "\"a@x\"", 1, &rv), "a@x");
    assert_string_equal(text_of(p, "\"\"", 1, &rv), "");
    assert_string_equal(text_of(p, "\"tab\\there\"", 1, &rv), "tab\there");
    assert_string_equal(text_of(p, "42", 1, &rv), "42");
    assert_string_equal(text_of(p, "-7", 0, &rv), "-7");
    assert_string_equal(text_of(p, "1.5", 1, &rv), "1.5");
    assert_string_equal(text_of(p, "true", 1, &rv), "true");
    assert_string_equal(text_of(p, "false", 0, &rv), "false");
    assert_string_equal(text_of(p, "[\"staff\",\"admin\"]", 1, &rv), "staff,admin");
    assert_string_equal(text_of(p, "[\"a\",1,true]", 1, &rv), "a,1,true");
    assert_string_equal(text_of(p, "[]", 1, &rv), "");
    /* a string with a comma would read as two values: JSON instead */
    assert_string_equal(text_of(p, "[\"a,b\",\"c\"]", 1, &rv), "[\"a,b\",\"c\"]");
    /* mixed arrays and objects as compact JSON */
    assert_string_equal(text_of(p, "[\"a\",null]", 1, &rv), "[\"a\",null]");
    assert_string_equal(text_of(p, "[\"a\",[\"b\"]]", 1, &rv), "[\"a\",[\"b\"]]");
    assert_string_equal(text_of(p, "{\"roles\": [\"a\", \"b\"], \"n\": 1}", 1, &rv),
                        "{\"roles\":[\"a\",\"b\"],\"n\":1}");
    /* control characters inside an object are escaped by JSON: allowed */
    assert_string_equal(text_of(p, "{\"x\":\"a\\r\\nb\"}", 1, &rv), "{\"x\":\"a\\r\\nb\"}");
    /* null and absent */
    assert_null(text_of(p, "null", 0, &rv));
    assert_int_equal(rv, APR_NOTFOUND);
    assert_null(text_of(p, "null", 1, &rv));
    assert_int_equal(rv, APR_NOTFOUND);
    {
        const char *out = "unset";
        assert_int_equal(bff_claims_text(p, NULL, 0, &out), APR_NOTFOUND);
        assert_null(out);
    }
}

/* A value refused for both env and header. */
static void refused_both(apr_pool_t *p, const char *json)
{
    apr_status_t rv;

    assert_null(text_of(p, json, 0, &rv));
    assert_int_equal(rv, APR_EINVAL);
    assert_null(text_of(p, json, 1, &rv));
    assert_int_equal(rv, APR_EINVAL);
}

static void test_text_refuses(void **state)
{
    apr_pool_t *p = *state;
    apr_status_t rv;

    refused_both(p, "\"a\\r\\nX-Injected: 1\"");
    refused_both(p, "\"a\\rb\"");
    refused_both(p, "\"a\\nb\"");
    refused_both(p, "\"a\\u0000b\"");
    refused_both(p, "\"a\\u007fb\"");
    refused_both(p, "\"a\\u001bb\"");
    refused_both(p, "[\"ok\",\"a\\nb\"]");
    refused_both(p, "[\"a\\u0000\"]");
    refused_both(p, "{\"k\":\"a\\u007f\"}");
    /* UTF-8: fine for an environment variable, never in a header */
    assert_string_equal(text_of(p, "\"Jos\\u00e9\"", 0, &rv), "Jos\xc3\xa9");
    assert_null(text_of(p, "\"Jos\\u00e9\"", 1, &rv));
    assert_int_equal(rv, APR_EINVAL);
    assert_string_equal(text_of(p, "[\"caf\\u00e9\",\"x\"]", 0, &rv), "caf\xc3\xa9,x");
    assert_null(text_of(p, "[\"caf\\u00e9\",\"x\"]", 1, &rv));
    assert_null(text_of(p, "{\"n\":\"\\u00e9\"}", 1, &rv));
    assert_int_equal(rv, APR_EINVAL);
    /* every visible ASCII byte, space and tab pass in a header */
    {
        char all[0x7f - 0x20 + 2];
        json_t *j;
        const char *out = NULL;
        int c;

        for (c = 0x20; c < 0x7f; c++) {
            all[c - 0x20] = (char)c;
        }
        all[0x7f - 0x20] = '\t';
        all[sizeof(all) - 1] = '\0';
        j = json_string(all);
        assert_int_equal(bff_claims_text(p, j, 1, &out), APR_SUCCESS);
        assert_string_equal(out, all);
        json_decref(j);
    }
}

static void check_len(apr_pool_t *p, json_t *j, int ok)
{
    const char *out = "unset";
    int h;

    for (h = 0; h <= 1; h++) {
        if (ok) {
            assert_int_equal(bff_claims_text(p, j, h, &out), APR_SUCCESS);
            assert_int_equal(strlen(out), BFF_CLAIMS_MAX_VALUE);
        }
        else {
            assert_int_equal(bff_claims_text(p, j, h, &out), APR_EINVAL);
            assert_null(out);
        }
    }
    json_decref(j);
}

static void test_text_length(void **state)
{
    apr_pool_t *p = *state;
    char *s = apr_palloc(p, BFF_CLAIMS_MAX_VALUE + 2);

    /* a string exactly at the limit, then one byte over */
    memset(s, 'v', BFF_CLAIMS_MAX_VALUE + 1);
    s[BFF_CLAIMS_MAX_VALUE] = '\0';
    check_len(p, json_string(s), 1);
    s[BFF_CLAIMS_MAX_VALUE] = 'v';
    s[BFF_CLAIMS_MAX_VALUE + 1] = '\0';
    check_len(p, json_string(s), 0);
}

static void test_text_length_join(void **state)
{
    apr_pool_t *p = *state;
    char half[BFF_CLAIMS_MAX_VALUE / 2 + 1];
    const char *out = NULL;
    json_t *j;

    memset(half, 'g', sizeof(half) - 1);
    half[sizeof(half) - 1] = '\0';
    /* 2048 + 1 + 2047 = 4096: at the limit */
    check_len(p, json_pack("[s,s]", half, half + 1), 1);
    /* 2048 + 1 + 2048 = 4097: over */
    check_len(p, json_pack("[s,s]", half, half), 0);
    /* many short elements over the limit */
    j = json_array();
    for (int i = 0; i < BFF_CLAIMS_MAX_VALUE; i++) {
        json_array_append_new(j, json_string("x"));
    }
    assert_int_equal(bff_claims_text(p, j, 0, &out), APR_EINVAL);
    json_decref(j);
    /* compact JSON at and over the limit: {"k":"..."} is 8 bytes + the string */
    {
        char *s = apr_palloc(p, BFF_CLAIMS_MAX_VALUE);

        memset(s, 'o', BFF_CLAIMS_MAX_VALUE - 8);
        s[BFF_CLAIMS_MAX_VALUE - 8] = '\0';
        check_len(p, json_pack("{s:s}", "k", s), 1);
        check_len(p, json_pack("{s:s}", "kk", s), 0);
    }
}

static void test_env_name(void **state)
{
    apr_pool_t *p = *state;
    char *longest = apr_palloc(p, BFF_CLAIMS_MAX_PATH + 2);

    assert_string_equal(bff_claims_env_name(p, "email"), "BFF_CLAIM_EMAIL");
    assert_string_equal(bff_claims_env_name(p, "groups"), "BFF_CLAIM_GROUPS");
    assert_string_equal(bff_claims_env_name(p, "realm_access.roles"),
                        "BFF_CLAIM_REALM_ACCESS_ROLES");
    assert_string_equal(bff_claims_env_name(p, "preferredUsername"), "BFF_CLAIM_PREFERREDUSERNAME");
    assert_string_equal(bff_claims_env_name(p, "https://ex.com/roles"),
                        "BFF_CLAIM_HTTPS___EX_COM_ROLES");
    assert_string_equal(bff_claims_env_name(p, ".x."), "BFF_CLAIM__X_");
    assert_string_equal(bff_claims_env_name(p, "2fa"), "BFF_CLAIM_2FA");
    assert_string_equal(bff_claims_env_name(p, "caf\xc3\xa9"), "BFF_CLAIM_CAF__");
    assert_string_equal(bff_claims_env_name(p, "a b=c\r\n"), "BFF_CLAIM_A_B_C__");
    assert_string_equal(bff_claims_env_name(p, "_"), "BFF_CLAIM__");
    assert_null(bff_claims_env_name(p, ""));
    assert_null(bff_claims_env_name(p, NULL));
    memset(longest, 'a', BFF_CLAIMS_MAX_PATH + 1);
    longest[BFF_CLAIMS_MAX_PATH + 1] = '\0';
    assert_null(bff_claims_env_name(p, longest));
    longest[BFF_CLAIMS_MAX_PATH] = '\0';
    assert_int_equal(strlen(bff_claims_env_name(p, longest)),
                     strlen("BFF_CLAIM_") + BFF_CLAIMS_MAX_PATH);
}

/* An HTTP token made of [A-Za-z0-9-] only. */
static void assert_header_token(const char *h)
{
    assert_non_null(h);
    for (; *h; h++) {
        assert_true((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9')
                    || *h == '-');
    }
}

static void test_header_name(void **state)
{
    apr_pool_t *p = *state;
    static const char *const odd[] = { "a b:c\r\nX-Evil: 1", "\xff\xfe", "..", "-", "x\ty" };
    char *longest = apr_palloc(p, BFF_CLAIMS_MAX_PATH + 2);
    size_t i;

    assert_string_equal(bff_claims_header_name(p, "email"), "X-BFF-Claim-Email");
    assert_string_equal(bff_claims_header_name(p, "groups"), "X-BFF-Claim-Groups");
    assert_string_equal(bff_claims_header_name(p, "realm_access.roles"),
                        "X-BFF-Claim-Realm-Access-Roles");
    assert_string_equal(bff_claims_header_name(p, "preferred_username"),
                        "X-BFF-Claim-Preferred-Username");
    assert_string_equal(bff_claims_header_name(p, "givenName"), "X-BFF-Claim-GivenName");
    assert_string_equal(bff_claims_header_name(p, "_x_"), "X-BFF-Claim--X-");
    assert_string_equal(bff_claims_header_name(p, "2fa.level"), "X-BFF-Claim-2fa-Level");
    assert_string_equal(bff_claims_header_name(p, "https://ex.com/roles"),
                        "X-BFF-Claim-Https---Ex-Com-Roles");
    for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        const char *h = bff_claims_header_name(p, odd[i]);

        assert_header_token(h);
        assert_int_equal(strlen(h), strlen(BFF_CLAIMS_HEADER_PREFIX) + strlen(odd[i]));
        assert_int_equal(strncasecmp(h, BFF_CLAIMS_HEADER_PREFIX, strlen(BFF_CLAIMS_HEADER_PREFIX)),
                         0);
    }
    assert_null(bff_claims_header_name(p, ""));
    assert_null(bff_claims_header_name(p, NULL));
    memset(longest, 'a', BFF_CLAIMS_MAX_PATH + 1);
    longest[BFF_CLAIMS_MAX_PATH + 1] = '\0';
    assert_null(bff_claims_header_name(p, longest));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_get_limits, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_match, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_text_forms, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_text_refuses, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_text_length, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_text_length_join, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_env_name, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_header_name, unit_pool_setup, unit_pool_teardown),
    };
    return unit_run("claims", tests);
}
