/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: claims lookup, matching and text forms (bff_claims.h). (Interim: replaced by the
 * claims branch.)
 */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "bff_claims.h"

json_t *bff_claims_get(json_t *claims, const char *path)
{
    const char *seg = path, *dot;
    json_t *v = claims;
    int depth = 0;

    if (!json_is_object(claims) || !path || !*path || strlen(path) > BFF_CLAIMS_MAX_PATH) {
        return NULL;
    }
    if ((v = json_object_get(claims, path))) {
        return v;
    }
    v = claims;
    while (seg) {
        char name[BFF_CLAIMS_MAX_PATH + 1];
        apr_size_t n;

        dot = strchr(seg, '.');
        n = dot ? (apr_size_t)(dot - seg) : strlen(seg);
        if (!n || ++depth > BFF_CLAIMS_MAX_DEPTH || !json_is_object(v)) {
            return NULL;
        }
        memcpy(name, seg, n);
        name[n] = '\0';
        if (!(v = json_object_get(v, name))) {
            return NULL;
        }
        seg = dot ? dot + 1 : NULL;
    }
    return v;
}

static int scalar_text(const json_t *v, char *buf, apr_size_t len, const char **out)
{
    if (json_is_string(v)) {
        *out = json_string_value(v);
    }
    else if (json_is_integer(v)) {
        apr_snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *out = buf;
    }
    else if (json_is_boolean(v)) {
        *out = json_is_true(v) ? "true" : "false";
    }
    else {
        return 0;
    }
    return 1;
}

static int one_of(const json_t *v, const apr_array_header_t *values)
{
    char buf[32];
    const char *t;
    int i;

    if (!scalar_text(v, buf, sizeof(buf), &t)) {
        return 0;
    }
    for (i = 0; values && i < values->nelts; ++i) {
        if (!strcmp(t, APR_ARRAY_IDX(values, i, const char *))) {
            return 1;
        }
    }
    return 0;
}

int bff_claims_match(const json_t *v, const apr_array_header_t *values)
{
    size_t i;

    if (json_is_array(v)) {
        for (i = 0; i < json_array_size(v); ++i) {
            if (one_of(json_array_get(v, i), values)) {
                return 1;
            }
        }
        return 0;
    }
    return one_of(v, values);
}

static int text_ok(const char *s, int for_header)
{
    const unsigned char *c;

    if (strlen(s) > BFF_CLAIMS_MAX_VALUE) {
        return 0;
    }
    for (c = (const unsigned char *)s; *c; ++c) {
        if ((*c < 0x20 && *c != '\t') || *c == 0x7f || (for_header && *c > 0x7e)) {
            return 0;
        }
    }
    return 1;
}

apr_status_t bff_claims_text(apr_pool_t *p, const json_t *v, int for_header, const char **out)
{
    char buf[32];
    const char *t;
    size_t i;

    if (!v || json_is_null(v)) {
        return APR_NOTFOUND;
    }
    if (scalar_text(v, buf, sizeof(buf), &t)) {
        t = apr_pstrdup(p, t);
    }
    else {
        int joinable = json_is_array(v);
        for (i = 0; joinable && i < json_array_size(v); ++i) {
            joinable = scalar_text(json_array_get(v, i), buf, sizeof(buf), &t);
        }
        if (joinable) {
            t = "";
            for (i = 0; i < json_array_size(v); ++i) {
                const char *e;
                scalar_text(json_array_get(v, i), buf, sizeof(buf), &e);
                t = i ? apr_pstrcat(p, t, ",", e, NULL) : apr_pstrdup(p, e);
            }
        }
        else {
            char *j = json_dumps(v, JSON_COMPACT);
            if (!j) {
                return APR_EINVAL;
            }
            t = apr_pstrdup(p, j);
            free(j);
        }
    }
    if (!text_ok(t, for_header)) {
        return APR_EINVAL;
    }
    *out = t;
    return APR_SUCCESS;
}

const char *bff_claims_env_name(apr_pool_t *p, const char *name)
{
    char *n = apr_pstrcat(p, "BFF_CLAIM_", name, NULL), *c;

    for (c = n + 10; *c; ++c) {
        *c = apr_isalnum(*c) ? (char)apr_toupper(*c) : '_';
    }
    return n;
}

const char *bff_claims_header_name(apr_pool_t *p, const char *name)
{
    char *n = apr_pstrcat(p, BFF_CLAIMS_HEADER_PREFIX, name, NULL), *c;
    int start = 1;

    for (c = n + sizeof(BFF_CLAIMS_HEADER_PREFIX) - 1; *c; ++c) {
        if (apr_isalnum(*c)) {
            *c = start ? (char)apr_toupper(*c) : (char)apr_tolower(*c);
            start = 0;
        }
        else {
            *c = '-';
            start = 1;
        }
    }
    return n;
}
