/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <jansson.h>

#include "bff_session.h"
#include "bff_util.h"

/* A session in the old JSON format: a txn must refuse it, and so must the
 * binary session decoder (records written before the format change). */
#define MIN_SESSION \
    "{\"v\":1,\"iss\":\"https://idp\",\"sub\":\"alice\",\"created\":1,\"expires\":2}"
#define MIN_TXN \
    "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\"," \
    "\"return_to\":\"/\",\"expires\":9}"

/* The session record layout, restated here independently of the codec so
 * that the tests pin the format (other nodes read the same store). */
#define R_MAGIC "bfs\x02"
#define R_REV 4
#define R_TIMES 12 /* at_expires, at_issued, created, last_access, expires */
#define R_HEAD 52
#define R_NSTR \
    9 /* iss, sub, sid, access_token, token_type, refresh_token,
                             * id_token, claims, logout_id */
#define R_CLAIMS 7
#define R_NO_STRING 0xFFFFFFFFu

static const char CLAIMS[] = "{\"sub\":\"alice\",\"name\":\"Al\xc3\xaf"
                             "ce\",\"groups\":[\"a\",\"b\"],"
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
    /* All different, so a swapped field shows. */
    s.at_expires = 1700000300;
    s.at_issued = 1700000001;
    s.created = 1700000000;
    s.last_access = 1700000100;
    s.expires = APR_INT64_MAX;
    return s;
}

static bff_session_t min_session(void)
{
    bff_session_t s;

    memset(&s, 0, sizeof(s));
    s.iss = "https://idp";
    s.sub = "alice";
    s.created = 1;
    s.expires = 2;
    return s;
}

static bff_txn_t full_txn(void)
{
    bff_txn_t t;

    t.state = "state-123";
    t.nonce = "nonce-456";
    t.code_verifier = "verifier-abcdefghijklmnopqrstuvwxyz0123456789-._~";
    t.return_to = "/app/page?x=1#frag";
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
    assert_true(a->created == b->created);
    assert_true(a->expires == b->expires);
}

/* Decodes a heap copy of exactly len bytes, so ASan sees any over-read
 * (an empty input is the end of an allocation, as malloc(0) gives a byte),
 * then wipes and frees the copy, so ASan also sees any pointer that the
 * result kept into it. */
static apr_status_t decode_copy(apr_pool_t *p, const char *in, apr_size_t len, bff_session_t **s)
{
    char *copy = malloc(len ? len : 1);
    apr_status_t rv;

    assert_non_null(copy);
    memcpy(copy, in, len);
    rv = bff_session_decode(p, len ? copy : copy + 1, len, s);
    memset(copy, 0xa5, len);
    free(copy);
    if (rv != APR_SUCCESS) {
        assert_null(*s);
    }
    else {
        assert_non_null(*s);
    }
    return rv;
}

static apr_status_t txn_decode_copy(apr_pool_t *p, const char *in, apr_size_t len, bff_txn_t **t)
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

/* ---- hand-built session records ---------------------------------------- */

static const size_t str_offs[R_NSTR] = {
    offsetof(bff_session_t, iss),        offsetof(bff_session_t, sub),
    offsetof(bff_session_t, sid),        offsetof(bff_session_t, access_token),
    offsetof(bff_session_t, token_type), offsetof(bff_session_t, refresh_token),
    offsetof(bff_session_t, id_token),   offsetof(bff_session_t, claims),
    offsetof(bff_session_t, logout_id),
};

static const char *str_get(const bff_session_t *s, int i)
{
    return *(const char *const *)(const void *)((const char *)s + str_offs[i]);
}

static void str_set(bff_session_t *s, int i, const char *v)
{
    *(const char **)(void *)((char *)s + str_offs[i]) = v;
}

static apr_uint32_t rd_u32(const char *b)
{
    const unsigned char *u = (const unsigned char *)b;
    return (apr_uint32_t)u[0] | ((apr_uint32_t)u[1] << 8) | ((apr_uint32_t)u[2] << 16)
           | ((apr_uint32_t)u[3] << 24);
}

static void wr_u32(char *b, apr_uint32_t v)
{
    int i;
    for (i = 0; i < 4; ++i) {
        b[i] = (char)(unsigned char)(v >> (8 * i));
    }
}

static void wr_u64(char *b, apr_uint64_t v)
{
    int i;
    for (i = 0; i < 8; ++i) {
        b[i] = (char)(unsigned char)(v >> (8 * i));
    }
}

/* Writes the documented layout for any struct, including ones encode
 * refuses (NULL iss, zero created, ...), so decode can be fed them. */
static char *build(apr_pool_t *p, const bff_session_t *s, apr_size_t *len)
{
    const apr_int64_t times[5] = { s->at_expires, s->at_issued, s->created, s->last_access,
                                   s->expires };
    apr_size_t n = R_HEAD, i;
    char *b;

    for (i = 0; i < R_NSTR; ++i) {
        n += 4 + (str_get(s, (int)i) ? strlen(str_get(s, (int)i)) + 1 : 0);
    }
    b = apr_palloc(p, n);
    memcpy(b, R_MAGIC, 4);
    wr_u64(b + R_REV, s->rev);
    for (i = 0; i < 5; ++i) {
        wr_u64(b + R_TIMES + 8 * i, (apr_uint64_t)times[i]);
    }
    *len = R_HEAD;
    for (i = 0; i < R_NSTR; ++i) {
        const char *v = str_get(s, (int)i);
        if (!v) {
            wr_u32(b + *len, R_NO_STRING);
            *len += 4;
            continue;
        }
        wr_u32(b + *len, (apr_uint32_t)strlen(v));
        memcpy(b + *len + 4, v, strlen(v) + 1);
        *len += 4 + strlen(v) + 1;
    }
    assert_int_equal(*len, n);
    return b;
}

/* Offset of string idx's length field in a well-formed record. */
static apr_size_t str_off(const char *rec, int idx)
{
    apr_size_t off = R_HEAD;
    int i;

    for (i = 0; i < idx; ++i) {
        apr_uint32_t n = rd_u32(rec + off);
        off += 4 + (n == R_NO_STRING ? 0 : (apr_size_t)n + 1);
    }
    return off;
}

/* A JSON object exactly n bytes long. */
static char *json_pad(apr_pool_t *p, apr_size_t n)
{
    char *s = big_string(p, n, 'x');

    memcpy(s, "{\"a\":\"", 6);
    memcpy(s + n - 2, "\"}", 2);
    return s;
}

static int claims_is_object(const char *c)
{
    json_error_t jerr;
    json_t *v = json_loads(c, JSON_REJECT_DUPLICATES, &jerr);
    int ok = json_is_object(v);

    json_decref(v);
    return ok;
}

static void expect_decode(apr_pool_t *p, const char *rec, apr_size_t len, apr_status_t want,
                          const char *what)
{
    static bff_session_t sentinel;
    bff_session_t *out = &sentinel;
    apr_status_t rv = decode_copy(p, rec, len, &out);

    if (rv != want) {
        fail_msg("%s: decode returned %d, want %d", what, rv, want);
    }
}

/* Encodes, checks the bytes against the hand-built layout, decodes from a
 * copy that is wiped and freed before the result is compared. */
static bff_session_t *round_trip(apr_pool_t *p, const bff_session_t *in)
{
    bff_session_t *out = NULL;
    char *rec, *want;
    apr_size_t len, wlen;

    assert_int_equal(bff_session_encode(p, in, &rec, &len), APR_SUCCESS);
    want = build(p, in, &wlen);
    assert_int_equal(len, wlen);
    assert_memory_equal(rec, want, len);
    assert_int_equal(decode_copy(p, rec, len, &out), APR_SUCCESS);
    assert_session_equal(out, in);
    return out;
}

/* ---- session tests ------------------------------------------------------ */

static void test_layout(void **state)
{
    apr_pool_t *p = *state;
    bff_session_t in = min_session();
    char *rec;
    apr_size_t len, i;
    static const char want[] = "bfs\x02"
                               "\0\0\0\0\0\0\0\0" /* rev */
                               "\0\0\0\0\0\0\0\0"
                               "\0\0\0\0\0\0\0\0" /* at_expires, at_issued */
                               "\x01\0\0\0\0\0\0\0"
                               "\0\0\0\0\0\0\0\0"   /* created, last_access */
                               "\x02\0\0\0\0\0\0\0" /* expires */
                               "\x0b\0\0\0"
                               "https://idp\0"
                               "\x05\0\0\0"
                               "alice\0"
                               "\xff\xff\xff\xff"
                               "\xff\xff\xff\xff"
                               "\xff\xff\xff\xff"
                               "\xff\xff\xff\xff"
                               "\xff\xff\xff\xff"
                               "\xff\xff\xff\xff"
                               "\xff\xff\xff\xff";

    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_SUCCESS);
    assert_int_equal(len, sizeof(want) - 1);
    assert_memory_equal(rec, want, len);

    /* Little-endian, all eight bytes of rev and the times. */
    in.rev = APR_UINT64_C(0x0102030405060708);
    in.at_expires = APR_INT64_C(0x1112131415161718);
    in.expires = APR_INT64_C(0x7f00000000000001);
    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_SUCCESS);
    for (i = 0; i < 8; ++i) {
        assert_int_equal((unsigned char)rec[R_REV + i], 8 - i);
        assert_int_equal((unsigned char)rec[R_TIMES + i], 0x18 - i);
    }
    assert_int_equal((unsigned char)rec[R_TIMES + 32], 1);
    assert_int_equal((unsigned char)rec[R_TIMES + 39], 0x7f);
    round_trip(p, &in);
}

static void test_round_trip_full(void **state)
{
    apr_pool_t *p = *state;
    bff_session_t in = full_session(), *out = NULL;
    char *rec, *buf;
    apr_size_t len;
    int i;

    out = round_trip(p, &in);
    /* Claims come back byte for byte. */
    assert_string_equal(out->claims, CLAIMS);

    /* The result does not point into the caller's buffer: wiping it after
     * decode changes nothing. */
    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_SUCCESS);
    buf = apr_pmemdup(p, rec, len);
    assert_int_equal(bff_session_decode(p, buf, len, &out), APR_SUCCESS);
    for (i = 0; i < R_NSTR; ++i) {
        const char *v = str_get(out, i);
        assert_false(v >= buf && v < buf + len);
    }
    memset(buf, 'Z', len);
    assert_session_equal(out, &in);
    /* Nor into the encoder's output. */
    memset(rec, 'Y', len);
    assert_session_equal(out, &in);
}

static void test_round_trip_minimal(void **state)
{
    apr_pool_t *p = *state;
    bff_session_t in = min_session(), *out;
    int i;

    out = round_trip(p, &in);
    for (i = 2; i < R_NSTR; ++i) {
        assert_null(str_get(out, i));
    }
    assert_int_equal(out->rev, 0);
    assert_int_equal(out->at_expires, 0);
    assert_int_equal(out->at_issued, 0);
    assert_int_equal(out->last_access, 0);

    /* Empty is not absent: every string may be "" (claims "{}"). */
    for (i = 0; i < R_NSTR; ++i) {
        str_set(&in, i, i == R_CLAIMS ? "{}" : "");
    }
    out = round_trip(p, &in);
    for (i = 0; i < R_NSTR; ++i) {
        assert_non_null(str_get(out, i));
    }
    assert_string_equal(out->iss, "");
    assert_string_equal(out->logout_id, "");

    /* Strings are bytes: control characters and UTF-8 come back as given. */
    in = full_session();
    in.access_token = "\x01\t\r\n\x7f \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    in.sub = "\xff";
    in.at_issued = 42;
    round_trip(p, &in);

    /* A NULL in each optional slot alone. */
    for (i = 2; i < R_NSTR; ++i) {
        in = full_session();
        str_set(&in, i, NULL);
        out = round_trip(p, &in);
        assert_null(str_get(out, i));
    }
}

static void test_round_trip_limits(void **state)
{
    apr_pool_t *p = *state;
    bff_session_t in, *out;
    char *rec;
    apr_size_t len, base;
    int i;

    /* Each string at the limit, one at a time, then three together. */
    for (i = 0; i < R_NSTR; ++i) {
        if (i == R_CLAIMS) {
            continue;
        }
        in = full_session();
        str_set(&in, i, big_string(p, BFF_SESSION_MAX_STRING, (char)('a' + i)));
        out = round_trip(p, &in);
        assert_int_equal(strlen(str_get(out, i)), BFF_SESSION_MAX_STRING);
    }
    in = full_session();
    in.access_token = big_string(p, BFF_SESSION_MAX_STRING, 'a');
    in.refresh_token = big_string(p, BFF_SESSION_MAX_STRING, 'r');
    in.id_token = big_string(p, BFF_SESSION_MAX_STRING, 'i');
    round_trip(p, &in);

    /* Claims may be longer than a string. */
    in = full_session();
    in.claims = json_pad(p, BFF_SESSION_MAX_STRING + 100);
    round_trip(p, &in);

    /* Extreme times and rev. */
    in = full_session();
    in.rev = (apr_uint64_t)APR_INT64_MAX;
    in.at_expires = in.at_issued = in.created = in.last_access = in.expires = APR_INT64_MAX;
    round_trip(p, &in);

    /* The whole record exactly at the limit; one byte more is refused. */
    in = min_session();
    assert_int_equal(bff_session_encode(p, &in, &rec, &base), APR_SUCCESS);
    in.claims = json_pad(p, BFF_SESSION_MAX_RECORD - base - 1);
    round_trip(p, &in);
    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_SUCCESS);
    assert_int_equal(len, BFF_SESSION_MAX_RECORD);
    in.claims = json_pad(p, BFF_SESSION_MAX_RECORD - base);
    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_EINVAL);
    assert_null(rec);
}

static void test_claims(void **state)
{
    apr_pool_t *p = *state;
    bff_session_t in = full_session(), *out = NULL;
    static const char *const bad[] = {
        "[]",
        "\"x\"",
        "1",
        "null",
        "",
        " ",
        "{",
        "{\"a\":1",
        "{\"a\":1}x",
        "{\"a\":1}{}",
        "{\"a\":1,\"a\":2}",
        "{\"o\":{\"a\":1,\"a\":2}}",
        "{\"a\":\"\\u0000\"}",
        "{'a':1}",
        "{\"a\":\"\xff\"}",
        "{\"a\":\"\xc3\"}",
        "{\"a\":1,}",
    };
    static char unchanged[] = "unchanged";
    char *rec, *deep, *q;
    apr_size_t len, i, depth = 100000;

    /* Claims are kept as given, spacing and escapes included. */
    in.claims = "{ \"sub\" : \"alice\",\n \"n\" : [1, 2] }";
    out = round_trip(p, &in);
    assert_string_equal(out->claims, "{ \"sub\" : \"alice\",\n \"n\" : [1, 2] }");
    in.claims = "{\"n\":\"\\u00e9\\/\"}";
    out = round_trip(p, &in);
    assert_string_equal(out->claims, "{\"n\":\"\\u00e9\\/\"}");
    in.claims = "{}";
    round_trip(p, &in);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        in.claims = bad[i];
        rec = unchanged;
        len = 7;
        if (bff_session_encode(p, &in, &rec, &len) != APR_EINVAL) {
            fail_msg("accepted bad[%zu]: %s", (size_t)i, bad[i]);
        }
        assert_null(rec);
        assert_int_equal(len, 0);
    }

    /* Too deep for the parser, and too long for a record. */
    deep = q = apr_palloc(p, 2 * depth + 16);
    q += sprintf(q, "{\"a\":");
    memset(q, '[', depth);
    memset(q + depth, ']', depth);
    strcpy(q + 2 * depth, "}");
    in.claims = deep;
    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_EINVAL);
    in.claims = json_pad(p, BFF_SESSION_MAX_RECORD + 1);
    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_EINVAL);
}

static void test_encode_rejects(void **state)
{
    apr_pool_t *p = *state;
    static char unchanged[] = "unchanged";
    bff_session_t in;
    char *rec;
    apr_size_t len;
    int i;

#define REJECT(mutation) \
    do { \
        in = full_session(); \
        mutation; \
        rec = unchanged; \
        len = 7; \
        assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_EINVAL); \
        assert_null(rec); \
        assert_int_equal(len, 0); \
    } while (0)
    REJECT(in.iss = NULL);
    REJECT(in.sub = NULL);
    REJECT(in.iss = NULL; in.sub = NULL);
    REJECT(in.at_expires = -1);
    REJECT(in.at_issued = -1);
    REJECT(in.created = -1);
    REJECT(in.last_access = -1);
    REJECT(in.expires = -1);
    REJECT(in.last_access = APR_INT64_MIN);
    /* Decode refuses a record without created or expires, so encode does
     * not write one. */
    REJECT(in.created = 0);
    REJECT(in.expires = 0);
    REJECT(in.rev = (apr_uint64_t)APR_INT64_MAX + 1);
    REJECT(in.rev = APR_UINT64_MAX);
    for (i = 0; i < R_NSTR; ++i) {
        if (i != R_CLAIMS) {
            REJECT(str_set(&in, i, big_string(p, BFF_SESSION_MAX_STRING + 1, 'x')));
        }
    }
    /* Each string fits, the record does not. */
    REJECT(in.access_token = big_string(p, 60000, 'a');
           in.refresh_token = big_string(p, 60000, 'r'); in.id_token = big_string(p, 60000, 'i');
           in.sid = big_string(p, 60000, 's'); in.logout_id = big_string(p, 60000, 'l'));
#undef REJECT

    rec = unchanged;
    assert_int_equal(bff_session_encode(p, NULL, &rec, &len), APR_EINVAL);
    assert_null(rec);
}

static void test_decode_rejects(void **state)
{
    apr_pool_t *p = *state;
    static const unsigned char bad_magic[] = { 0x00, 0x01, 0x03, 0x7f, 0xff, 'B', 'x' };
    static const apr_uint32_t past_end[] = { 0x7fffffffu, 0x80000000u, 0xfffffffeu };
    bff_session_t in, *out;
    char *good, *rec, *buf;
    apr_size_t glen, len, i, k, off;
    int j;

    in = full_session();
    good = build(p, &in, &glen);
    expect_decode(p, good, glen, APR_SUCCESS, "good");
    buf = apr_palloc(p, 2 * glen + 1);

    out = &in;
    assert_int_equal(bff_session_decode(p, NULL, 0, &out), APR_EINVAL);
    assert_null(out);
    out = &in;
    assert_int_equal(bff_session_decode(p, NULL, glen, &out), APR_EINVAL);
    assert_null(out);
    expect_decode(p, "", 0, APR_EINVAL, "empty");
    expect_decode(p, MIN_SESSION, strlen(MIN_SESSION), APR_EINVAL, "old JSON record");
    expect_decode(p, MIN_TXN, strlen(MIN_TXN), APR_EINVAL, "txn");

    /* Wrong magic, wrong version. */
    for (i = 0; i < 4; ++i) {
        for (k = 0; k < sizeof(bad_magic); ++k) {
            if ((unsigned char)good[i] == bad_magic[k]) {
                continue;
            }
            memcpy(buf, good, glen);
            buf[i] = (char)bad_magic[k];
            expect_decode(p, buf, glen, APR_EINVAL, apr_psprintf(p, "magic[%zu]", (size_t)i));
        }
    }

    /* Truncated anywhere, or with anything after the end. */
    for (len = 0; len < glen; ++len) {
        expect_decode(p, good, len, APR_EINVAL, apr_psprintf(p, "prefix %zu", (size_t)len));
    }
    memcpy(buf, good, glen);
    buf[glen] = '\0';
    expect_decode(p, buf, glen + 1, APR_EINVAL, "trailing NUL");
    buf[glen] = 'x';
    expect_decode(p, buf, glen + 1, APR_EINVAL, "trailing byte");
    memcpy(buf + glen, good, glen);
    expect_decode(p, buf, 2 * glen, APR_EINVAL, "two records");

    for (j = 0; j < R_NSTR; ++j) {
        apr_uint32_t n;
        off = str_off(good, j);
        n = rd_u32(good + off);
        /* A length that runs to or past the end. */
        for (k = 0; k < 3; ++k) {
            memcpy(buf, good, glen);
            wr_u32(buf + off, (apr_uint32_t)(glen - off - 4) + (apr_uint32_t)k);
            expect_decode(p, buf, glen, APR_EINVAL, apr_psprintf(p, "str %d to end", j));
        }
        for (k = 0; k < sizeof(past_end) / sizeof(past_end[0]); ++k) {
            memcpy(buf, good, glen);
            wr_u32(buf + off, past_end[k]);
            expect_decode(p, buf, glen, APR_EINVAL, apr_psprintf(p, "str %d huge", j));
        }
        /* One more or one less than the string: the NUL is not where the
         * length says. */
        memcpy(buf, good, glen);
        wr_u32(buf + off, n + 1);
        expect_decode(p, buf, glen, APR_EINVAL, apr_psprintf(p, "str %d len+1", j));
        memcpy(buf, good, glen);
        wr_u32(buf + off, n - 1);
        expect_decode(p, buf, glen, APR_EINVAL, apr_psprintf(p, "str %d len-1", j));
        /* Missing terminator. */
        memcpy(buf, good, glen);
        buf[off + 4 + n] = 'x';
        expect_decode(p, buf, glen, APR_EINVAL, apr_psprintf(p, "str %d no NUL", j));
        /* A NUL inside, first and last. */
        memcpy(buf, good, glen);
        buf[off + 4] = '\0';
        expect_decode(p, buf, glen, APR_EINVAL, apr_psprintf(p, "str %d NUL first", j));
        memcpy(buf, good, glen);
        buf[off + 4 + n - 1] = '\0';
        expect_decode(p, buf, glen, APR_EINVAL, apr_psprintf(p, "str %d NUL last", j));
    }

    /* iss and sub are required; the rest may be absent. */
    in = full_session();
    in.iss = NULL;
    rec = build(p, &in, &len);
    expect_decode(p, rec, len, APR_EINVAL, "no iss");
    in = full_session();
    in.sub = NULL;
    rec = build(p, &in, &len);
    expect_decode(p, rec, len, APR_EINVAL, "no sub");
    in = min_session();
    rec = build(p, &in, &len);
    expect_decode(p, rec, len, APR_SUCCESS, "minimal");

    /* created and expires are required; the other times may be 0. */
    in = full_session();
    in.created = 0;
    rec = build(p, &in, &len);
    expect_decode(p, rec, len, APR_EINVAL, "created 0");
    in = full_session();
    in.expires = 0;
    rec = build(p, &in, &len);
    expect_decode(p, rec, len, APR_EINVAL, "expires 0");
    in = full_session();
    in.at_expires = in.at_issued = in.last_access = 0;
    in.rev = 0;
    rec = build(p, &in, &len);
    expect_decode(p, rec, len, APR_SUCCESS, "optional times 0");

    /* rev and every time must fit an int64. */
    for (i = 0; i < 6; ++i) {
        off = i == 0 ? R_REV : R_TIMES + 8 * (i - 1);
        memcpy(buf, good, glen);
        buf[off + 7] = (char)0x80;
        expect_decode(p, buf, glen, APR_EINVAL, apr_psprintf(p, "u64 %zu high bit", (size_t)i));
        memset(buf + off, 0xff, 8);
        expect_decode(p, buf, glen, APR_EINVAL, apr_psprintf(p, "u64 %zu all ones", (size_t)i));
        wr_u64(buf + off, (apr_uint64_t)APR_INT64_MAX);
        expect_decode(p, buf, glen, APR_SUCCESS, apr_psprintf(p, "u64 %zu max", (size_t)i));
    }

    /* String limit (claims excepted), record limit. */
    for (j = 0; j < R_NSTR; ++j) {
        in = min_session();
        str_set(&in, j, big_string(p, BFF_SESSION_MAX_STRING, 'x'));
        rec = build(p, &in, &len);
        expect_decode(p, rec, len, APR_SUCCESS, apr_psprintf(p, "str %d at max", j));
        str_set(&in, j, big_string(p, BFF_SESSION_MAX_STRING + 1, 'x'));
        rec = build(p, &in, &len);
        expect_decode(p, rec, len, j == R_CLAIMS ? APR_SUCCESS : APR_EINVAL,
                      apr_psprintf(p, "str %d over max", j));
    }
    in = min_session();
    build(p, &in, &len);
    in.claims = json_pad(p, BFF_SESSION_MAX_RECORD - len - 1);
    rec = build(p, &in, &len);
    assert_int_equal(len, BFF_SESSION_MAX_RECORD);
    expect_decode(p, rec, len, APR_SUCCESS, "record at max");
    in.claims = json_pad(p, strlen(in.claims) + 1);
    rec = build(p, &in, &len);
    assert_int_equal(len, BFF_SESSION_MAX_RECORD + 1);
    expect_decode(p, rec, len, APR_EINVAL, "record over max");
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
    assert_string_equal(out->return_to, "/");
}

static void test_txn_rejects(void **state)
{
    apr_pool_t *p = *state;
    static const char *const bad[] = {
        /* Each required field missing in turn. */
        "{\"v\":1,\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\",\"expires\":9}",
        "{\"v\":1,\"state\":\"s\",\"code_verifier\":\"c\",\"return_to\":\"/\",\"expires\":9}",
        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"return_to\":\"/\",\"expires\":9}",
        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\",\"expires\":9}",
        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\"}",
        /* Unknown version, wrong types, a negative time. */
        "{\"v\":2,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"expires\":9}",
        "{\"v\":1,\"state\":1,\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"expires\":9}",
        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"expires\":\"9\"}",
        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"expires\":9,\"created\":-1}",
        /* Unknown fields, wherever they are (the binder of the old format too). */
        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"expires\":9,\"extra\":1}",
        "{\"x\":\"\",\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\","
        "\"return_to\":\"/\",\"expires\":9}",
        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\",\"return_to\":\"/\","
        "\"binder_hash\":\"ab\",\"expires\":9}",
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
    /* Decode takes only what encode writes: no return_to over the bound. */
    json = apr_psprintf(p,
                        "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\","
                        "\"return_to\":\"/%s\",\"expires\":9}",
                        big_string(p, BFF_TXN_MAX_RETURN_TO, 'a'));
    assert_int_equal(txn_decode_copy(p, json, strlen(json), &out), APR_EINVAL);

#define REJECT(mutation) \
    do { \
        in = full_txn(); \
        mutation; \
        assert_int_equal(bff_txn_encode(p, &in, &json, &len), APR_EINVAL); \
        assert_null(json); \
    } while (0)
    REJECT(in.state = NULL);
    REJECT(in.nonce = NULL);
    REJECT(in.code_verifier = NULL);
    REJECT(in.return_to = NULL);
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
    /* The session does not point into the sealed record. */
    memset(rec, 0, len);
    assert_session_equal(out, &in);
    assert_int_equal(bff_session_seal(p, ring, "bff:s:abc", &in, &rec, &len), APR_SUCCESS);

    /* Moved under another store key, the record does not open. */
    assert_int_equal(bff_session_open(p, ring, "bff:s:abd", rec, len, &out, &idx), APR_EGENERAL);
    assert_null(out);
    assert_int_equal(bff_session_open(p, ring, "", rec, len, &out, NULL), APR_EGENERAL);
    assert_int_equal(bff_session_open(p, ring, NULL, rec, len, &out, NULL), APR_EINVAL);
    assert_int_equal(bff_session_open(p, other, "bff:s:abc", rec, len, &out, NULL), APR_ENOENT);
    assert_null(out);
    assert_int_equal(bff_session_open(p, ring, "bff:s:abc", rec, len - 1, &out, NULL),
                     APR_EGENERAL);
    rec[len / 2] ^= 1;
    assert_int_equal(bff_session_open(p, ring, "bff:s:abc", rec, len, &out, NULL), APR_EGENERAL);
    assert_null(out);
    rec[len / 2] ^= 1;

    /* After rotation the old key still opens it and says so. */
    assert_int_equal(bff_crypto_keyring_create(p, &rotated), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add(rotated, "another test secret 1234567890", 30),
                     APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add(rotated, "session test secret 1234567890", 30),
                     APR_SUCCESS);
    assert_int_equal(bff_session_open(p, rotated, "bff:s:abc", rec, len, &out, &idx), APR_SUCCESS);
    assert_int_equal(idx, 1);
    assert_session_equal(out, &in);

    /* Minimal and limit-sized sessions go through too. */
    in = min_session();
    assert_int_equal(bff_session_seal(p, ring, "k", &in, &rec, &len), APR_SUCCESS);
    assert_int_equal(bff_session_open(p, ring, "k", rec, len, &out, NULL), APR_SUCCESS);
    assert_session_equal(out, &in);
    in.id_token = big_string(p, BFF_SESSION_MAX_STRING, 'i');
    assert_int_equal(bff_session_seal(p, ring, "k", &in, &rec, &len), APR_SUCCESS);
    assert_int_equal(bff_session_open(p, ring, "k", rec, len, &out, NULL), APR_SUCCESS);
    assert_session_equal(out, &in);

    /* Invalid sessions are not sealed. */
    in = full_session();
    in.iss = NULL;
    assert_int_equal(bff_session_seal(p, ring, "bff:s:abc", &in, &rec, &len), APR_EINVAL);
    assert_null(rec);
    in = full_session();
    in.claims = "[]";
    assert_int_equal(bff_session_seal(p, ring, "bff:s:abc", &in, &rec, &len), APR_EINVAL);
    assert_null(rec);
    in = full_session();
    assert_int_equal(bff_session_seal(p, ring, NULL, &in, &rec, &len), APR_EINVAL);
}

static void test_open_junk_plaintext(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring = make_ring(p, "session test secret 1234567890");
    bff_session_t in = full_session(), *s;
    bff_txn_t tin = full_txn(), *t;
    const char *junk[8];
    apr_size_t jlen[8];
    unsigned char *rec;
    char *good, *extra;
    apr_size_t len, glen, i, n = 0;

    assert_int_equal(bff_session_encode(p, &in, &good, &glen), APR_SUCCESS);
    extra = apr_palloc(p, glen + 1);
    memcpy(extra, good, glen);
    extra[glen] = '\0';
#define JUNK(str, l) (junk[n] = (str), jlen[n++] = (l))
    JUNK("", 0);
    JUNK("not json", 8);
    JUNK("[]", 2);
    JUNK(MIN_TXN, strlen(MIN_TXN));
    JUNK(MIN_SESSION, strlen(MIN_SESSION)); /* the old format */
    JUNK(good, glen - 1);
    JUNK(extra, glen + 1);
#undef JUNK
    for (i = 0; i < n; ++i) {
        assert_int_equal(bff_crypto_seal(p, ring, "k", 1, junk[i], jlen[i], &rec, &len),
                         APR_SUCCESS);
        s = &in;
        if (bff_session_open(p, ring, "k", rec, len, &s, NULL) != APR_EINVAL) {
            fail_msg("opened junk[%zu]", (size_t)i);
        }
        assert_null(s);
    }

    /* The plain encoding sealed by hand opens as a session, not a txn. */
    assert_int_equal(bff_crypto_seal(p, ring, "k", 1, good, glen, &rec, &len), APR_SUCCESS);
    assert_int_equal(bff_session_open(p, ring, "k", rec, len, &s, NULL), APR_SUCCESS);
    assert_session_equal(s, &in);
    assert_int_equal(bff_txn_open(p, ring, "k", rec, len, &t), APR_EINVAL);
    assert_null(t);

    /* Under the same store key, a session record is not a txn and the
     * other way round. */
    assert_int_equal(bff_session_seal(p, ring, "k", &in, &rec, &len), APR_SUCCESS);
    assert_int_equal(bff_txn_open(p, ring, "k", rec, len, &t), APR_EINVAL);
    assert_null(t);
    assert_int_equal(bff_txn_seal(p, ring, "k", &tin, &rec, &len), APR_SUCCESS);
    s = &in;
    assert_int_equal(bff_session_open(p, ring, "k", rec, len, &s, NULL), APR_EINVAL);
    assert_null(s);
    assert_int_equal(bff_txn_open(p, ring, "k", rec, len, &t), APR_SUCCESS);
    assert_txn_equal(t, &tin);
    /* And the plain decoders agree. */
    assert_int_equal(bff_txn_decode(p, good, glen, &t), APR_EINVAL);
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

#define K1 "txn cookie test key one 0123456789"
#define K2 "txn cookie test key two 0123456789"
#define TX_NAME "__Host-Http-bff-tx.AbCd-_12"
#define ISS "https://idp.example"
#define CLIENT "client-a"
#define REDIRECT "https://app.example/bff/callback"

static const char *tx_binding(apr_pool_t *p)
{
    return bff_txn_binding(p, TX_NAME, ISS, CLIENT, REDIRECT);
}

static void test_txn_cookie(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring = make_ring(p, K1);
    bff_txn_t in = full_txn(), *out;
    const char *v, *c;
    const char *other[5];
    apr_size_t i;

    assert_int_equal(bff_txn_to_cookie(p, ring, tx_binding(p), &in, &v), APR_SUCCESS);
    for (c = v; *c; ++c) {
        assert_true(apr_isalnum(*c) || *c == '-' || *c == '_');
    }
    /* Small enough for a cookie, even with the longest return_to. */
    assert_true(strlen(v) < 400);
    assert_int_equal(bff_txn_from_cookie(p, ring, tx_binding(p), v, in.state, in.expires - 1, &out),
                     APR_SUCCESS);
    assert_txn_equal(out, &in);
    assert_int_equal(bff_txn_from_cookie(p, ring, tx_binding(p), v, NULL, in.expires - 1, &out),
                     APR_SUCCESS);

    /* Bound to its name, the provider, the client and the site. */
    other[0] = bff_txn_binding(p, "__Host-Http-bff-tx.AbCd-_13", ISS, CLIENT, REDIRECT);
    other[1] = bff_txn_binding(p, TX_NAME, "https://idp2.example", CLIENT, REDIRECT);
    other[2] = bff_txn_binding(p, TX_NAME, ISS, "client-b", REDIRECT);
    other[3] = bff_txn_binding(p, TX_NAME, ISS, CLIENT, "https://app.example:8443/bff/callback");
    other[4] = bff_txn_binding(p, TX_NAME, ISS "|1:", CLIENT "", REDIRECT);
    for (i = 0; i < 5; ++i) {
        out = &in;
        if (bff_txn_from_cookie(p, ring, other[i], v, in.state, in.expires - 1, &out)
            != APR_EGENERAL) {
            fail_msg("opened under other binding %zu", (size_t)i);
        }
        assert_null(out);
    }
    /* Another state, expiry, junk. */
    out = &in;
    assert_int_equal(bff_txn_from_cookie(p, ring, tx_binding(p), v, "state-124", in.expires - 1,
                                         &out),
                     APR_EINVAL);
    assert_null(out);
    assert_int_equal(bff_txn_from_cookie(p, ring, tx_binding(p), v, in.state, in.expires, &out),
                     APR_TIMEUP);
    assert_null(out);
    assert_int_equal(bff_txn_from_cookie(p, ring, tx_binding(p), apr_pstrcat(p, v, "=", NULL),
                                         in.state, in.expires - 1, &out),
                     APR_EINVAL);
    assert_int_equal(bff_txn_from_cookie(p, ring, tx_binding(p), "", in.state, 0, &out),
                     APR_EINVAL);
    assert_int_equal(bff_txn_from_cookie(p, ring, tx_binding(p), NULL, in.state, 0, &out),
                     APR_EINVAL);

    /* return_to is bounded so the cookie stays small. */
    in.return_to = big_string(p, BFF_TXN_MAX_RETURN_TO, '/');
    assert_int_equal(bff_txn_to_cookie(p, ring, tx_binding(p), &in, &v), APR_SUCCESS);
    assert_true(strlen(v) < 1100);
    in.return_to = big_string(p, BFF_TXN_MAX_RETURN_TO + 1, '/');
    assert_int_equal(bff_txn_to_cookie(p, ring, tx_binding(p), &in, &v), APR_EINVAL);
    assert_null(v);
}

/* The record inside the cookie is as strict as in the store: an unknown
 * field sealed under the right binding still does not open. */
static void test_txn_cookie_unknown_field(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring = make_ring(p, K1);
    static const char good[] = "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\","
                               "\"return_to\":\"/\",\"created\":1,\"expires\":9}";
    static const char extra[] = "{\"v\":1,\"state\":\"s\",\"nonce\":\"n\",\"code_verifier\":\"c\","
                                "\"return_to\":\"/\",\"created\":1,\"expires\":9,"
                                "\"return_to_2\":\"//evil.example\"}";
    const char *b = tx_binding(p);
    unsigned char *rec;
    apr_size_t len;
    bff_txn_t *out;

    assert_int_equal(bff_crypto_seal(p, ring, b, strlen(b), good, strlen(good), &rec, &len),
                     APR_SUCCESS);
    assert_int_equal(bff_txn_from_cookie(p, ring, b, bff_util_b64url_encode(p, rec, len), "s", 1,
                                         &out),
                     APR_SUCCESS);
    assert_int_equal(bff_crypto_seal(p, ring, b, strlen(b), extra, strlen(extra), &rec, &len),
                     APR_SUCCESS);
    out = (bff_txn_t *)1;
    assert_int_equal(bff_txn_from_cookie(p, ring, b, bff_util_b64url_encode(p, rec, len), "s", 1,
                                         &out),
                     APR_EINVAL);
    assert_null(out);
}

/* First key seals, every key opens: a rolling rotation keeps logins that
 * start on one node and end on another working. */
static void test_txn_cookie_rotation(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *r1 = make_ring(p, K1), *r21 = make_ring(p, K2), *r12 = make_ring(p, K1);
    bff_keyring_t *r2 = make_ring(p, K2);
    bff_txn_t in = full_txn(), *out;
    const char *v;

    assert_int_equal(bff_crypto_keyring_add(r21, K1, strlen(K1)), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add(r12, K2, strlen(K2)), APR_SUCCESS);
    /* [K1] -> [K2, K1] */
    assert_int_equal(bff_txn_to_cookie(p, r1, tx_binding(p), &in, &v), APR_SUCCESS);
    assert_int_equal(bff_txn_from_cookie(p, r21, tx_binding(p), v, in.state, in.created, &out),
                     APR_SUCCESS);
    assert_txn_equal(out, &in);
    /* [K2, K1] -> [K1, K2] (the safe roll-out), and [K1, K2] -> [K2, K1] */
    assert_int_equal(bff_txn_to_cookie(p, r21, tx_binding(p), &in, &v), APR_SUCCESS);
    assert_int_equal(bff_txn_from_cookie(p, r12, tx_binding(p), v, in.state, in.created, &out),
                     APR_SUCCESS);
    assert_int_equal(bff_txn_from_cookie(p, r2, tx_binding(p), v, in.state, in.created, &out),
                     APR_SUCCESS);
    assert_int_equal(bff_txn_to_cookie(p, r12, tx_binding(p), &in, &v), APR_SUCCESS);
    assert_int_equal(bff_txn_from_cookie(p, r21, tx_binding(p), v, in.state, in.created, &out),
                     APR_SUCCESS);
    /* A ring without the sealing key cannot open it. */
    assert_int_equal(bff_txn_to_cookie(p, r2, tx_binding(p), &in, &v), APR_SUCCESS);
    assert_int_equal(bff_txn_from_cookie(p, r1, tx_binding(p), v, in.state, in.created, &out),
                     APR_ENOENT);
}

/* The largest pending-login cookie a login can set (random values of the
 * module's sizes, the longest return_to, ten-digit times) stays within
 * BFF_TXN_COOKIE_VALUE_MAX, the figure the Cookie header budget in
 * bff_session.h rests on. */
static void test_txn_cookie_worst_case(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring = make_ring(p, K1);
    bff_txn_t in;
    const char *v;

    memset(&in, 0, sizeof(in));
    in.state = bff_util_random_token(p, 32);
    in.nonce = bff_util_random_token(p, 32);
    in.code_verifier = bff_util_random_token(p, 32);
    in.return_to = big_string(p, BFF_TXN_MAX_RETURN_TO, 'a');
    in.created = 9999999999999999; /* microseconds */
    in.expires = 9999999999;
    in.prompt = "none";
    in.max_age = "999999999";
    assert_int_equal(bff_txn_to_cookie(p, ring, tx_binding(p), &in, &v), APR_SUCCESS);
    print_message("worst-case txn cookie value: %zu bytes\n", strlen(v));
    assert_true(strlen(v) <= BFF_TXN_COOKIE_VALUE_MAX);
}

/* Whatever decodes must encode again to the very same bytes. The one
 * exception is claims: decode does not parse them (see the report), so a
 * damaged claims text decodes but encode refuses it; *claims_only counts
 * those. */
static void check_decoded(apr_pool_t *p, apr_status_t rv, const bff_session_t *s, const char *in,
                          apr_size_t inlen, apr_size_t *claims_only)
{
    char *rec;
    apr_size_t len;

    assert_true(rv == APR_SUCCESS || rv == APR_EINVAL);
    if (rv != APR_SUCCESS) {
        return;
    }
    rv = bff_session_encode(p, s, &rec, &len);
    if (rv == APR_SUCCESS) {
        assert_int_equal(len, inlen);
        assert_memory_equal(rec, in, len);
        return;
    }
    assert_int_equal(rv, APR_EINVAL);
    assert_non_null(s->claims);
    assert_false(claims_is_object(s->claims));
    ++*claims_only;
}

static void fuzz_session(apr_pool_t *p, apr_pool_t *iter, const bff_session_t *in,
                         unsigned int seed)
{
    static const unsigned char flips[] = { 0x01, 0x20, 0x80, 0xff };
    static const unsigned char subst[] = { 0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, '{', '"' };
    bff_session_t *out;
    char *rec, *buf;
    apr_size_t len, n, i, f, claims_only = 0;
    apr_status_t rv;

    assert_int_equal(bff_session_encode(p, in, &rec, &len), APR_SUCCESS);
    buf = apr_palloc(p, len + 8);
    /* Every proper prefix is incomplete. */
    for (n = 0; n < len; ++n) {
        assert_int_equal(decode_copy(iter, rec, n, &out), APR_EINVAL);
        apr_pool_clear(iter);
    }
    memcpy(buf, rec, len);
    for (i = 0; i < len; ++i) {
        unsigned char save = (unsigned char)buf[i];
        for (f = 0; f < sizeof(flips); ++f) {
            buf[i] = (char)(save ^ flips[f]);
            rv = decode_copy(iter, buf, len, &out);
            check_decoded(iter, rv, out, buf, len, &claims_only);
            apr_pool_clear(iter);
        }
        for (f = 0; f < sizeof(subst); ++f) {
            buf[i] = (char)subst[f];
            rv = decode_copy(iter, buf, len, &out);
            check_decoded(iter, rv, out, buf, len, &claims_only);
            apr_pool_clear(iter);
        }
        buf[i] = (char)save;
        /* One byte dropped, one byte inserted. */
        memcpy(buf + i, rec + i + 1, len - i - 1);
        rv = decode_copy(iter, buf, len - 1, &out);
        check_decoded(iter, rv, out, buf, len - 1, &claims_only);
        apr_pool_clear(iter);
        buf[i] = (char)save;
        memcpy(buf + i + 1, rec + i, len - i);
        rv = decode_copy(iter, buf, len + 1, &out);
        check_decoded(iter, rv, out, buf, len + 1, &claims_only);
        apr_pool_clear(iter);
        memcpy(buf, rec, len);
    }
    /* Random multi-byte damage and lengths, reproducible. */
    for (n = 0; n < 20000; ++n) {
        apr_size_t k, hits = 1 + rand_r(&seed) % 4, blen = 1 + rand_r(&seed) % (len + 4);
        memcpy(buf, rec, len);
        memset(buf + len, rand_r(&seed) & 0xff, 8);
        for (k = 0; k < hits; ++k) {
            buf[rand_r(&seed) % blen] = (char)(rand_r(&seed) & 0xff);
        }
        rv = decode_copy(iter, buf, blen, &out);
        check_decoded(iter, rv, out, buf, blen, &claims_only);
        apr_pool_clear(iter);
    }
    /* The exception never covers a session without claims. */
    if (!in->claims) {
        assert_int_equal(claims_only, 0);
    }
}

static void test_fuzz(void **state)
{
    apr_pool_t *p = *state, *iter;
    bff_session_t in = full_session();
    bff_txn_t tin = full_txn(), *tout;
    static const unsigned char flips[] = { 0x01, 0x20, 0x80, 0xff };
    char *json, *buf;
    apr_size_t len, n, i, f;
    apr_status_t rv;

    assert_int_equal(apr_pool_create(&iter, p), APR_SUCCESS);
    fuzz_session(p, iter, &in, 12345);
    in = min_session();
    fuzz_session(p, iter, &in, 54321);
    in = full_session();
    in.claims = NULL;
    in.rev = 7;
    fuzz_session(p, iter, &in, 777);

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
        "",
        "abc",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",   /* 42 */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 44 */
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
        if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", (int)i)) {
            continue;
        }
        for (pos = 0; pos < 43; ++pos) {
            strcpy(id, a);
            id[pos] = (char)i;
            assert_false(bff_session_id_ok(id));
        }
    }
}

/* ---- narrower tokens (BFFTokenResource, BFFTokenScope) ------------------ */

/* A record as the previous release wrote it (the test_layout bytes): it
 * still opens, with no narrower token. */
static void test_tokens_old_record_opens(void **state)
{
    apr_pool_t *p = *state;
    static const char old[] = "bfs\x02"
                              "\x07\0\0\0\0\0\0\0" /* rev */
                              "\0\0\0\0\0\0\0\0"
                              "\0\0\0\0\0\0\0\0"
                              "\x01\0\0\0\0\0\0\0"
                              "\0\0\0\0\0\0\0\0"
                              "\x02\0\0\0\0\0\0\0"
                              "\x0b\0\0\0"
                              "https://idp\0"
                              "\x05\0\0\0"
                              "alice\0"
                              "\xff\xff\xff\xff"
                              "\x02\0\0\0"
                              "at\0"
                              "\xff\xff\xff\xff"
                              "\x02\0\0\0"
                              "rt\0"
                              "\xff\xff\xff\xff"
                              "\xff\xff\xff\xff"
                              "\xff\xff\xff\xff";
    bff_session_t *out;
    char *rec;
    apr_size_t len;

    assert_int_equal(bff_session_decode(p, old, sizeof(old) - 1, &out), APR_SUCCESS);
    assert_int_equal(out->rev, 7);
    assert_string_equal(out->access_token, "at");
    assert_string_equal(out->refresh_token, "rt");
    assert_int_equal(out->ntokens, 0);
    assert_null(bff_session_token_find(out, "https://api.example/", NULL));
    /* Written again without narrower tokens: the same bytes, version 2,
     * which the previous release reads. */
    assert_int_equal(bff_session_encode(p, out, &rec, &len), APR_SUCCESS);
    assert_int_equal(len, sizeof(old) - 1);
    assert_memory_equal(rec, old, len);
}

static bff_session_token_t token(const char *resource, const char *scope, const char *at,
                                 apr_int64_t issued)
{
    bff_session_token_t t;

    memset(&t, 0, sizeof(t));
    t.resource = resource;
    t.scope = scope;
    t.access_token = at;
    t.token_type = "Bearer";
    t.at_issued = issued;
    t.at_expires = issued + 300;
    return t;
}

static void test_tokens_round_trip(void **state)
{
    apr_pool_t *p = *state;
    bff_session_t in = full_session(), *out;
    bff_session_token_t a = token("https://a.example/", NULL, "at-a", 10);
    bff_session_token_t b = token("https://b.example/", "read", "at-b", 11);
    bff_session_token_t c = token(NULL, "read write", "at-c", 12);
    bff_session_token_t *got;
    char *rec;
    apr_size_t len, tail;
    int i;

    c.token_type = NULL;
    bff_session_token_put(&in, &a);
    bff_session_token_put(&in, &b);
    bff_session_token_put(&in, &c);
    assert_int_equal(in.ntokens, 3);
    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_SUCCESS);
    assert_memory_equal(rec, "bfs\x03", 4);
    assert_int_equal(decode_copy(p, rec, len, &out), APR_SUCCESS);
    assert_session_equal(out, &in);
    assert_int_equal(out->ntokens, 3);
    for (i = 0; i < 3; ++i) {
        const bff_session_token_t *want = i == 0 ? &a : i == 1 ? &b : &c;
        got = bff_session_token_find(out, want->resource, want->scope);
        assert_non_null(got);
        assert_string_equal(got->access_token, want->access_token);
        assert_int_equal(got->at_issued, want->at_issued);
        assert_int_equal(got->at_expires, want->at_expires);
    }
    assert_null(bff_session_token_find(out, NULL, "read write")->token_type);
    /* (resource, scope) is the key: NULL matches NULL only. */
    assert_null(bff_session_token_find(out, "https://a.example/", "read"));
    assert_null(bff_session_token_find(out, "https://b.example/", NULL));
    assert_null(bff_session_token_find(out, NULL, NULL));
    /* The same key again replaces. */
    a.access_token = "at-a2";
    bff_session_token_put(out, &a);
    assert_int_equal(out->ntokens, 3);
    assert_string_equal(bff_session_token_find(out, "https://a.example/", NULL)->access_token,
                        "at-a2");

    /* The previous release's decoder (version 2 only) refuses it; ours
     * refuses a version 3 without its tail, and a version 2 with one. */
    tail = len;
    in.ntokens = 0;
    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_SUCCESS);
    {
        char *v3 = apr_pmemdup(p, rec, len);
        v3[3] = '\x03';
        assert_int_equal(decode_copy(p, v3, len, &out), APR_EINVAL);
    }
    in.ntokens = 3;
    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_SUCCESS);
    assert_int_equal(len, tail);
    rec[3] = '\x02';
    assert_int_equal(decode_copy(p, rec, len, &out), APR_EINVAL);
}

static void test_tokens_bound(void **state)
{
    apr_pool_t *p = *state;
    bff_session_t in = min_session(), *out;
    bff_session_token_t t;
    char *rec, *bad;
    apr_size_t len, i;

    /* Issued in a shuffled order: the least recently issued goes first. */
    static const apr_int64_t issued[] = { 50, 20, 70, 10, 60, 30, 80, 40 };
    for (i = 0; i < BFF_SESSION_MAX_TOKENS; ++i) {
        t = token(apr_psprintf(p, "https://r%d.example/", (int)i), NULL, "at", issued[i]);
        bff_session_token_put(&in, &t);
    }
    assert_int_equal(in.ntokens, BFF_SESSION_MAX_TOKENS);
    t = token("https://new.example/", NULL, "at-new", 90);
    bff_session_token_put(&in, &t);
    assert_int_equal(in.ntokens, BFF_SESSION_MAX_TOKENS);
    assert_null(bff_session_token_find(&in, "https://r3.example/", NULL)); /* issued 10 */
    assert_non_null(bff_session_token_find(&in, "https://new.example/", NULL));
    assert_non_null(bff_session_token_find(&in, "https://r1.example/", NULL));
    t = token("https://newer.example/", NULL, "at-newer", 95);
    bff_session_token_put(&in, &t);
    assert_null(bff_session_token_find(&in, "https://r1.example/", NULL)); /* issued 20 */
    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_SUCCESS);
    assert_int_equal(decode_copy(p, rec, len, &out), APR_SUCCESS);
    assert_int_equal(out->ntokens, BFF_SESSION_MAX_TOKENS);

    /* More than the bound, or a token without its access token, is never
     * written nor read. */
    in.ntokens = BFF_SESSION_MAX_TOKENS + 1;
    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_EINVAL);
    in.ntokens = BFF_SESSION_MAX_TOKENS;
    in.tokens[2].access_token = NULL;
    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_EINVAL);
    in.tokens[2].access_token = "at";
    in.ntokens = 1;
    assert_int_equal(bff_session_encode(p, &in, &rec, &len), APR_SUCCESS);
    /* The count sits after the nine strings: patch it to 0 and to 9. */
    bad = apr_pmemdup(p, rec, len);
    i = len
        - (4 + 16 + (4 + strlen(in.tokens[0].resource) + 1) + 4
           + (4 + strlen(in.tokens[0].access_token) + 1) + (4 + strlen("Bearer") + 1));
    assert_memory_equal(bad + i, "\x01\0\0\0", 4);
    bad[i] = 0;
    assert_int_equal(decode_copy(p, bad, len, &out), APR_EINVAL);
    bad[i] = BFF_SESSION_MAX_TOKENS + 1;
    assert_int_equal(decode_copy(p, bad, len, &out), APR_EINVAL);
    /* Truncated anywhere in the tail. */
    for (i = len - 1; i > len - 30; --i) {
        assert_int_equal(decode_copy(p, rec, i, &out), APR_EINVAL);
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, unit_pool_setup, unit_pool_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_layout),
        T(test_round_trip_full),
        T(test_round_trip_minimal),
        T(test_round_trip_limits),
        T(test_claims),
        T(test_encode_rejects),
        T(test_decode_rejects),
        T(test_txn_round_trip),
        T(test_txn_rejects),
        T(test_seal_open),
        T(test_open_junk_plaintext),
        T(test_txn_seal_open),
        T(test_txn_cookie),
        T(test_txn_cookie_unknown_field),
        T(test_txn_cookie_rotation),
        T(test_txn_cookie_worst_case),
        T(test_fuzz),
        T(test_session_id),
        T(test_tokens_old_record_opens),
        T(test_tokens_round_trip),
        T(test_tokens_bound),
    };
    return unit_run("session", tests);
}
