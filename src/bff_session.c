/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
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

#define BFF_SESSION_FORMAT 1
#define BFF_SESSION_ID_LEN 43   /* base64url of 32 bytes, unpadded */

typedef enum {
    F_STR,      /* const char *, NULL when absent */
    F_INT,      /* apr_int64_t >= 0 */
    F_U64,      /* apr_uint64_t that fits a JSON integer */
    F_OBJ       /* const char * holding a JSON object as text, NULL when absent */
} field_kind_e;

typedef struct {
    const char *name;
    field_kind_e kind;
    size_t offset;
    int required;
} field_t;

#define SF(name, kind, req) { #name, kind, offsetof(bff_session_t, name), req }
static const field_t session_fields[] = {
    SF(rev, F_U64, 0),
    SF(iss, F_STR, 1),
    SF(sub, F_STR, 1),
    SF(sid, F_STR, 0),
    SF(access_token, F_STR, 0),
    SF(token_type, F_STR, 0),
    SF(refresh_token, F_STR, 0),
    SF(id_token, F_STR, 0),
    SF(claims, F_OBJ, 0),
    SF(logout_id, F_STR, 0),
    SF(at_expires, F_INT, 0),
    SF(at_issued, F_INT, 0),
    SF(created, F_INT, 1),
    SF(last_access, F_INT, 0),
    SF(expires, F_INT, 1),
};
#undef SF

#define TF(name, kind, req) { #name, kind, offsetof(bff_txn_t, name), req }
static const field_t txn_fields[] = {
    TF(state, F_STR, 1),
    TF(nonce, F_STR, 1),
    TF(code_verifier, F_STR, 1),
    TF(return_to, F_STR, 1),
    TF(binder_hash, F_STR, 1),
    TF(created, F_INT, 0),
    TF(expires, F_INT, 1),
};
#undef TF

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

#define FIELD(base, f, type) ((type *)(void *)((char *)(base) + (f)->offset))
#define CFIELD(base, f, type) \
    ((type const *)(const void *)((const char *)(base) + (f)->offset))

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
    json_error_t jerr;

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
    case F_OBJ: {
        const char *s = *CFIELD(base, f, const char *);
        if (!s) {
            return f->required ? APR_EINVAL : APR_SUCCESS;
        }
        if (strlen(s) > BFF_SESSION_MAX_RECORD
            || !(v = json_loads(s, JSON_REJECT_DUPLICATES, &jerr))) {
            return APR_EINVAL;
        }
        if (!json_is_object(v)) {
            json_decref(v);
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
    case F_U64: {
        apr_uint64_t n = *CFIELD(base, f, apr_uint64_t);
        if (n > (apr_uint64_t)LLONG_MAX || !(v = json_integer((json_int_t)n))) {
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
    if (!(obj = json_object())
        || json_object_set_new(obj, "v", json_integer(BFF_SESSION_FORMAT))) {
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
    case F_OBJ: {
        char *dump;
        if (!json_is_object(v) || !(dump = json_dumps(v, JSON_COMPACT))) {
            return APR_EINVAL;
        }
        *FIELD(base, f, const char *) = apr_pstrdup(p, dump);
        free_dump(dump);
        break;
    }
    case F_INT:
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            return APR_EINVAL;
        }
        *FIELD(base, f, apr_int64_t) = (apr_int64_t)json_integer_value(v);
        break;
    case F_U64:
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            return APR_EINVAL;
        }
        *FIELD(base, f, apr_uint64_t) = (apr_uint64_t)json_integer_value(v);
        break;
    }
    return APR_SUCCESS;
}

/* Accepts exactly what encode() writes: one object, the known format
 * version, known fields of the right types and sizes, nothing else. */
static apr_status_t decode(apr_pool_t *p, const field_t *fields, apr_size_t nfields,
                           const char *in, apr_size_t len, void *base)
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
    if (!json_is_integer(ver) || json_integer_value(ver) != BFF_SESSION_FORMAT) {
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

apr_status_t bff_session_encode(apr_pool_t *p, const bff_session_t *s, char **out,
                                apr_size_t *len)
{
    return encode(p, session_fields, NFIELDS(session_fields), s, out, len);
}

apr_status_t bff_session_decode(apr_pool_t *p, const char *in, apr_size_t len,
                                bff_session_t **ps)
{
    bff_session_t *s = apr_pcalloc(p, sizeof(*s));
    apr_status_t rv;

    *ps = NULL;
    if (APR_SUCCESS == (rv = decode(p, session_fields, NFIELDS(session_fields), in, len, s))) {
        *ps = s;
    }
    return rv;
}

apr_status_t bff_txn_encode(apr_pool_t *p, const bff_txn_t *t, char **out, apr_size_t *len)
{
    return encode(p, txn_fields, NFIELDS(txn_fields), t, out, len);
}

apr_status_t bff_txn_decode(apr_pool_t *p, const char *in, apr_size_t len, bff_txn_t **pt)
{
    bff_txn_t *t = apr_pcalloc(p, sizeof(*t));
    apr_status_t rv;

    *pt = NULL;
    if (APR_SUCCESS == (rv = decode(p, txn_fields, NFIELDS(txn_fields), in, len, t))) {
        *pt = t;
    }
    return rv;
}

static apr_status_t seal_json(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                              char *json, apr_size_t jlen, unsigned char **rec,
                              apr_size_t *len)
{
    apr_status_t rv;

    rv = bff_crypto_seal(p, ring, store_key, strlen(store_key), json, jlen, rec, len);
    /* The pool outlives this call; the plaintext should not. */
    OPENSSL_cleanse(json, jlen);
    return rv;
}

apr_status_t bff_session_seal(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                              const bff_session_t *s, unsigned char **rec, apr_size_t *len)
{
    char *json;
    apr_size_t jlen;
    apr_status_t rv;

    *rec = NULL;
    *len = 0;
    if (!store_key) {
        return APR_EINVAL;
    }
    if (APR_SUCCESS != (rv = bff_session_encode(p, s, &json, &jlen))) {
        return rv;
    }
    return seal_json(p, ring, store_key, json, jlen, rec, len);
}

apr_status_t bff_txn_seal(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                          const bff_txn_t *t, unsigned char **rec, apr_size_t *len)
{
    char *json;
    apr_size_t jlen;
    apr_status_t rv;

    *rec = NULL;
    *len = 0;
    if (!store_key) {
        return APR_EINVAL;
    }
    if (APR_SUCCESS != (rv = bff_txn_encode(p, t, &json, &jlen))) {
        return rv;
    }
    return seal_json(p, ring, store_key, json, jlen, rec, len);
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
    rv = bff_crypto_open(p, ring, store_key, strlen(store_key), rec, len, &pt, &ptlen,
                         key_index);
    if (APR_SUCCESS != rv) {
        return rv;
    }
    rv = bff_session_decode(p, (const char *)pt, ptlen, s);
    OPENSSL_cleanse(pt, ptlen);
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

char *bff_session_new_id(apr_pool_t *p)
{
    char *id = bff_util_random_token(p, 32);

    return (id && bff_session_id_ok(id)) ? id : NULL;
}

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
           || c == '-' || c == '_';
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
