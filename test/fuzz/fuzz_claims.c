/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* A session's claims for the rest of httpd: bff_claims_get (dotted paths),
 * bff_claims_match (Require bff-claim), bff_claims_text (the env and header
 * values) and the env and header names, on a claims document from the
 * provider (the ID token's payload: anything the signature covers).
 * Input: a path line, a value line (what Require bff-claim compares with),
 * then the JSON document.
 *
 * Oracle, independent of the implementation: a text is at most
 * BFF_CLAIMS_MAX_VALUE bytes with no control byte but HTAB (so never CR,
 * LF or NUL); a header text only visible ASCII, space and HTAB; a string
 * claim's text is that string, byte for byte; a header text is also the env
 * text; null is "not found". A name is the prefix plus one byte per name
 * byte, a header name an HTTP token. A match is a string or scalar equal to
 * the value, or an array with such an element; never an object or null. */
#include "fuzz.h"
#include "bff_claims.h"

static void check_text(apr_pool_t *p, const json_t *v)
{
    const char *env = NULL, *hdr = NULL;
    apr_status_t rv_env = bff_claims_text(p, v, 0, &env);
    apr_status_t rv_hdr = bff_claims_text(p, v, 1, &hdr);
    size_t len, i;

    if (!v || json_is_null(v)) {
        FUZZ_ASSERT(rv_env == APR_NOTFOUND && rv_hdr == APR_NOTFOUND && !env && !hdr);
        return;
    }
    FUZZ_ASSERT(rv_env == APR_SUCCESS || rv_env == APR_EINVAL);
    FUZZ_ASSERT(rv_hdr == APR_SUCCESS || rv_hdr == APR_EINVAL);
    FUZZ_ASSERT((rv_env == APR_SUCCESS) == (env != NULL));
    FUZZ_ASSERT((rv_hdr == APR_SUCCESS) == (hdr != NULL));
    if (env) {
        len = strlen(env);
        FUZZ_ASSERT(len <= BFF_CLAIMS_MAX_VALUE);
        for (i = 0; i < len; i++) {
            unsigned char c = (unsigned char)env[i];

            FUZZ_ASSERT(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        if (json_is_string(v)) {
            FUZZ_ASSERT(len == json_string_length(v) && !memcmp(env, json_string_value(v), len));
        }
    }
    if (hdr) {
        len = strlen(hdr);
        FUZZ_ASSERT(len <= BFF_CLAIMS_MAX_VALUE);
        for (i = 0; i < len; i++) {
            unsigned char c = (unsigned char)hdr[i];

            FUZZ_ASSERT(c == '\t' || (c >= 0x20 && c < 0x7f));
        }
        FUZZ_ASSERT(env && !strcmp(env, hdr));
    }
    else if (env) {
        /* refused for a header only for a byte a header cannot carry */
        for (i = 0; env[i] && (unsigned char)env[i] < 0x80; i++) {
        }
        FUZZ_ASSERT(env[i] != '\0');
    }
}

static void check_name(const char *name, const char *out, const char *prefix, int header)
{
    size_t plen = strlen(prefix), i;

    if (!name || !*name || strlen(name) > BFF_CLAIMS_MAX_PATH) {
        FUZZ_ASSERT(out == NULL);
        return;
    }
    FUZZ_ASSERT(out && !strncmp(out, prefix, plen) && strlen(out) == plen + strlen(name));
    for (i = plen; out[i]; i++) {
        char c = out[i];

        FUZZ_ASSERT((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == (header ? '-' : '_')
                    || (header && c >= 'a' && c <= 'z'));
    }
}

static void check_names(apr_pool_t *p, const char *name)
{
    check_name(name, bff_claims_env_name(p, name), "BFF_CLAIM_", 0);
    check_name(name, bff_claims_header_name(p, name), BFF_CLAIMS_HEADER_PREFIX, 1);
}

/* What a single value may match, decided here without the library. */
static int scalar_equals(const json_t *v, const char *want)
{
    char buf[64];
    size_t n;

    if (json_is_string(v)) {
        return json_string_length(v) == strlen(want)
               && !memcmp(json_string_value(v), want, strlen(want));
    }
    if (json_is_true(v)) {
        return !strcmp(want, "true");
    }
    if (json_is_false(v)) {
        return !strcmp(want, "false");
    }
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return !strcmp(buf, want);
    }
    if (json_is_real(v)) {
        n = json_dumpb(v, buf, sizeof(buf) - 1, JSON_ENCODE_ANY);
        return n > 0 && n < sizeof(buf) - 1 && strlen(want) == n && !memcmp(buf, want, n);
    }
    return 0;
}

static void check_match(apr_pool_t *p, const json_t *v, const char *want)
{
    apr_array_header_t *none = apr_array_make(p, 1, sizeof(const char *));
    apr_array_header_t *one = apr_array_make(p, 1, sizeof(const char *));
    int expect = 0;
    size_t i;

    APR_ARRAY_PUSH(one, const char *) = want;
    FUZZ_ASSERT(!bff_claims_match(v, none));
    if (json_is_array(v)) {
        for (i = 0; i < json_array_size(v); i++) {
            expect |= scalar_equals(json_array_get(v, i), want);
        }
    }
    else if (v) {
        expect = scalar_equals(v, want);
    }
    FUZZ_ASSERT(bff_claims_match(v, one) == expect);
}

static void check_get(json_t *doc, const char *path)
{
    json_t *v = bff_claims_get(doc, path);
    size_t len = strlen(path), segs = 1, i;

    if (!v) {
        return;
    }
    FUZZ_ASSERT(json_is_object(doc) && len > 0 && len <= BFF_CLAIMS_MAX_PATH);
    if (json_object_get(doc, path) == v) {
        return;
    }
    /* found by the walk: no empty segment, not too deep */
    FUZZ_ASSERT(path[0] != '.' && path[len - 1] != '.' && !strstr(path, ".."));
    for (i = 0; i < len; i++) {
        segs += path[i] == '.';
    }
    FUZZ_ASSERT(segs >= 2 && segs <= BFF_CLAIMS_MAX_DEPTH);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *nl1 = memchr(data, '\n', size), *nl2 = NULL;
    const char *path, *want, *key;
    json_t *doc, *v;
    size_t off;

    if (!nl1) {
        apr_pool_destroy(p);
        return 0;
    }
    off = (size_t)(nl1 - (const char *)data) + 1;
    nl2 = memchr(data + off, '\n', size - off);
    if (!nl2) {
        apr_pool_destroy(p);
        return 0;
    }
    path = fuzz_str(p, data, off - 1);
    want = fuzz_str(p, data + off, (size_t)(nl2 - (const char *)data) - off);
    off = (size_t)(nl2 - (const char *)data) + 1;
    doc = json_loadb((const char *)data + off, size - off, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

    check_names(p, path);
    check_get(doc, path);
    v = bff_claims_get(doc, path);
    check_text(p, v);
    check_match(p, v, want);
    check_text(p, doc);
    check_match(p, doc, want);
    if (json_is_object(doc)) {
        json_object_foreach(doc, key, v)
        {
            check_names(p, key);
            check_text(p, v);
            check_match(p, v, want);
        }
    }
    json_decref(doc);
    apr_pool_destroy(p);
    return 0;
}
