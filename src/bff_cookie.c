/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: Cookie request header parsing and stripping, Set-Cookie formatting (RFC 6265), on plain
 * strings.
 */
#include <string.h>

#include <apr_strings.h>

#include "bff_cookie.h"

#define BFF_COOKIE_VALUE_MAX 4096
#define BFF_COOKIE_NAME_MAX 256

/* RFC 6265 cookie-octet: visible ASCII except DQUOTE, comma, semicolon and
 * backslash. */
static int cookie_octet_ok(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a)
           || (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

/* RFC 7230 tchar. */
static int tchar_ok(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        return 1;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int bff_cookie_name_ok(const char *name)
{
    apr_size_t i;

    if (name == NULL || *name == '\0') {
        return 0;
    }
    for (i = 0; name[i] != '\0'; i++) {
        if (i >= BFF_COOKIE_NAME_MAX || !tchar_ok((unsigned char)name[i])) {
            return 0;
        }
    }
    return 1;
}

static int value_ok(const char *v, apr_size_t len)
{
    apr_size_t i;

    if (len > BFF_COOKIE_VALUE_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!cookie_octet_ok((unsigned char)v[i])) {
            return 0;
        }
    }
    return 1;
}

/* The next "name=value" pair of a Cookie header, with surrounding OWS
 * removed. Returns the position after the pair's ';' (or the end), NULL
 * when the header is exhausted. The pair may be empty. */
static const char *next_pair(const char *s, const char **pair, apr_size_t *plen)
{
    const char *end;

    if (*s == '\0') {
        return NULL;
    }
    end = strchr(s, ';');
    if (end == NULL) {
        end = s + strlen(s);
    }
    *pair = s;
    *plen = (apr_size_t)(end - s);
    while (*plen > 0 && is_ows(**pair)) {
        (*pair)++;
        (*plen)--;
    }
    while (*plen > 0 && is_ows((*pair)[*plen - 1])) {
        (*plen)--;
    }
    return *end == ';' ? end + 1 : end;
}

/* Name part of a pair (up to '=' with OWS trimmed; the whole pair when
 * there is no '='), and the value part when there is one. */
static void split_pair(const char *pair, apr_size_t plen, apr_size_t *nlen, const char **val,
                       apr_size_t *vlen)
{
    const char *eq = memchr(pair, '=', plen);

    if (eq == NULL) {
        *nlen = plen;
        *val = NULL;
        *vlen = 0;
        return;
    }
    *nlen = (apr_size_t)(eq - pair);
    while (*nlen > 0 && is_ows(pair[*nlen - 1])) {
        (*nlen)--;
    }
    *val = eq + 1;
    *vlen = plen - (apr_size_t)(eq - pair) - 1;
    while (*vlen > 0 && is_ows(**val)) {
        (*val)++;
        (*vlen)--;
    }
}

const char *bff_cookie_get(apr_pool_t *p, const char *header, const char *name)
{
    const char *s = header, *pair, *val;
    apr_size_t plen, nlen, vlen, want;

    if (header == NULL || !bff_cookie_name_ok(name)) {
        return NULL;
    }
    want = strlen(name);
    while ((s = next_pair(s, &pair, &plen)) != NULL) {
        split_pair(pair, plen, &nlen, &val, &vlen);
        if (val == NULL || nlen != want || memcmp(pair, name, want) != 0) {
            continue;
        }
        /* The first cookie of that name decides: falling through to a later
         * one would let a bad first copy select which value we use. */
        if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
            val++;
            vlen -= 2;
        }
        if (!value_ok(val, vlen)) {
            return NULL;
        }
        return apr_pstrmemdup(p, val, vlen);
    }
    return NULL;
}

static int name_prefixed(const char *name, apr_size_t nlen, const char *prefix)
{
    apr_size_t plen = prefix ? strlen(prefix) : 0;

    return plen > 0 && nlen > plen && memcmp(name, prefix, plen) == 0;
}

apr_array_header_t *bff_cookie_with_prefix(apr_pool_t *p, const char *header, const char *prefix,
                                           int max)
{
    const char *s = header, *pair, *val;
    apr_size_t plen, nlen, vlen;
    apr_array_header_t *out = NULL;
    bff_cookie_pair_t *c;
    int i, dup;

    if (header == NULL || !bff_cookie_name_ok(prefix) || max <= 0) {
        return NULL;
    }
    while ((s = next_pair(s, &pair, &plen)) != NULL) {
        split_pair(pair, plen, &nlen, &val, &vlen);
        if (val == NULL || !name_prefixed(pair, nlen, prefix)) {
            continue;
        }
        /* As in bff_cookie_get, the first cookie of a name decides. */
        for (dup = 0, i = 0; out && i < out->nelts && !dup; ++i) {
            const char *n = APR_ARRAY_IDX(out, i, bff_cookie_pair_t).name;
            dup = strlen(n) == nlen && memcmp(n, pair, nlen) == 0;
        }
        if (dup) {
            continue;
        }
        if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
            val++;
            vlen -= 2;
        }
        if (!value_ok(val, vlen) || nlen > BFF_COOKIE_NAME_MAX) {
            continue;
        }
        if (!out) {
            out = apr_array_make(p, max, sizeof(bff_cookie_pair_t));
        }
        c = apr_array_push(out);
        c->name = apr_pstrmemdup(p, pair, nlen);
        c->value = apr_pstrmemdup(p, val, vlen);
        if (out->nelts >= max) {
            break;
        }
    }
    return out;
}

static int name_listed(const char *name, apr_size_t nlen, const char *const *names)
{
    for (; names != NULL && *names != NULL; names++) {
        if (strlen(*names) == nlen && memcmp(*names, name, nlen) == 0) {
            return 1;
        }
    }
    return 0;
}

char *bff_cookie_strip(apr_pool_t *p, const char *header, const char *const *names)
{
    return bff_cookie_strip_prefix(p, header, names, NULL);
}

char *bff_cookie_strip_prefix(apr_pool_t *p, const char *header, const char *const *names,
                              const char *prefix)
{
    const char *s = header, *pair, *val;
    apr_size_t plen, nlen, vlen, o = 0, hlen;
    char *out;

    if (header == NULL) {
        return NULL;
    }
    /* Every kept pair is at most its own bytes plus "; ": the result never
     * needs more than twice the input. */
    hlen = strlen(header);
    if (hlen > (APR_SIZE_MAX - 1) / 2) {
        return NULL;
    }
    out = apr_palloc(p, hlen * 2 + 1);
    while ((s = next_pair(s, &pair, &plen)) != NULL) {
        if (plen == 0) {
            continue;
        }
        split_pair(pair, plen, &nlen, &val, &vlen);
        /* A pair without '=' is matched by its whole text: browsers send
         * such a cookie and an application could read it as our name. */
        if (name_listed(pair, nlen, names) || name_prefixed(pair, nlen, prefix)) {
            continue;
        }
        if (o > 0) {
            out[o++] = ';';
            out[o++] = ' ';
        }
        memcpy(out + o, pair, plen);
        o += plen;
    }
    if (o == 0) {
        return NULL;
    }
    out[o] = '\0';
    return out;
}

char *bff_cookie_format(apr_pool_t *p, const char *name, const char *value, apr_int64_t max_age,
                        bff_samesite_e samesite)
{
    const char *ss;
    char *c;

    if (!bff_cookie_name_ok(name)) {
        return NULL;
    }
    if (value == NULL) {
        value = "";
    }
    if (!value_ok(value, strlen(value))) {
        return NULL;
    }
    switch (samesite) {
    case BFF_SAMESITE_STRICT:
        ss = "Strict";
        break;
    case BFF_SAMESITE_LAX:
        ss = "Lax";
        break;
    default:
        return NULL;
    }
    c = apr_pstrcat(p, name, "=", value, "; Path=/; Secure; HttpOnly; SameSite=", ss, NULL);
    if (max_age >= 0) {
        c = apr_psprintf(p, "%s; Max-Age=%" APR_INT64_T_FMT, c, max_age);
    }
    return c;
}
