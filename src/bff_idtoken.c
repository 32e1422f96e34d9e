/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <string.h>

#include "bff_idtoken.h"
#include "bff_jose.h"
#include "bff_util.h"

#define I64_MAX ((apr_int64_t)0x7fffffffffffffffLL)
#define I64_MIN (-I64_MAX - 1)

/* Time arithmetic on hostile numbers must not overflow. */
static apr_int64_t sat_add(apr_int64_t a, apr_int64_t b)
{
    if (b > 0 && a > I64_MAX - b) {
        return I64_MAX;
    }
    if (b < 0 && a < I64_MIN - b) {
        return I64_MIN;
    }
    return a + b;
}

/* A NumericDate: a JSON integer, or a real truncated to whole seconds. */
static int claim_time(const json_t *claims, const char *name, apr_int64_t *t)
{
    json_t *v = json_object_get(claims, name);

    if (json_is_integer(v)) {
        *t = (apr_int64_t)json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);

        if (d != d) {
            return 0;
        }
        /* Out-of-range double to integer conversion is undefined. */
        if (d >= 9.2e18) {
            *t = I64_MAX;
        }
        else if (d <= -9.2e18) {
            *t = I64_MIN;
        }
        else {
            *t = (apr_int64_t)d;
        }
        return 1;
    }
    return 0;
}

static int json_str_eq(const json_t *v, const char *s)
{
    /* Length first: a string with an embedded NUL must not match its prefix. */
    return json_is_string(v) && json_string_length(v) == strlen(s)
           && !memcmp(json_string_value(v), s, json_string_length(v));
}

static apr_status_t check_aud(const json_t *claims, const char *client_id, const char **err)
{
    json_t *aud = json_object_get(claims, "aud");
    json_t *azp = json_object_get(claims, "azp");
    size_t i, n = 0;
    int found = 0;

    if (json_is_string(aud)) {
        n = 1;
        found = json_str_eq(aud, client_id);
    }
    else if (json_is_array(aud) && json_array_size(aud) > 0) {
        n = json_array_size(aud);
        for (i = 0; i < n; ++i) {
            json_t *a = json_array_get(aud, i);
            if (!json_is_string(a)) {
                *err = "aud claim holds a non-string";
                return APR_EINVAL;
            }
            found |= json_str_eq(a, client_id);
        }
    }
    else {
        *err = "aud claim missing or not a string or array";
        return APR_EINVAL;
    }
    if (!found) {
        *err = "aud claim does not contain the client_id";
        return APR_EINVAL;
    }
    /* Another audience we do not know could replay the token to us: only
     * accept it when the provider says we are the party it was issued to. */
    if (n > 1 && !azp) {
        *err = "aud claim has several audiences but azp is absent";
        return APR_EINVAL;
    }
    if (azp && !json_str_eq(azp, client_id)) {
        *err = "azp claim is not the client_id";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

static apr_status_t check_times(const json_t *claims, const bff_idtoken_expect_t *e,
                                const char **err)
{
    apr_int64_t exp, iat;
    apr_int64_t leeway = e->leeway > 0 ? e->leeway : 0;
    apr_int64_t max_age = e->max_age > 0 ? e->max_age : 0;

    if (!claim_time(claims, "exp", &exp)) {
        *err = "exp claim missing or not a number";
        return APR_EINVAL;
    }
    if (exp <= sat_add(e->now, -leeway)) {
        *err = "token expired (exp)";
        return APR_EINVAL;
    }
    if (!claim_time(claims, "iat", &iat)) {
        *err = "iat claim missing or not a number";
        return APR_EINVAL;
    }
    if (iat > sat_add(e->now, leeway)) {
        *err = "iat claim is in the future";
        return APR_EINVAL;
    }
    if (iat < sat_add(sat_add(e->now, -max_age), -leeway)) {
        *err = "iat claim is too old";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t bff_idtoken_validate(const json_t *claims, const bff_idtoken_expect_t *expect,
                                  const char **err)
{
    json_t *v;
    apr_status_t rv;

    *err = NULL;
    if (!expect || !expect->issuer || !expect->client_id) {
        *err = "no expected issuer or client_id";
        return APR_EINVAL;
    }
    if (!json_is_object(claims)) {
        *err = "claims are not a JSON object";
        return APR_EINVAL;
    }

    v = json_object_get(claims, "iss");
    if (!json_is_string(v)) {
        *err = "iss claim missing or not a string";
        return APR_EINVAL;
    }
    if (!json_str_eq(v, expect->issuer)) {
        *err = "iss claim is not the expected issuer";
        return APR_EINVAL;
    }

    if (APR_SUCCESS != (rv = check_aud(claims, expect->client_id, err))) {
        return rv;
    }
    if (APR_SUCCESS != (rv = check_times(claims, expect, err))) {
        return rv;
    }

    if (expect->nonce) {
        v = json_object_get(claims, "nonce");
        if (!json_is_string(v)) {
            *err = "nonce claim missing or not a string";
            return APR_EINVAL;
        }
        if (json_string_length(v) != strlen(json_string_value(v))
            || !bff_util_ct_streq(json_string_value(v), expect->nonce)) {
            *err = "nonce claim does not match";
            return APR_EINVAL;
        }
    }

    v = json_object_get(claims, "sub");
    if (!json_is_string(v)) {
        *err = "sub claim missing or not a string";
        return APR_EINVAL;
    }
    if (json_string_length(v) == 0) {
        *err = "sub claim is empty";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t bff_idtoken_verify(apr_pool_t *p, const char *compact,
                                const struct bff_jwks_t *jwks, const char *const *allowed_algs,
                                const bff_idtoken_expect_t *expect, json_t **claims,
                                const char **err)
{
    bff_jws_t *jws;
    apr_status_t rv;

    *claims = NULL;
    if (APR_SUCCESS != (rv = bff_jose_jws_parse(p, compact, &jws, err))) {
        return rv;
    }
    if (APR_SUCCESS != (rv = bff_jose_jws_verify(p, jws, jwks, allowed_algs, err))) {
        return rv;
    }
    if (APR_SUCCESS != (rv = bff_idtoken_validate(jws->payload, expect, err))) {
        return rv;
    }
    *claims = jws->payload;
    return APR_SUCCESS;
}
