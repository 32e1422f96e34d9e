/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: a session's claims as the rest of httpd sees them: dotted-path lookup, matching for
 * Require bff-claim, and the text forms (and names) for environment variables and headers.
 */
#include <string.h>

#include <apr_strings.h>

#include "bff_claims.h"

#define ENV_PREFIX "BFF_CLAIM_"
/* Room for the JSON text of any number or boolean ("%.17g" and an exponent). */
#define SCALAR_TEXT_MAX 64

/* ---- lookup ------------------------------------------------------------- */

json_t *bff_claims_get(json_t *claims, const char *path)
{
    char seg[BFF_CLAIMS_MAX_PATH + 1];
    json_t *cur = claims, *v;
    const char *s, *dot;
    size_t len, n;
    int depth = 0;

    if (!json_is_object(claims) || !path) {
        return NULL;
    }
    len = strlen(path);
    if (len == 0 || len > BFF_CLAIMS_MAX_PATH) {
        return NULL;
    }
    /* Namespaced claims ("https://example.com/roles") are top-level names
     * full of dots: the whole path as one name comes first. */
    if ((v = json_object_get(claims, path)) != NULL) {
        return v;
    }
    for (s = path;; s = dot + 1) {
        dot = strchr(s, '.');
        n = dot ? (size_t)(dot - s) : strlen(s);
        if (n == 0 || ++depth > BFF_CLAIMS_MAX_DEPTH || !json_is_object(cur)) {
            return NULL;
        }
        memcpy(seg, s, n);
        seg[n] = '\0';
        if ((cur = json_object_get(cur, seg)) == NULL || !dot) {
            return cur;
        }
    }
}

/* ---- matching ----------------------------------------------------------- */

/* The JSON text of a number or boolean in buf; 0 for any other type. */
static size_t scalar_text(const json_t *v, char *buf, size_t size)
{
    size_t n;

    if (!json_is_number(v) && !json_is_boolean(v)) {
        return 0;
    }
    n = json_dumpb(v, buf, size, JSON_ENCODE_ANY | JSON_COMPACT);
    return n < size ? n : 0;
}

/* A string, number or boolean equal (as text) to one of values. */
static int match_scalar(const json_t *v, const apr_array_header_t *values)
{
    char buf[SCALAR_TEXT_MAX];
    const char *text;
    size_t len;
    int i;

    if (json_is_string(v)) {
        text = json_string_value(v);
        len = json_string_length(v);
    }
    else if ((len = scalar_text(v, buf, sizeof(buf))) > 0) {
        text = buf;
    }
    else {
        return 0;
    }
    for (i = 0; i < values->nelts; i++) {
        const char *want = APR_ARRAY_IDX(values, i, const char *);

        /* Length first: a claim with an embedded NUL equals no value. */
        if (want && strlen(want) == len && memcmp(want, text, len) == 0) {
            return 1;
        }
    }
    return 0;
}

int bff_claims_match(const json_t *v, const apr_array_header_t *values)
{
    size_t i;

    if (!v || !values || values->nelts <= 0) {
        return 0;
    }
    if (!json_is_array(v)) {
        return match_scalar(v, values);
    }
    /* One level only: an array inside the array is no member. */
    for (i = 0; i < json_array_size(v); i++) {
        if (match_scalar(json_array_get(v, i), values)) {
            return 1;
        }
    }
    return 0;
}

/* ---- text --------------------------------------------------------------- */

/* Bytes a value may hold: never a control character (CR and LF would split
 * a header or a log line, NUL cut it short) but HTAB; in a header only
 * visible ASCII, space and HTAB (RFC 9110 field-value, no obs-text). */
static int byte_ok(unsigned char c, int for_header)
{
    if (c == '\t') {
        return 1;
    }
    if (c < 0x20 || c == 0x7f) {
        return 0;
    }
    return !for_header || c < 0x80;
}

static apr_status_t finish(apr_pool_t *p, const char *text, size_t len, int for_header,
                           const char **out)
{
    size_t i;

    if (len > BFF_CLAIMS_MAX_VALUE) {
        return APR_EINVAL;
    }
    for (i = 0; i < len; i++) {
        if (!byte_ok((unsigned char)text[i], for_header)) {
            return APR_EINVAL;
        }
    }
    *out = apr_pstrmemdup(p, text, len);
    return APR_SUCCESS;
}

/* An array that joins with ",": strings, numbers and booleans only, and no
 * string holding a "," (["a,b"] must not read as the two values a and b). */
static int joinable(const json_t *v)
{
    size_t i;

    for (i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);

        if (json_is_string(e)) {
            if (memchr(json_string_value(e), ',', json_string_length(e))) {
                return 0;
            }
        }
        else if (!json_is_number(e) && !json_is_boolean(e)) {
            return 0;
        }
    }
    return 1;
}

/* The elements joined with "," into buf (BFF_CLAIMS_MAX_VALUE + 1 bytes);
 * the length, or more than BFF_CLAIMS_MAX_VALUE when they do not fit. */
static size_t join(const json_t *v, char *buf)
{
    const size_t cap = BFF_CLAIMS_MAX_VALUE + 1;
    char num[SCALAR_TEXT_MAX];
    size_t i, len = 0, n;
    const char *s;

    for (i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);

        if (json_is_string(e)) {
            s = json_string_value(e);
            n = json_string_length(e);
        }
        else {
            s = num;
            n = scalar_text(e, num, sizeof(num));
        }
        if (n + (i > 0) > cap - len) {
            return cap;
        }
        if (i > 0) {
            buf[len++] = ',';
        }
        memcpy(buf + len, s, n);
        len += n;
    }
    return len;
}

apr_status_t bff_claims_text(apr_pool_t *p, const json_t *v, int for_header, const char **out)
{
    char buf[BFF_CLAIMS_MAX_VALUE + 1];
    size_t n;

    *out = NULL;
    if (!v || json_is_null(v)) {
        return APR_NOTFOUND;
    }
    if (json_is_string(v)) {
        return finish(p, json_string_value(v), json_string_length(v), for_header, out);
    }
    if (json_is_number(v) || json_is_boolean(v)) {
        n = scalar_text(v, buf, sizeof(buf));
        return n > 0 ? finish(p, buf, n, for_header, out) : APR_EINVAL;
    }
    if (json_is_array(v) && joinable(v)) {
        return finish(p, buf, join(v, buf), for_header, out);
    }
    /* Objects and the rest as compact JSON: jansson escapes every control
     * character inside strings, finish() still checks the whole text. The
     * dump stops writing at the buffer's end but returns the full size. */
    n = json_dumpb(v, buf, sizeof(buf), JSON_ENCODE_ANY | JSON_COMPACT);
    if (n == 0) {
        return APR_EINVAL;
    }
    return finish(p, buf, n, for_header, out);
}

/* ---- names -------------------------------------------------------------- */

static int ascii_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static char ascii_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* prefix + name with each byte mapped: NULL for a name out of bounds. */
static const char *make_name(apr_pool_t *p, const char *prefix, const char *name, int header)
{
    size_t plen = strlen(prefix), len, i;
    int run = 0;
    char *out;

    if (!name || (len = strlen(name)) == 0 || len > BFF_CLAIMS_MAX_PATH) {
        return NULL;
    }
    out = apr_palloc(p, plen + len + 1);
    memcpy(out, prefix, plen);
    for (i = 0; i < len; i++) {
        char c = name[i];
        char *o = out + plen + i;

        if (!ascii_alnum((unsigned char)c)) {
            *o = header ? '-' : '_';
            run = 0;
        }
        else if (!header || !run) {
            *o = ascii_upper(c);
            run = 1;
        }
        else {
            *o = c;
        }
    }
    out[plen + len] = '\0';
    return out;
}

const char *bff_claims_env_name(apr_pool_t *p, const char *name)
{
    return make_name(p, ENV_PREFIX, name, 0);
}

const char *bff_claims_header_name(apr_pool_t *p, const char *name)
{
    return make_name(p, BFF_CLAIMS_HEADER_PREFIX, name, 1);
}
