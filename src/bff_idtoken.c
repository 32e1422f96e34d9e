/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: verification of ID tokens, refreshed ID tokens and back-channel logout tokens: the
 * signature through bff_jose, then every claim check.
 */
#include <string.h>
#include <strings.h>

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

static int aud_trusted(const json_t *a, const char *const *trusted)
{
    for (; trusted && *trusted; ++trusted) {
        if (json_str_eq(a, *trusted)) {
            return 1;
        }
    }
    return 0;
}

static apr_status_t check_aud(const json_t *claims, const char *client_id,
                              const char *const *trusted, const char **err)
{
    json_t *aud = json_object_get(claims, "aud");
    json_t *azp = json_object_get(claims, "azp");
    size_t i, n = 0;
    int found = 0, untrusted = 0;

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
            if (json_str_eq(a, client_id)) {
                found = 1;
            }
            else if (!aud_trusted(a, trusted)) {
                untrusted = 1;
            }
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
    /* azp alone is not enough: an audience we do not trust could use the
     * same token elsewhere (OIDC Core 3.1.3.7 item 3). */
    if (untrusted) {
        *err = "aud claim names an audience that is not trusted";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

static apr_status_t check_exp(const json_t *claims, const bff_idtoken_expect_t *e, int required,
                              const char **err)
{
    apr_int64_t exp;
    apr_int64_t leeway = e->leeway > 0 ? e->leeway : 0;

    if (!json_object_get(claims, "exp") && !required) {
        return APR_SUCCESS;
    }
    if (!claim_time(claims, "exp", &exp)) {
        *err = required ? "exp claim missing or not a number" : "exp claim is not a number";
        return APR_EINVAL;
    }
    if (exp <= sat_add(e->now, -leeway)) {
        *err = "token expired (exp)";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

/* iat is always required and never in the future; its age is bounded only
 * where the token must be fresh (login, logout), not for a refreshed ID
 * token whose session may be hours old. */
static apr_status_t check_iat(const json_t *claims, const bff_idtoken_expect_t *e, int check_age,
                              const char **err)
{
    apr_int64_t iat;
    apr_int64_t leeway = e->leeway > 0 ? e->leeway : 0;
    apr_int64_t max_age = e->max_age > 0 ? e->max_age : 0;

    if (!claim_time(claims, "iat", &iat)) {
        *err = "iat claim missing or not a number";
        return APR_EINVAL;
    }
    if (iat > sat_add(e->now, leeway)) {
        *err = "iat claim is in the future";
        return APR_EINVAL;
    }
    if (check_age && iat < sat_add(sat_add(e->now, -max_age), -leeway)) {
        *err = "iat claim is too old";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

static apr_status_t check_start(const json_t *claims, const bff_idtoken_expect_t *expect,
                                const char **err)
{
    json_t *v;

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
    return check_aud(claims, expect->client_id, expect->trusted_audiences, err);
}

static apr_status_t check_nonce(const json_t *claims, const char *nonce, const char **err)
{
    json_t *v;

    if (!nonce) {
        return APR_SUCCESS;
    }
    v = json_object_get(claims, "nonce");
    if (!json_is_string(v)) {
        *err = "nonce claim missing or not a string";
        return APR_EINVAL;
    }
    if (json_string_length(v) != strlen(json_string_value(v))
        || !bff_util_ct_streq(json_string_value(v), nonce)) {
        *err = "nonce claim does not match";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

static apr_status_t check_sub(const json_t *claims, const char **err)
{
    json_t *v = json_object_get(claims, "sub");

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

/* The login asked for max_age: the provider must say when the user
 * authenticated, and that must be recent enough (else a provider that
 * ignored max_age would let an old authentication through). */
static apr_status_t check_auth_time(const json_t *claims, const bff_idtoken_expect_t *e,
                                    const char **err)
{
    apr_int64_t at;
    apr_int64_t leeway = e->leeway > 0 ? e->leeway : 0;
    apr_int64_t max_age = e->auth_max_age > 0 ? e->auth_max_age : 0;

    if (!e->check_auth_time) {
        return APR_SUCCESS;
    }
    if (!claim_time(claims, "auth_time", &at)) {
        *err = "auth_time claim missing or not a number (the login sent max_age)";
        return APR_EINVAL;
    }
    if (at > sat_add(e->now, leeway)) {
        *err = "auth_time claim is in the future";
        return APR_EINVAL;
    }
    if (at < sat_add(sat_add(e->now, -max_age), -leeway)) {
        *err = "auth_time claim is older than the login's max_age allows";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t bff_idtoken_validate(const json_t *claims, const bff_idtoken_expect_t *expect,
                                  const char **err)
{
    apr_status_t rv;

    if (APR_SUCCESS != (rv = check_start(claims, expect, err))
        || APR_SUCCESS != (rv = check_exp(claims, expect, 1, err))
        || APR_SUCCESS != (rv = check_iat(claims, expect, 1, err))
        || APR_SUCCESS != (rv = check_nonce(claims, expect->nonce, err))
        || APR_SUCCESS != (rv = check_auth_time(claims, expect, err))) {
        return rv;
    }
    return check_sub(claims, err);
}

apr_status_t bff_idtoken_validate_refreshed(const json_t *claims,
                                            const bff_idtoken_expect_t *expect,
                                            const char *orig_sub, const char **err)
{
    apr_status_t rv;

    if (APR_SUCCESS != (rv = check_start(claims, expect, err))) {
        return rv;
    }
    if (!orig_sub || !*orig_sub) {
        *err = "no original sub to compare the refreshed ID token with";
        return APR_EINVAL;
    }
    if (APR_SUCCESS != (rv = check_exp(claims, expect, 1, err))
        || APR_SUCCESS != (rv = check_iat(claims, expect, 0, err))
        || APR_SUCCESS != (rv = check_nonce(claims, expect->nonce, err))
        || APR_SUCCESS != (rv = check_sub(claims, err))) {
        return rv;
    }
    /* OIDC Core 12.2: a refresh must not switch the session to another
     * user. Length-aware: "alice\0x" is not "alice". */
    if (!json_str_eq(json_object_get(claims, "sub"), orig_sub)) {
        *err = "sub claim differs from the session's original sub";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0) */

#define BCL_EVENT "http://schemas.openid.net/event/backchannel-logout"
#define BCL_JTI_MAX 256

/* Optional identifier claim (sub, sid): absent is fine; present must be a
 * non-empty string without NUL, since the caller matches sessions on it. */
static apr_status_t logout_ident(const json_t *claims, const char *name, int *present,
                                 const char *bad_msg, const char **err)
{
    json_t *v = json_object_get(claims, name);

    *present = 0;
    if (!v) {
        return APR_SUCCESS;
    }
    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) != strlen(json_string_value(v))) {
        *err = bad_msg;
        return APR_EINVAL;
    }
    *present = 1;
    return APR_SUCCESS;
}

static apr_status_t logout_jti(const json_t *claims, const char **err)
{
    json_t *v = json_object_get(claims, "jti");

    if (!json_is_string(v) || json_string_length(v) == 0) {
        *err = "logout token: jti claim missing or not a non-empty string";
        return APR_EINVAL;
    }
    /* jti keys the replay cache: bounded, and no NUL that would make two
     * jtis one key. */
    if (json_string_length(v) > BCL_JTI_MAX) {
        *err = "logout token: jti claim is longer than 256 bytes";
        return APR_EINVAL;
    }
    if (json_string_length(v) != strlen(json_string_value(v))) {
        *err = "logout token: jti claim contains a NUL";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

static apr_status_t logout_events(const json_t *claims, const char **err)
{
    json_t *ev = json_object_get(claims, "events"), *member;

    if (!ev) {
        *err = "logout token: events claim missing";
        return APR_EINVAL;
    }
    if (!json_is_object(ev)) {
        *err = "logout token: events claim is not a JSON object";
        return APR_EINVAL;
    }
    member = json_object_get(ev, BCL_EVENT);
    if (!member) {
        *err = "logout token: events claim lacks the back-channel logout event";
        return APR_EINVAL;
    }
    if (!json_is_object(member)) {
        *err = "logout token: back-channel logout event is not a JSON object";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t bff_idtoken_validate_logout(const json_t *claims, const bff_idtoken_expect_t *expect,
                                         const char **err)
{
    apr_status_t rv;
    int has_sub, has_sid;

    if (APR_SUCCESS != (rv = check_start(claims, expect, err))
        || APR_SUCCESS != (rv = check_iat(claims, expect, 1, err))
        || APR_SUCCESS != (rv = check_exp(claims, expect, 0, err))
        || APR_SUCCESS != (rv = logout_jti(claims, err))
        || APR_SUCCESS != (rv = logout_events(claims, err))) {
        return rv;
    }
    /* Section 2.4: a nonce is prohibited, so an ID token can never pass. */
    if (json_object_get(claims, "nonce")) {
        *err = "logout token: nonce claim is present";
        return APR_EINVAL;
    }
    if (APR_SUCCESS
            != (rv = logout_ident(claims, "sub", &has_sub,
                                  "logout token: sub claim is not a non-empty string", err))
        || APR_SUCCESS
               != (rv = logout_ident(claims, "sid", &has_sid,
                                     "logout token: sid claim is not a non-empty string", err))) {
        return rv;
    }
    if (!has_sub && !has_sid) {
        *err = "logout token: neither sub nor sid claim present";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Signed tokens */

/* Case-insensitive media type compare, "application/" optional (RFC 7515
 * 4.1.9), length-aware so an embedded NUL does not pass as a prefix. */
static int typ_is(const json_t *typ, const char *want)
{
    const char *s = json_string_value(typ);
    apr_size_t n = json_string_length(typ);
    static const char app[] = "application/";

    if (n >= sizeof(app) - 1 && !strncasecmp(s, app, sizeof(app) - 1)) {
        s += sizeof(app) - 1;
        n -= sizeof(app) - 1;
    }
    return n == strlen(want) && !strncasecmp(s, want, n);
}

static apr_status_t parse_and_verify(apr_pool_t *p, const char *compact,
                                     const struct bff_jwks_t *jwks, const char *const *allowed_algs,
                                     int for_logout, bff_jws_t **jws, const char **err)
{
    json_t *typ;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = bff_jose_jws_parse(p, compact, jws, err))) {
        return rv;
    }
    /* Explicit typing (Back-Channel Logout 2.4) keeps the two kinds of
     * token apart: a logout token is not accepted as an ID token, and
     * nothing typed as something else is accepted as a logout token. */
    typ = json_object_get((*jws)->header, "typ");
    if (typ) {
        if (for_logout && !typ_is(typ, "logout+jwt") && !typ_is(typ, "jwt")) {
            *err = "logout token: JWS typ is neither logout+jwt nor JWT";
            return APR_EINVAL;
        }
        if (!for_logout && typ_is(typ, "logout+jwt")) {
            *err = "JWS typ is logout+jwt, not an ID token";
            return APR_EINVAL;
        }
    }
    return bff_jose_jws_verify(p, *jws, jwks, allowed_algs, err);
}

apr_status_t bff_idtoken_verify_logout(apr_pool_t *p, const char *compact,
                                       const struct bff_jwks_t *jwks,
                                       const char *const *allowed_algs,
                                       const bff_idtoken_expect_t *expect, json_t **claims,
                                       const char **err)
{
    bff_jws_t *jws;
    apr_status_t rv;

    *claims = NULL;
    *err = NULL;
    if (APR_SUCCESS != (rv = parse_and_verify(p, compact, jwks, allowed_algs, 1, &jws, err))
        || APR_SUCCESS != (rv = bff_idtoken_validate_logout(jws->payload, expect, err))) {
        return rv;
    }
    *claims = jws->payload;
    return APR_SUCCESS;
}

apr_status_t bff_idtoken_verify_refreshed(apr_pool_t *p, const char *compact,
                                          const struct bff_jwks_t *jwks,
                                          const char *const *allowed_algs,
                                          const bff_idtoken_expect_t *expect, const char *orig_sub,
                                          json_t **claims, const char **err)
{
    bff_jws_t *jws;
    apr_status_t rv;

    *claims = NULL;
    *err = NULL;
    if (APR_SUCCESS != (rv = parse_and_verify(p, compact, jwks, allowed_algs, 0, &jws, err))
        || APR_SUCCESS
               != (rv = bff_idtoken_validate_refreshed(jws->payload, expect, orig_sub, err))) {
        return rv;
    }
    *claims = jws->payload;
    return APR_SUCCESS;
}

apr_status_t bff_idtoken_verify(apr_pool_t *p, const char *compact, const struct bff_jwks_t *jwks,
                                const char *const *allowed_algs, const bff_idtoken_expect_t *expect,
                                json_t **claims, const char **err)
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
