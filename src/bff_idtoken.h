/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: what an ID token, a refreshed ID token and a back-channel logout token must satisfy,
 * and their verification.
 */
#ifndef BFF_IDTOKEN_H
#define BFF_IDTOKEN_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <jansson.h>

/* What an ID token (OpenID Connect Core 3.1.3.7) or a back-channel logout
 * token must satisfy, besides its signature. */
typedef struct {
    const char *issuer;                   /* iss must equal exactly */
    const char *client_id;                /* aud must contain; azp, if present, must equal */
    const char *nonce;                    /* nonce must equal (NULL: nonce not checked) */
    apr_int64_t now;                      /* seconds since the epoch */
    apr_int64_t leeway;                   /* clock skew allowed, seconds (60) */
    apr_int64_t max_age;                  /* iat not older than now - max_age - leeway (600) */
    const char *const *trusted_audiences; /* NULL-terminated audiences besides client_id
                                            * that aud may name (NULL: none) */
    /* OIDC Core 3.1.2.1 / 3.1.3.7 item 13: the authorization request had
     * max_age: auth_time is then required, not in the future beyond leeway,
     * and not older than now - auth_max_age - leeway. */
    int check_auth_time;
    apr_int64_t auth_max_age; /* seconds, >= 0 */
} bff_idtoken_expect_t;

/* Checks iss, aud (string or array; with several audiences azp must be
 * present and equal client_id, and every other audience must be one of
 * trusted_audiences: OIDC Core 3.1.3.7 item 3), exp (number, > now - leeway), iat (number,
 * present, not in the future beyond leeway, not older than max_age), nonce,
 * sub (non-empty string), and auth_time when check_auth_time is set. APR_EINVAL with *err naming the failed check, in
 * words fit for a log line (no token content beyond claim names). */
apr_status_t bff_idtoken_validate(const json_t *claims, const bff_idtoken_expect_t *expect,
                                  const char **err);

/* Convenience: parse the compact JWS, verify its signature (bff_jose), and
 * validate the claims. APR_NOTFOUND when the kid is not in the JWKS (caller
 * refetches and retries once); APR_EINVAL/APR_EGENERAL otherwise. *claims
 * is the payload (pool-owned). */
struct bff_jwks_t;
apr_status_t bff_idtoken_verify(apr_pool_t *p, const char *compact, const struct bff_jwks_t *jwks,
                                const char *const *allowed_algs, const bff_idtoken_expect_t *expect,
                                json_t **claims, const char **err);

/* A refreshed ID token (OIDC Core 12.2): checked as bff_idtoken_validate,
 * except that iat may be any age (only not in the future beyond leeway),
 * the nonce is checked only when expect->nonce is set (callers pass NULL),
 * and sub must equal orig_sub exactly (iss is already pinned by
 * expect->issuer). APR_EINVAL with *err as above. */
apr_status_t bff_idtoken_validate_refreshed(const json_t *claims,
                                            const bff_idtoken_expect_t *expect,
                                            const char *orig_sub, const char **err);

/* A back-channel logout token (OpenID Connect Back-Channel Logout 1.0,
 * 2.4 and 2.6): iss and aud/azp as for an ID token; iat present, not in the
 * future and not older than max_age (both with leeway); exp optional, in the
 * future when present; jti a non-empty string of at most 256 bytes; events
 * an object whose "http://schemas.openid.net/event/backchannel-logout"
 * member is an object; nonce absent; sub and/or sid present, each a
 * non-empty string when present. expect->nonce is ignored. The caller
 * still has to reject a jti it has seen before. APR_EINVAL, *err distinct
 * per failed check. */
apr_status_t bff_idtoken_validate_logout(const json_t *claims, const bff_idtoken_expect_t *expect,
                                         const char **err);

/* As bff_idtoken_verify, for a logout token: also refuses a JWS header typ
 * other than logout+jwt or JWT (case-insensitive, "application/" prefix
 * optional; absent is accepted). APR_NOTFOUND for an unknown kid. */
apr_status_t bff_idtoken_verify_logout(apr_pool_t *p, const char *compact,
                                       const struct bff_jwks_t *jwks,
                                       const char *const *allowed_algs,
                                       const bff_idtoken_expect_t *expect, json_t **claims,
                                       const char **err);

/* As bff_idtoken_verify, for the ID token of a refresh response, with
 * bff_idtoken_validate_refreshed. Also refuses a JWS typed logout+jwt.
 * APR_NOTFOUND for an unknown kid. */
apr_status_t bff_idtoken_verify_refreshed(apr_pool_t *p, const char *compact,
                                          const struct bff_jwks_t *jwks,
                                          const char *const *allowed_algs,
                                          const bff_idtoken_expect_t *expect, const char *orig_sub,
                                          json_t **claims, const char **err);

#endif /* BFF_IDTOKEN_H */
