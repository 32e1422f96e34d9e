/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "bff_session.h"

#define MIN_SESSION "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2}"
#define MIN_TXN "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\"," \
                "\"return_to\":\"/\",\"binder_hash\":\"ab\",\"expires\":9}"

static const char CLAIMS[] = "{\"sub\":\"alice\",\"name\":\"Al\xc3\xaf" "ce\",\"groups\":[\"a\",\"b\"],"
                             "\"n\":1,\"o\":{\"x\":null}}";

static bff_session_t full_session(void)
{
    bff_session_t s;

    memset(&s, 0, sizeof(s));
    s.rev = APR_INT64_MAX;
    s.iss = "https://idp.example/realms/x";
    s.sub = "alice";
    s.sid = "sid-1";
    s.access_token = "eyJhbGciOiJSUzI1NiJ9.at.sig";
    s.token_type = "Bearer";
    s.refresh_token = "rt-\xc3\xa9\"quoted\"\\";
    s.id_token = "eyJ.idt.sig";
    s.claims = CLAIMS;
    s.logout_id = "logout-xyz";
    s.at_expires = 1700000300;
    s.at_issued = 1700000000;
    s.created = 1700000000;
    s.last_access = 1700000100;
    s.expires = APR_INT64_MAX;
    return s;
}

static bff_txn_t full_txn(void)
{
    bff_txn_t t;

    t.state = "state-123";
    t.nonce = "nonce-456";
    t.code_verifier = "verifier-abcdefghijklmnopqrstuvwxyz0123456789-._~";
    t.return_to = "/app/page?x=1#frag";
    t.binder_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    t.created = 1700000000;
    t.expires = 1700000600;
    return t;
}

static void assert_str_or_null(const char *a, const char *b)
{
    if (!a || !b) {
        assert_ptr_equal(a, b);
    }
    else {
        assert_string_equal(a, b);
    }
}

static void assert_session_equal(const bff_session_t *a, const bff_session_t *b)
{
    assert_true(a->rev == b->rev);
    assert_str_or_null(a->iss, b->iss);
    assert_str_or_null(a->sub, b->sub);
    assert_str_or_null(a->sid, b->sid);
    assert_str_or_null(a->access_token, b->access_token);
    assert_str_or_null(a->token_type, b->token_type);
    assert_str_or_null(a->refresh_token, b->refresh_token);
    assert_str_or_null(a->id_token, b->id_token);
    assert_str_or_null(a->claims, b->claims);
    assert_str_or_null(a->logout_id, b->logout_id);
    assert_true(a->at_expires == b->at_expires);
    assert_true(a->at_issued == b->at_issued);
    assert_true(a->created == b->created);
    assert_true(a->last_access == b->last_access);
    assert_true(a->expires == b->expires);
}

static void assert_txn_equal(const bff_txn_t *a, const bff_txn_t *b)
{
    assert_str_or_null(a->state, b->state);
    assert_str_or_null(a->nonce, b->nonce);
    assert_str_or_null(a->code_verifier, b->code_verifier);
    assert_str_or_null(a->return_to, b->return_to);
    assert_str_or_null(a->binder_hash, b->binder_hash);
    assert_true(a->created == b->created);
    assert_true(a->expires == b->expires);
}

/* Decodes a heap copy of exactly len bytes, so ASan sees any over-read. */
static apr_status_t decode_copy(apr_pool_t *p, const char *in, apr_size_t len,
                                bff_session_t **s)
{
    char *copy = malloc(len ? len : 1);
    apr_status_t rv;

    assert_non_null(copy);
    memcpy(copy, in, len);
    rv = bff_session_decode(p, copy, len, s);
    free(copy);
    if (rv != APR_SUCCESS) {
        assert_null(*s);
    }
    return rv;
}

static apr_status_t txn_decode_copy(apr_pool_t *p, const char *in, apr_size_t len,
                                    bff_txn_t **t)
{
    char *copy = malloc(len ? len : 1);
    apr_status_t rv;

    assert_non_null(copy);
    memcpy(copy, in, len);
    rv = bff_txn_decode(p, copy, len, t);
    free(copy);
    if (rv != APR_SUCCESS) {
        assert_null(*t);
    }
    return rv;
}

static char *big_string(apr_pool_t *p, apr_size_t n, char c)
{
    char *s = apr_palloc(p, n + 1);

    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_round_trip_full(void **state)
{
    apr_pool_t *p = *state;
    bff_session_t in = full_session(), *out = NULL;
    char *json;
    apr_size_t len;
    json_t *doc;
    json_error_t jerr;

    assert_int_equal(bff_session_encode(p, &in, &json, &len), APR_SUCCESS);
    assert_int_equal(len, strlen(json));
    /* Compact, versioned, numbers as integers, claims as an object. */
    assert_null(strchr(json, '\n'));
    assert_null(strstr(json, "\": "));
    assert_non_null(doc = json_loads(json, 0, &jerr));
    assert_true(json_is_integer(json_object_get(doc, "v")));
    assert_int_equal(json_integer_value(json_object_get(doc, "v")), 1);
    assert_true(json_is_integer(json_object_get(doc, "created")));
    assert_int_equal(json_integer_value(json_object_get(doc, "created")), 1700000000);
    assert_true(json_is_integer(json_object_get(doc, "rev")));
    assert_true(json_is_object(json_object_get(doc, "claims")));
    json_decref(doc);

    assert_int_equal(bff_session_decode(p, json, len, &out), APR_SUCCESS);
    assert_non_null(out);
    /* CLAIMS is already compact text in jansson's spelling, so it comes
     * back byte for byte. */
    assert_session_equal(out, &in);
}

static void test_round_trip_minimal(void **state)
{
    apr_pool_t *p = *state;
    bff_session_t in, *out = NULL;
    char *json;
    apr_size_t len;

    memset(&in, 0, sizeof(in));
    in.iss = "https://idp";
    in.sub = "alice";
    in.created = 1;
    in.expires = 2;
    assert_int_equal(bff_session_encode(p, &in, &json, &len), APR_SUCCESS);
    assert_null(strstr(json, "access_token"));
    assert_null(strstr(json, "claims"));
    assert_null(strstr(json, "null"));
    assert_int_equal(bff_session_decode(p, json, len, &out), APR_SUCCESS);
    assert_session_equal(out, &in);
    assert_null(out->sid);
    assert_null(out->claims);

    /* The minimal text a peer may write decodes too. */
    assert_int_equal(decode_copy(p, MIN_SESSION, strlen(MIN_SESSION), &out), APR_SUCCESS);
    assert_session_equal(out, &in);
}

static void test_claims(void **state)
{
    apr_pool_t *p = *state;
    bff_session_t in = full_session(), *out = NULL;
    static const char *const bad[] = {
        "[]", "\"x\"", "1", "null", "", "{", "{\"a\":1", "{\"a\":1}x", "{\"a\":1,\"a\":2}",
        "{\"a\":\"\\u0000\"}", "{'a':1}",
    };
    static char unchanged[] = "unchanged";
    char *json;
    apr_size_t len, i;

    /* Spaced input comes back compact. */
    in.claims = "{ \"sub\" : \"alice\",\n \"n\" : [1, 2] }";
    assert_int_equal(bff_session_encode(p, &in, &json, &len), APR_SUCCESS);
    assert_int_equal(bff_session_decode(p, json, len, &out), APR_SUCCESS);
    assert_string_equal(out->claims, "{\"sub\":\"alice\",\"n\":[1,2]}");
    /* Escapes come back as UTF-8, the same JSON value. */
    in.claims = "{\"n\":\"\\u00e9\\/\"}";
    assert_int_equal(bff_session_encode(p, &in, &json, &len), APR_SUCCESS);
    assert_int_equal(bff_session_decode(p, json, len, &out), APR_SUCCESS);
    assert_string_equal(out->claims, "{\"n\":\"\xc3\xa9/\"}");
    in.claims = "{}";
    assert_int_equal(bff_session_encode(p, &in, &json, &len), APR_SUCCESS);
    assert_int_equal(bff_session_decode(p, json, len, &out), APR_SUCCESS);
    assert_string_equal(out->claims, "{}");

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        in.claims = bad[i];
        json = unchanged;
        assert_int_equal(bff_session_encode(p, &in, &json, &len), APR_EINVAL);
        assert_null(json);
    }
}

static void test_encode_rejects(void **state)
{
    apr_pool_t *p = *state;
    bff_session_t in;
    char *json;
    apr_size_t len;

#define REJECT(mutation) \
    do { in = full_session(); mutation; \
         assert_int_equal(bff_session_encode(p, &in, &json, &len), APR_EINVAL); \
         assert_null(json); } while (0)
    REJECT(in.iss = NULL);
    REJECT(in.sub = NULL);
    REJECT(in.created = -1);
    REJECT(in.expires = -1);
    REJECT(in.at_expires = -5);
    REJECT(in.last_access = APR_INT64_MIN);
    REJECT(in.rev = (apr_uint64_t)APR_INT64_MAX + 1);
    REJECT(in.sid = "bad utf-8 \xff\xfe");
    REJECT(in.access_token = "\xc3");
    REJECT(in.id_token = big_string(p, BFF_SESSION_MAX_STRING + 1, 'x'));
    /* Each string fits, the record does not. */
    REJECT(in.access_token = big_string(p, 60000, 'a'); in.refresh_token = big_string(p, 60000, 'r');
           in.id_token = big_string(p, 60000, 'i'); in.sid = big_string(p, 60000, 's');
           in.logout_id = big_string(p, 60000, 'l'));
#undef REJECT

    /* The limits themselves are allowed. */
    in = full_session();
    in.id_token = big_string(p, BFF_SESSION_MAX_STRING, 'x');
    assert_int_equal(bff_session_encode(p, &in, &json, &len), APR_SUCCESS);
    assert_int_equal(bff_session_encode(p, NULL, &json, &len), APR_EINVAL);
}

static void test_decode_rejects(void **state)
{
    apr_pool_t *p = *state;
    static const char *const bad[] = {
        /* not an object */
        "", " ", "null", "[]", "1", "\"str\"", "true", "[" MIN_SESSION "]",
        /* format version */
        "{}",
        "{\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":2,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":0,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":\"1\",\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":1.0,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":true,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":null,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        /* missing required fields */
        "{\"v\":1,\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":1,\"iss\":\"https://idp\",\"created\":1,\"expires\":2}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"expires\":2}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1}",
        /* wrong types */
        "{\"v\":1,\"iss\":1,\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":1,\"iss\":null,\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":1,\"iss\":[\"x\"],\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":1,\"iss\":{},\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":true,\"created\":1,\"expires\":2}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":\"1\",\"expires\":2}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1.5,\"expires\":2}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":-1,\"expires\":2}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":null,\"expires\":2}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2e3}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":"
        "99999999999999999999}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2,\"rev\":-1}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2,"
        "\"rev\":\"3\"}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2,"
        "\"at_expires\":false}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2,"
        "\"access_token\":null}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2,"
        "\"claims\":\"{}\"}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2,"
        "\"claims\":[]}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2,"
        "\"claims\":null}",
        /* unknown field, duplicate field */
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2,\"x\":1}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2,"
        "\"iss\":\"https://evil\"}",
        "{\"v\":1,\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        /* trailing junk, broken syntax */
        MIN_SESSION "x", MIN_SESSION "{}", MIN_SESSION " ,", MIN_SESSION MIN_SESSION,
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2,}",
        "{\"v\":1 \"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        /* NULs and bad bytes inside strings */
        "{\"v\":1,\"iss\":\"https://idp\\u0000.evil\",\"sub\":\"alice\",\"created\":1,"
        "\"expires\":2}",
        "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2,"
        "\"claims\":{\"a\":[\"\\u0000\"]}}",
        "{\"v\":1,\"iss\\u0000\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":1,\"iss\":\"https://idp\xff\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":1,\"iss\":\"https://idp\n\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
        "{\"v\":1,\"iss\":\"\\ud800\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
    };
    static bff_session_t sentinel;
    bff_session_t *out;
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        out = &sentinel;
        if (decode_copy(p, bad[i], strlen(bad[i]), &out) != APR_EINVAL) {
            fail_msg("accepted bad[%zu]: %s", i, bad[i]);
        }
    }
    out = &sentinel;
    assert_int_equal(bff_session_decode(p, NULL, 0, &out), APR_EINVAL);
    assert_null(out);
}

static void test_decode_raw_nul_and_sizes(void **state)
{
    apr_pool_t *p = *state;
    bff_session_t *out;
    char *buf, *big;
    apr_size_t n = strlen(MIN_SESSION);

    /* A raw NUL after the object, or inside a string. */
    buf = apr_pmemdup(p, MIN_SESSION "\0", n + 1);
    assert_int_equal(decode_copy(p, buf, n + 1, &out), APR_EINVAL);
    buf = apr_pstrdup(p, MIN_SESSION);
    buf[strlen("{\"v\":1,\"iss\":\"https")] = '\0';
    assert_int_equal(decode_copy(p, buf, n, &out), APR_EINVAL);

    /* String limit: exactly 64 KiB passes, one more byte does not. */
    big = apr_psprintf(p, "{\"v\":1,\"iss\":\"%s\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
                       big_string(p, BFF_SESSION_MAX_STRING, 'i'));
    assert_int_equal(decode_copy(p, big, strlen(big), &out), APR_SUCCESS);
    assert_int_equal(strlen(out->iss), BFF_SESSION_MAX_STRING);
    big = apr_psprintf(p, "{\"v\":1,\"iss\":\"%s\",\"sub\":\"alice\",\"created\":1,\"expires\":2}",
                       big_string(p, BFF_SESSION_MAX_STRING + 1, 'i'));
    assert_int_equal(decode_copy(p, big, strlen(big), &out), APR_EINVAL);
    /* The limit is on the decoded bytes: \u20ac is three bytes of UTF-8. */
    {
        apr_size_t k, count;
        for (count = BFF_SESSION_MAX_STRING / 3; count <= BFF_SESSION_MAX_STRING / 3 + 1;
             ++count) {
            char *esc = apr_palloc(p, 6 * count + 1);
            for (k = 0; k < count; ++k) {
                memcpy(esc + 6 * k, "\\u20ac", 6);
            }
            esc[6 * k] = '\0';
            big = apr_psprintf(p, "{\"v\":1,\"iss\":\"%s\",\"sub\":\"alice\",\"created\":1,"
                               "\"expires\":2}", esc);
            assert_int_equal(decode_copy(p, big, strlen(big), &out),
                             3 * count <= BFF_SESSION_MAX_STRING ? APR_SUCCESS : APR_EINVAL);
        }
    }

    /* Record limit: a valid object padded with whitespace past 256 KiB. */
    big = apr_pstrcat(p, MIN_SESSION, big_string(p, BFF_SESSION_MAX_RECORD, ' '), NULL);
    assert_int_equal(decode_copy(p, big, strlen(big), &out), APR_EINVAL);
    big = apr_pstrcat(p, MIN_SESSION, big_string(p, BFF_SESSION_MAX_RECORD - n, ' '), NULL);
    assert_int_equal(decode_copy(p, big, strlen(big), &out), APR_SUCCESS);

    /* Deep nesting in claims is refused by the parser's depth limit. */
    {
        apr_size_t depth = 100000, k;
        char *deep = apr_palloc(p, 2 * depth + 200), *q;
        q = deep + sprintf(deep, "{\"v\":1,\"iss\":\"i\",\"sub\":\"s\",\"created\":1,"
                           "\"expires\":2,\"claims\":{\"a\":");
        for (k = 0; k < depth; ++k) {
            *q++ = '[';
        }
        for (k = 0; k < depth; ++k) {
            *q++ = ']';
        }
        strcpy(q, "}}");
        assert_int_equal(decode_copy(p, deep, strlen(deep), &out), APR_EINVAL);
    }
}

static void test_txn_round_trip(void **state)
{
    apr_pool_t *p = *state;
    bff_txn_t in = full_txn(), *out = NULL;
    char *json;
    apr_size_t len;

    assert_int_equal(bff_txn_encode(p, &in, &json, &len), APR_SUCCESS);
    assert_int_equal(len, strlen(json));
    assert_non_null(strstr(json, "\"v\":1"));
    assert_int_equal(bff_txn_decode(p, json, len, &out), APR_SUCCESS);
    assert_txn_equal(out, &in);

    /* created is optional. */
    in.created = 0;
    assert_int_equal(txn_decode_copy(p, MIN_TXN, strlen(MIN_TXN), &out), APR_SUCCESS);
    assert_int_equal(out->created, 0);
    assert_int_equal(out->expires, 9);
    assert_string_equal(out->binder_hash, "ab");
}

static void test_txn_rejects(void **state)
{
    apr_pool_t *p = *state;
    static const char *const bad[] = {
        "{\"v\":1,\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"binder_hash\":\"ab\",\"expires\":9}",
        "{\"v\":1,\"state\":\"s\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"binder_hash\":\"ab\",\"expires\":9}",
        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"return_to\":\"/\","
        "\"binder_hash\":\"ab\",\"expires\":9}",
        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\","
        "\"binder_hash\":\"ab\",\"expires\":9}",
        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"expires\":9}",
        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"binder_hash\":\"ab\"}",
        "{\"v\":2,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"binder_hash\":\"ab\",\"expires\":9}",
        "{\"v\":1,\"state\":1,\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"binder_hash\":\"ab\",\"expires\":9}",
        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"binder_hash\":\"ab\",\"expires\":\"9\"}",
        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"binder_hash\":\"ab\",\"expires\":9,\"created\":-1}",
        MIN_TXN "x",
        /* A session is not a txn and the other way round. */
        MIN_SESSION,
    };
    bff_txn_t in, *out;
    bff_session_t *s;
    char *json;
    apr_size_t i, len;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        if (txn_decode_copy(p, bad[i], strlen(bad[i]), &out) != APR_EINVAL) {
            fail_msg("accepted bad[%zu]: %s", i, bad[i]);
        }
    }
    assert_int_equal(decode_copy(p, MIN_TXN, strlen(MIN_TXN), &s), APR_EINVAL);

#define REJECT(mutation) \
    do { in = full_txn(); mutation; \
         assert_int_equal(bff_txn_encode(p, &in, &json, &len), APR_EINVAL); \
         assert_null(json); } while (0)
    REJECT(in.state = NULL);
    REJECT(in.nonce = NULL);
    REJECT(in.code_verifier = NULL);
    REJECT(in.return_to = NULL);
    REJECT(in.binder_hash = NULL);
    REJECT(in.expires = -1);
    REJECT(in.return_to = "/\xc0\xaf");
    REJECT(in.return_to = big_string(p, BFF_SESSION_MAX_STRING + 1, '/'));
#undef REJECT
}

static bff_keyring_t *make_ring(apr_pool_t *p, const char *secret)
{
    bff_keyring_t *ring;

    assert_int_equal(bff_crypto_keyring_create(p, &ring), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add(ring, secret, strlen(secret)), APR_SUCCESS);
    return ring;
}

static void test_seal_open(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring = make_ring(p, "session test secret 1234567890");
    bff_keyring_t *other = make_ring(p, "another test secret 1234567890");
    bff_keyring_t *rotated;
    bff_session_t in = full_session(), *out = NULL;
    unsigned char *rec;
    apr_size_t len;
    int idx = -1;

    assert_int_equal(bff_session_seal(p, ring, "bff:s:abc", &in, &rec, &len), APR_SUCCESS);
    assert_true(len > BFF_CRYPTO_OVERHEAD);
    assert_int_equal(bff_session_open(p, ring, "bff:s:abc", rec, len, &out, &idx), APR_SUCCESS);
    assert_int_equal(idx, 0);
    assert_session_equal(out, &in);

    /* Moved under another store key, the record does not open. */
    assert_int_equal(bff_session_open(p, ring, "bff:s:abd", rec, len, &out, &idx),
                     APR_EGENERAL);
    assert_null(out);
    assert_int_equal(bff_session_open(p, ring, "", rec, len, &out, NULL), APR_EGENERAL);
    assert_int_equal(bff_session_open(p, ring, NULL, rec, len, &out, NULL), APR_EINVAL);
    assert_int_equal(bff_session_open(p, other, "bff:s:abc", rec, len, &out, NULL),
                     APR_ENOENT);
    assert_int_equal(bff_session_open(p, ring, "bff:s:abc", rec, len - 1, &out, NULL),
                     APR_EGENERAL);

    /* After rotation the old key still opens it and says so. */
    assert_int_equal(bff_crypto_keyring_create(p, &rotated), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add(rotated, "another test secret 1234567890", 30),
                     APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add(rotated, "session test secret 1234567890", 30),
                     APR_SUCCESS);
    assert_int_equal(bff_session_open(p, rotated, "bff:s:abc", rec, len, &out, &idx),
                     APR_SUCCESS);
    assert_int_equal(idx, 1);
    assert_session_equal(out, &in);

    /* Invalid sessions are not sealed. */
    in.iss = NULL;
    assert_int_equal(bff_session_seal(p, ring, "bff:s:abc", &in, &rec, &len), APR_EINVAL);
    assert_null(rec);
}

static void test_open_junk_plaintext(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring = make_ring(p, "session test secret 1234567890");
    static const char *const junk[] = { "", "not json", "[]", MIN_TXN };
    unsigned char *rec;
    apr_size_t len, i;
    bff_session_t *s;
    bff_txn_t *t;

    for (i = 0; i < sizeof(junk) / sizeof(junk[0]); ++i) {
        assert_int_equal(bff_crypto_seal(p, ring, "k", 1, junk[i], strlen(junk[i]), &rec, &len),
                         APR_SUCCESS);
        assert_int_equal(bff_session_open(p, ring, "k", rec, len, &s, NULL), APR_EINVAL);
        assert_null(s);
    }
    assert_int_equal(bff_crypto_seal(p, ring, "k", 1, MIN_SESSION, strlen(MIN_SESSION), &rec,
                                     &len), APR_SUCCESS);
    assert_int_equal(bff_session_open(p, ring, "k", rec, len, &s, NULL), APR_SUCCESS);
    assert_int_equal(bff_txn_open(p, ring, "k", rec, len, &t), APR_EINVAL);
    assert_null(t);
}

static void test_txn_seal_open(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring = make_ring(p, "session test secret 1234567890");
    bff_txn_t in = full_txn(), *out = NULL;
    unsigned char *rec;
    apr_size_t len;

    assert_int_equal(bff_txn_seal(p, ring, "bff:t:1", &in, &rec, &len), APR_SUCCESS);
    assert_int_equal(bff_txn_open(p, ring, "bff:t:1", rec, len, &out), APR_SUCCESS);
    assert_txn_equal(out, &in);
    assert_int_equal(bff_txn_open(p, ring, "bff:t:2", rec, len, &out), APR_EGENERAL);
    assert_null(out);
    rec[len / 2] ^= 1;
    assert_int_equal(bff_txn_open(p, ring, "bff:t:1", rec, len, &out), APR_EGENERAL);
}

/* Whatever decodes must encode again: decode only lets through values
 * encode accepts. */
static void check_decoded(apr_pool_t *p, apr_status_t rv, const bff_session_t *s)
{
    char *json;
    apr_size_t len;

    assert_true(rv == APR_SUCCESS || rv == APR_EINVAL);
    if (rv == APR_SUCCESS) {
        assert_int_equal(bff_session_encode(p, s, &json, &len), APR_SUCCESS);
    }
}

static void test_fuzz(void **state)
{
    apr_pool_t *p = *state, *iter;
    bff_session_t in = full_session(), *out;
    bff_txn_t tin = full_txn(), *tout;
    static const unsigned char flips[] = { 0x01, 0x20, 0x80, 0xff };
    static const char subst[] = "\"{}[],:\\0-e.\x00\x7f\xc3";
    char *json, *buf;
    apr_size_t len, n, i, f;
    apr_status_t rv;
    unsigned int seed = 12345;

    assert_int_equal(bff_session_encode(p, &in, &json, &len), APR_SUCCESS);
    assert_int_equal(apr_pool_create(&iter, p), APR_SUCCESS);
    /* Every proper prefix of the object is incomplete. */
    for (n = 0; n < len; ++n) {
        assert_int_equal(decode_copy(iter, json, n, &out), APR_EINVAL);
        apr_pool_clear(iter);
    }
    buf = apr_pmemdup(p, json, len);
    for (i = 0; i < len; ++i) {
        for (f = 0; f < sizeof(flips); ++f) {
            buf[i] ^= (char)flips[f];
            rv = decode_copy(iter, buf, len, &out);
            check_decoded(iter, rv, out);
            buf[i] ^= (char)flips[f];
            apr_pool_clear(iter);
        }
        for (f = 0; f < sizeof(subst) - 1; ++f) {
            char save = buf[i];
            buf[i] = subst[f];
            rv = decode_copy(iter, buf, len, &out);
            check_decoded(iter, rv, out);
            buf[i] = save;
            apr_pool_clear(iter);
        }
    }
    /* Random multi-byte damage, reproducible. */
    for (n = 0; n < 20000; ++n) {
        apr_size_t k, hits = 1 + rand_r(&seed) % 4;
        memcpy(buf, json, len);
        for (k = 0; k < hits; ++k) {
            buf[rand_r(&seed) % len] = (char)(rand_r(&seed) & 0xff);
        }
        rv = decode_copy(iter, buf, 1 + rand_r(&seed) % len, &out);
        check_decoded(iter, rv, out);
        apr_pool_clear(iter);
    }

    assert_int_equal(bff_txn_encode(p, &tin, &json, &len), APR_SUCCESS);
    for (n = 0; n < len; ++n) {
        assert_int_equal(txn_decode_copy(iter, json, n, &tout), APR_EINVAL);
        apr_pool_clear(iter);
    }
    buf = apr_pmemdup(p, json, len);
    for (i = 0; i < len; ++i) {
        for (f = 0; f < sizeof(flips); ++f) {
            buf[i] ^= (char)flips[f];
            rv = txn_decode_copy(iter, buf, len, &tout);
            assert_true(rv == APR_SUCCESS || rv == APR_EINVAL);
            buf[i] ^= (char)flips[f];
            apr_pool_clear(iter);
        }
    }
    apr_pool_destroy(iter);
}

static int only_b64url(const char *s)
{
    for (; *s; ++s) {
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *s)) {
            return 0;
        }
    }
    return 1;
}

static void test_session_id(void **state)
{
    apr_pool_t *p = *state;
    char *a = bff_session_new_id(p), *b = bff_session_new_id(p);
    char id[64];
    static const char *const bad[] = {
        "", "abc",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",       /* 42 */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",     /* 44 */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.",
        " AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\xc3",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA;x",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
    };
    apr_size_t i;

    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(strlen(a), 43);
    assert_true(only_b64url(a));
    assert_true(bff_session_id_ok(a));
    assert_true(bff_session_id_ok(b));
    assert_string_not_equal(a, b);
    assert_true(bff_session_id_ok("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    assert_true(bff_session_id_ok("abcdefghijklmnopqrstuvwxyz-_0123456789ABCDE"));

    assert_false(bff_session_id_ok(NULL));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        if (bff_session_id_ok(bad[i])) {
            fail_msg("accepted bad[%zu]: %s", i, bad[i]);
        }
    }
    /* Every non-alphabet byte at every position is refused. */
    for (i = 1; i < 256; ++i) {
        apr_size_t pos;
        if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                   (int)i)) {
            continue;
        }
        for (pos = 0; pos < 43; ++pos) {
            strcpy(id, a);
            id[pos] = (char)i;
            assert_false(bff_session_id_ok(id));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_full, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_minimal, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_claims, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_encode_rejects, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_decode_rejects, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_decode_raw_nul_and_sizes, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_txn_round_trip, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_txn_rejects, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_seal_open, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_open_junk_plaintext, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_txn_seal_open, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_fuzz, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_session_id, unit_pool_setup, unit_pool_teardown),
    };
    return unit_run("session", tests);
}
