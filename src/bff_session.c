/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the session record (flat binary encoding, sealed with the store key as AAD), the
 * pending login sealed in a cookie, and session identifiers.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "bff_session.h"
#include "bff_util.h"

#if !JSON_INTEGER_IS_LONG_LONG
#error "jansson's json_int_t must be long long to hold 64-bit times"
#endif

#define BFF_TXN_FORMAT 1      /* "v" of a pending login's JSON */
#define BFF_SESSION_ID_LEN 43 /* base64url of 32 bytes, unpadded */

/* The fields of a pending login, which travels as compact JSON (sessions
 * have a flat binary layout, below). */
typedef enum {
    F_STR, /* const char *, NULL when absent */
    F_INT  /* apr_int64_t >= 0 */
} field_kind_e;

typedef struct {
    const char *name;
    field_kind_e kind;
    size_t offset;
    int required;
} field_t;

#define TF(name, kind, req) \
    { \
#name, kind, offsetof(bff_txn_t, name), req \
    }
static const field_t txn_fields[] = {
    TF(state, F_STR, 1),     TF(nonce, F_STR, 1),   TF(code_verifier, F_STR, 1),
    TF(return_to, F_STR, 1), TF(created, F_INT, 0), TF(expires, F_INT, 1),
    TF(prompt, F_STR, 0),    TF(max_age, F_STR, 0),
};
#undef TF

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

#define FIELD(base, f, type) ((type *)(void *)((char *)(base) + (f)->offset))
#define CFIELD(base, f, type) ((type const *)(const void *)((const char *)(base) + (f)->offset))

/* jansson hands out malloc()ed text; tokens pass through it, so wipe it
 * before giving it back. */
static void free_dump(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static apr_status_t encode_field(json_t *obj, const field_t *f, const void *base)
{
    json_t *v = NULL;

    switch (f->kind) {
    case F_STR: {
        const char *s = *CFIELD(base, f, const char *);
        if (!s) {
            return f->required ? APR_EINVAL : APR_SUCCESS;
        }
        /* json_string() also refuses invalid UTF-8. */
        if (strlen(s) > BFF_SESSION_MAX_STRING || !(v = json_string(s))) {
            return APR_EINVAL;
        }
        break;
    }
    case F_INT: {
        apr_int64_t n = *CFIELD(base, f, apr_int64_t);
        if (n < 0 || !(v = json_integer((json_int_t)n))) {
            return APR_EINVAL;
        }
        break;
    }
    }
    return json_object_set_new(obj, f->name, v) ? APR_ENOMEM : APR_SUCCESS;
}

static apr_status_t encode(apr_pool_t *p, const field_t *fields, apr_size_t nfields,
                           const void *base, char **out, apr_size_t *outlen)
{
    json_t *obj = NULL;
    char *dump = NULL;
    apr_size_t i, len;
    apr_status_t rv = APR_SUCCESS;

    *out = NULL;
    if (outlen) {
        *outlen = 0;
    }
    if (!base) {
        return APR_EINVAL;
    }
    if (!(obj = json_object()) || json_object_set_new(obj, "v", json_integer(BFF_TXN_FORMAT))) {
        rv = APR_ENOMEM;
        goto leave;
    }
    for (i = 0; i < nfields; ++i) {
        if (APR_SUCCESS != (rv = encode_field(obj, &fields[i], base))) {
            goto leave;
        }
    }
    if (!(dump = json_dumps(obj, JSON_COMPACT))) {
        rv = APR_ENOMEM;
        goto leave;
    }
    /* Never write what decode would refuse to read back. */
    if ((len = strlen(dump)) > BFF_SESSION_MAX_RECORD) {
        rv = APR_EINVAL;
        goto leave;
    }
    *out = apr_pstrmemdup(p, dump, len);
    if (outlen) {
        *outlen = len;
    }
leave:
    free_dump(dump);
    json_decref(obj);
    return rv;
}

static apr_status_t decode_field(apr_pool_t *p, json_t *obj, const field_t *f, void *base,
                                 apr_size_t *seen)
{
    json_t *v = json_object_get(obj, f->name);

    if (!v) {
        return f->required ? APR_EINVAL : APR_SUCCESS;
    }
    ++*seen;
    switch (f->kind) {
    case F_STR: {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (!json_is_string(v) || len > BFF_SESSION_MAX_STRING || memchr(s, '\0', len)) {
            return APR_EINVAL;
        }
        *FIELD(base, f, const char *) = apr_pstrmemdup(p, s, len);
        break;
    }
    case F_INT:
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            return APR_EINVAL;
        }
        *FIELD(base, f, apr_int64_t) = (apr_int64_t)json_integer_value(v);
        break;
    }
    return APR_SUCCESS;
}

/* Accepts exactly what encode() writes: one object, the known format
 * version, known fields of the right types and sizes, nothing else. */
static apr_status_t decode(apr_pool_t *p, const field_t *fields, apr_size_t nfields, const char *in,
                           apr_size_t len, void *base)
{
    json_t *obj = NULL, *ver;
    json_error_t jerr;
    apr_size_t i, seen = 1;
    apr_status_t rv = APR_EINVAL;

    if (!in || len > BFF_SESSION_MAX_RECORD) {
        return APR_EINVAL;
    }
    /* No JSON_ALLOW_NUL: "\u0000" in any string is a parse error, and
     * json_loadb() refuses trailing data after the value. */
    if (!(obj = json_loadb(in, len, JSON_REJECT_DUPLICATES, &jerr)) || !json_is_object(obj)) {
        goto leave;
    }
    ver = json_object_get(obj, "v");
    if (!json_is_integer(ver) || json_integer_value(ver) != BFF_TXN_FORMAT) {
        goto leave;
    }
    for (i = 0; i < nfields; ++i) {
        if (APR_SUCCESS != (rv = decode_field(p, obj, &fields[i], base, &seen))) {
            goto leave;
        }
    }
    /* Keys are unique, so any count mismatch is an unknown field. */
    rv = (seen == json_object_size(obj)) ? APR_SUCCESS : APR_EINVAL;
leave:
    json_decref(obj);
    return rv;
}

/* ---- session records: a flat binary layout ------------------------------
 *
 * Sessions are read on every relayed request, so their record is a flat
 * little-endian layout that decodes without parsing: "bfs" + version 2,
 * rev (u64), five times (i64), then nine strings, each a u32 length
 * (NO_STRING for NULL) and that many bytes plus a NUL, so that decoding
 * can point into the buffer instead of copying. Records are authenticated
 * before they are decoded; the checks below still refuse any structure
 * encode would not write.
 *
 * A session that holds narrower tokens (BFFTokenResource, BFFTokenScope) is
 * written as version 3: the same layout followed by a u32 count (1 to
 * BFF_SESSION_MAX_TOKENS) and, per token, two times (i64: at_expires,
 * at_issued) and four strings (resource, scope, access_token, token_type).
 * A session without them is still written as version 2, byte for byte as
 * the previous release wrote it, so that release keeps reading it; it
 * refuses a version 3 record (docs/sessions.md, rolling upgrades). The
 * claims text is taken as it is: parsing it on
 * every request would cost more than the rest of the relay, and only encode,
 * which checks it, writes records. */

#define REC_MAGIC "bfs\x02"
#define REC_MAGIC_TOKENS "bfs\x03"
#define TOKEN_STRINGS 4
#define REC_HEAD (4 + 8 + 5 * 8)
#define NO_STRING 0xFFFFFFFFu
#define NSTRINGS 9

static const char **session_strings(bff_session_t *s, const char **v[NSTRINGS])
{
    v[0] = &s->iss;
    v[1] = &s->sub;
    v[2] = &s->sid;
    v[3] = &s->access_token;
    v[4] = &s->token_type;
    v[5] = &s->refresh_token;
    v[6] = &s->id_token;
    v[7] = &s->claims;
    v[8] = &s->logout_id;
    return v[0];
}

static void put_u64(unsigned char *b, apr_uint64_t v)
{
    int i;
    for (i = 0; i < 8; ++i) {
        b[i] = (unsigned char)(v >> (8 * i));
    }
}

static apr_uint64_t get_u64(const unsigned char *b)
{
    apr_uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; --i) {
        v = (v << 8) | b[i];
    }
    return v;
}

static void put_u32(unsigned char *b, apr_uint32_t v)
{
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
    b[2] = (unsigned char)(v >> 16);
    b[3] = (unsigned char)(v >> 24);
}

static apr_uint32_t get_u32(const unsigned char *b)
{
    return (apr_uint32_t)b[0] | ((apr_uint32_t)b[1] << 8) | ((apr_uint32_t)b[2] << 16)
           | ((apr_uint32_t)b[3] << 24);
}

static int claims_ok(const char *c)
{
    json_error_t jerr;
    json_t *v;
    int ok;

    if (strlen(c) > BFF_SESSION_MAX_RECORD) {
        return 0;
    }
    v = json_loads(c, JSON_REJECT_DUPLICATES, &jerr);
    ok = json_is_object(v);
    json_decref(v);
    return ok;
}

static const char **token_strings(bff_session_token_t *t, const char **v[TOKEN_STRINGS])
{
    v[0] = &t->resource;
    v[1] = &t->scope;
    v[2] = &t->access_token;
    v[3] = &t->token_type;
    return v[0];
}

static int same_opt(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

bff_session_token_t *bff_session_token_find(bff_session_t *s, const char *resource,
                                            const char *scope)
{
    int i;

    for (i = 0; s && i < s->ntokens; ++i) {
        if (same_opt(s->tokens[i].resource, resource) && same_opt(s->tokens[i].scope, scope)) {
            return &s->tokens[i];
        }
    }
    return NULL;
}

void bff_session_token_put(bff_session_t *s, const bff_session_token_t *t)
{
    bff_session_token_t *at = bff_session_token_find(s, t->resource, t->scope);
    int i, oldest = 0;

    if (!at && s->ntokens < BFF_SESSION_MAX_TOKENS) {
        at = &s->tokens[s->ntokens++];
    }
    if (!at) {
        /* Full: the least recently issued one goes (it is obtained again
         * with the refresh token if its location asks for it). */
        for (i = 1; i < s->ntokens; ++i) {
            if (s->tokens[i].at_issued < s->tokens[oldest].at_issued) {
                oldest = i;
            }
        }
        at = &s->tokens[oldest];
    }
    *at = *t;
}

/* The bytes a string takes in a record: length, text, NUL. */
static apr_size_t string_size(const char *v)
{
    return 4 + (v ? strlen(v) + 1 : 0);
}

static apr_size_t put_string(unsigned char *b, apr_size_t pos, const char *v)
{
    apr_size_t n = v ? strlen(v) : 0;

    put_u32(b + pos, v ? (apr_uint32_t)n : NO_STRING);
    pos += 4;
    if (v) {
        memcpy(b + pos, v, n + 1);
        pos += n + 1;
    }
    return pos;
}

/* The narrower tokens' part of a version 3 record: its size, 0 when the
 * tokens are not fit to be written (the caller refuses the record). */
static apr_size_t tokens_size(const bff_session_t *s)
{
    apr_size_t total = 4;
    bff_session_token_t t;
    const char **v[TOKEN_STRINGS];
    int i, j;

    if (s->ntokens < 0 || s->ntokens > BFF_SESSION_MAX_TOKENS) {
        return 0;
    }
    for (i = 0; i < s->ntokens; ++i) {
        t = s->tokens[i];
        token_strings(&t, v);
        if (!t.access_token || t.at_expires < 0 || t.at_issued < 0) {
            return 0;
        }
        total += 16;
        for (j = 0; j < TOKEN_STRINGS; ++j) {
            if (*v[j] && strlen(*v[j]) > BFF_SESSION_MAX_STRING) {
                return 0;
            }
            total += string_size(*v[j]);
        }
    }
    return total;
}

static apr_size_t put_tokens(unsigned char *b, apr_size_t pos, const bff_session_t *s)
{
    bff_session_token_t t;
    const char **v[TOKEN_STRINGS];
    int i, j;

    put_u32(b + pos, (apr_uint32_t)s->ntokens);
    pos += 4;
    for (i = 0; i < s->ntokens; ++i) {
        t = s->tokens[i];
        put_u64(b + pos, (apr_uint64_t)t.at_expires);
        put_u64(b + pos + 8, (apr_uint64_t)t.at_issued);
        pos += 16;
        token_strings(&t, v);
        for (j = 0; j < TOKEN_STRINGS; ++j) {
            pos = put_string(b, pos, *v[j]);
        }
    }
    return pos;
}

apr_status_t bff_session_encode(apr_pool_t *p, const bff_session_t *s, char **out, apr_size_t *len)
{
    apr_int64_t times[5];
    bff_session_t copy;
    const char **v[NSTRINGS];
    apr_size_t total = REC_HEAD, slen[NSTRINGS], pos, extra = 0;
    unsigned char *b;
    int i;

    *out = NULL;
    *len = 0;
    /* Never write what decode would refuse to read back. */
    if (!s || !s->iss || !s->sub || !s->created || !s->expires
        || s->rev > (apr_uint64_t)LLONG_MAX) {
        return APR_EINVAL;
    }
    times[0] = s->at_expires;
    times[1] = s->at_issued;
    times[2] = s->created;
    times[3] = s->last_access;
    times[4] = s->expires;
    copy = *s;
    session_strings(&copy, v);
    for (i = 0; i < 5; ++i) {
        if (times[i] < 0) {
            return APR_EINVAL;
        }
    }
    if (s->claims && !claims_ok(s->claims)) {
        return APR_EINVAL;
    }
    for (i = 0; i < NSTRINGS; ++i) {
        slen[i] = *v[i] ? strlen(*v[i]) : 0;
        if (slen[i] > BFF_SESSION_MAX_STRING && i != 7) {
            return APR_EINVAL;
        }
        total += 4 + (*v[i] ? slen[i] + 1 : 0);
    }
    if (s->ntokens && !(extra = tokens_size(s))) {
        return APR_EINVAL;
    }
    total += extra;
    if (total > BFF_SESSION_MAX_RECORD) {
        return APR_EINVAL;
    }
    b = apr_palloc(p, total + 1);
    memcpy(b, s->ntokens ? REC_MAGIC_TOKENS : REC_MAGIC, 4);
    put_u64(b + 4, s->rev);
    for (i = 0; i < 5; ++i) {
        put_u64(b + 12 + 8 * i, (apr_uint64_t)times[i]);
    }
    pos = REC_HEAD;
    for (i = 0; i < NSTRINGS; ++i) {
        pos = put_string(b, pos, *v[i]);
    }
    if (s->ntokens) {
        pos = put_tokens(b, pos, s);
    }
    b[total] = '\0';
    *out = (char *)b;
    *len = total;
    return APR_SUCCESS;
}

/* One string at *pos (see the layout above); NULL for NO_STRING. */
static apr_status_t get_string(const unsigned char *b, apr_size_t len, apr_size_t *pos,
                               apr_size_t max, const char **out)
{
    apr_uint32_t n;

    if (len - *pos < 4) {
        return APR_EINVAL;
    }
    n = get_u32(b + *pos);
    *pos += 4;
    if (n == NO_STRING) {
        *out = NULL;
        return APR_SUCCESS;
    }
    if ((apr_size_t)n >= len - *pos || (apr_size_t)n > max || b[*pos + n] != '\0'
        || memchr(b + *pos, '\0', n)) {
        return APR_EINVAL;
    }
    *out = (const char *)(b + *pos);
    *pos += (apr_size_t)n + 1;
    return APR_SUCCESS;
}

static apr_status_t get_time(const unsigned char *b, apr_size_t len, apr_size_t *pos,
                             apr_int64_t *out)
{
    apr_uint64_t t;

    if (len - *pos < 8 || (t = get_u64(b + *pos)) > (apr_uint64_t)LLONG_MAX) {
        return APR_EINVAL;
    }
    *out = (apr_int64_t)t;
    *pos += 8;
    return APR_SUCCESS;
}

/* The narrower tokens of a version 3 record: at least one, at most
 * BFF_SESSION_MAX_TOKENS, each with its access token. */
static apr_status_t get_tokens(const unsigned char *b, apr_size_t len, apr_size_t *pos,
                               bff_session_t *s)
{
    const char **v[TOKEN_STRINGS];
    apr_uint32_t n;
    int i, j;

    if (len - *pos < 4) {
        return APR_EINVAL;
    }
    n = get_u32(b + *pos);
    *pos += 4;
    if (n < 1 || n > BFF_SESSION_MAX_TOKENS) {
        return APR_EINVAL;
    }
    for (i = 0; i < (int)n; ++i) {
        bff_session_token_t *t = &s->tokens[i];
        if (APR_SUCCESS != get_time(b, len, pos, &t->at_expires)
            || APR_SUCCESS != get_time(b, len, pos, &t->at_issued)) {
            return APR_EINVAL;
        }
        token_strings(t, v);
        for (j = 0; j < TOKEN_STRINGS; ++j) {
            if (APR_SUCCESS != get_string(b, len, pos, BFF_SESSION_MAX_STRING, v[j])) {
                return APR_EINVAL;
            }
        }
        if (!t->access_token) {
            return APR_EINVAL;
        }
    }
    s->ntokens = (int)n;
    return APR_SUCCESS;
}

/* Decode in place: the strings point into buf, which must outlive *ps. */
static apr_status_t decode_in_place(apr_pool_t *p, const unsigned char *b, apr_size_t len,
                                    bff_session_t **ps)
{
    bff_session_t *s;
    const char **v[NSTRINGS];
    apr_int64_t *times[5];
    apr_size_t pos;
    int i, with_tokens;

    *ps = NULL;
    if (len < REC_HEAD || len > BFF_SESSION_MAX_RECORD) {
        return APR_EINVAL;
    }
    with_tokens = !memcmp(b, REC_MAGIC_TOKENS, 4);
    if (!with_tokens && memcmp(b, REC_MAGIC, 4)) {
        return APR_EINVAL;
    }
    s = apr_pcalloc(p, sizeof(*s));
    times[0] = &s->at_expires;
    times[1] = &s->at_issued;
    times[2] = &s->created;
    times[3] = &s->last_access;
    times[4] = &s->expires;
    s->rev = get_u64(b + 4);
    if (s->rev > (apr_uint64_t)LLONG_MAX) {
        return APR_EINVAL;
    }
    pos = 12;
    for (i = 0; i < 5; ++i) {
        if (APR_SUCCESS != get_time(b, len, &pos, times[i])) {
            return APR_EINVAL;
        }
    }
    session_strings(s, v);
    for (i = 0; i < NSTRINGS; ++i) {
        if (APR_SUCCESS
            != get_string(b, len, &pos, i == 7 ? BFF_SESSION_MAX_RECORD : BFF_SESSION_MAX_STRING,
                          v[i])) {
            return APR_EINVAL;
        }
    }
    if (with_tokens && APR_SUCCESS != get_tokens(b, len, &pos, s)) {
        return APR_EINVAL;
    }
    if (pos != len || !s->iss || !s->sub || !s->created || !s->expires) {
        return APR_EINVAL;
    }
    *ps = s;
    return APR_SUCCESS;
}

apr_status_t bff_session_decode(apr_pool_t *p, const char *in, apr_size_t len, bff_session_t **ps)
{
    *ps = NULL;
    /* Short records never reach the copy (which would read past a 0-byte input). */
    if (!in || len < REC_HEAD) {
        return APR_EINVAL;
    }
    return decode_in_place(p, apr_pmemdup(p, in, len), len, ps);
}

apr_status_t bff_txn_encode(apr_pool_t *p, const bff_txn_t *t, char **out, apr_size_t *len)
{
    if (t && t->return_to && strlen(t->return_to) > BFF_TXN_MAX_RETURN_TO) {
        *out = NULL;
        if (len) {
            *len = 0;
        }
        return APR_EINVAL;
    }
    return encode(p, txn_fields, NFIELDS(txn_fields), t, out, len);
}

apr_status_t bff_txn_decode(apr_pool_t *p, const char *in, apr_size_t len, bff_txn_t **pt)
{
    bff_txn_t *t = apr_pcalloc(p, sizeof(*t));
    apr_status_t rv;

    *pt = NULL;
    if (APR_SUCCESS != (rv = decode(p, txn_fields, NFIELDS(txn_fields), in, len, t))) {
        return rv;
    }
    /* Only what bff_txn_encode() writes (found by test/fuzz/fuzz_session). */
    if (t->return_to && strlen(t->return_to) > BFF_TXN_MAX_RETURN_TO) {
        return APR_EINVAL;
    }
    *pt = t;
    return APR_SUCCESS;
}

static apr_status_t seal_plain(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                               char *plain, apr_size_t plen, unsigned char **rec, apr_size_t *len)
{
    apr_status_t rv;

    rv = bff_crypto_seal(p, ring, store_key, strlen(store_key), plain, plen, rec, len);
    /* The pool outlives this call; the plaintext should not. */
    OPENSSL_cleanse(plain, plen);
    return rv;
}

apr_status_t bff_session_seal(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                              const bff_session_t *s, unsigned char **rec, apr_size_t *len)
{
    char *plain;
    apr_size_t plen;
    apr_status_t rv;

    *rec = NULL;
    *len = 0;
    if (!store_key) {
        return APR_EINVAL;
    }
    if (APR_SUCCESS != (rv = bff_session_encode(p, s, &plain, &plen))) {
        return rv;
    }
    return seal_plain(p, ring, store_key, plain, plen, rec, len);
}

apr_status_t bff_txn_seal(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                          const bff_txn_t *t, unsigned char **rec, apr_size_t *len)
{
    char *plain;
    apr_size_t plen;
    apr_status_t rv;

    *rec = NULL;
    *len = 0;
    if (!store_key) {
        return APR_EINVAL;
    }
    if (APR_SUCCESS != (rv = bff_txn_encode(p, t, &plain, &plen))) {
        return rv;
    }
    return seal_plain(p, ring, store_key, plain, plen, rec, len);
}

apr_status_t bff_session_open(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                              const unsigned char *rec, apr_size_t len, bff_session_t **s,
                              int *key_index)
{
    unsigned char *pt;
    apr_size_t ptlen;
    apr_status_t rv;

    *s = NULL;
    if (!store_key) {
        return APR_EINVAL;
    }
    rv = bff_crypto_open(p, ring, store_key, strlen(store_key), rec, len, &pt, &ptlen, key_index);
    if (APR_SUCCESS != rv) {
        return rv;
    }
    /* The strings point into the plaintext: it lives as long as the pool. */
    rv = decode_in_place(p, pt, ptlen, s);
    return rv == APR_SUCCESS ? APR_SUCCESS : APR_EINVAL;
}

apr_status_t bff_txn_open(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                          const unsigned char *rec, apr_size_t len, bff_txn_t **t)
{
    unsigned char *pt;
    apr_size_t ptlen;
    apr_status_t rv;

    *t = NULL;
    if (!store_key) {
        return APR_EINVAL;
    }
    rv = bff_crypto_open(p, ring, store_key, strlen(store_key), rec, len, &pt, &ptlen, NULL);
    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = bff_txn_decode(p, (const char *)pt, ptlen, t);
    OPENSSL_cleanse(pt, ptlen);
    return rv == APR_SUCCESS ? APR_SUCCESS : APR_EINVAL;
}

apr_status_t bff_txn_to_cookie(apr_pool_t *p, const bff_keyring_t *ring, const char *binding,
                               const bff_txn_t *t, const char **value)
{
    unsigned char *rec;
    apr_size_t len;
    apr_status_t rv;

    *value = NULL;
    if (APR_SUCCESS != (rv = bff_txn_seal(p, ring, binding, t, &rec, &len))) {
        return rv;
    }
    *value = bff_util_b64url_encode(p, rec, len);
    return *value ? APR_SUCCESS : APR_ENOMEM;
}

apr_status_t bff_txn_from_cookie(apr_pool_t *p, const bff_keyring_t *ring, const char *binding,
                                 const char *value, const char *state, apr_int64_t now,
                                 bff_txn_t **t)
{
    unsigned char *rec;
    apr_size_t len;
    bff_txn_t *x;
    apr_status_t rv;

    *t = NULL;
    if (!value || APR_SUCCESS != bff_util_b64url_decode(p, value, strlen(value), &rec, &len)) {
        return APR_EINVAL;
    }
    if (APR_SUCCESS != (rv = bff_txn_open(p, ring, binding, rec, len, &x))) {
        return rv;
    }
    /* Several logins share the browser's few cookie slots: the state
     * decides which one this is. */
    if (state && !bff_util_ct_streq(x->state, state)) {
        return APR_EINVAL;
    }
    if (x->expires <= now) {
        return APR_TIMEUP;
    }
    *t = x;
    return APR_SUCCESS;
}

/* Length-prefixed fields: no choice of values makes two bindings equal. */
static const char *lp(apr_pool_t *p, const char *s)
{
    s = s ? s : "";
    return apr_psprintf(p, "|%" APR_SIZE_T_FMT ":%s", strlen(s), s);
}

const char *bff_txn_binding(apr_pool_t *p, const char *cookie_name, const char *issuer,
                            const char *client_id, const char *redirect_uri)
{
    return apr_pstrcat(p, "bff-txn", lp(p, cookie_name), lp(p, issuer), lp(p, client_id),
                       lp(p, redirect_uri), NULL);
}

char *bff_session_new_id(apr_pool_t *p)
{
    char *id = bff_util_random_token(p, 32);

    return (id && bff_session_id_ok(id)) ? id : NULL;
}

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
           || c == '_';
}

int bff_session_id_ok(const char *id)
{
    int i;

    if (!id) {
        return 0;
    }
    /* Stops at the first non-alphabet byte, so never reads past a short string. */
    for (i = 0; i < BFF_SESSION_ID_LEN; ++i) {
        if (!is_b64url(id[i])) {
            return 0;
        }
    }
    return id[BFF_SESSION_ID_LEN] == '\0';
}
