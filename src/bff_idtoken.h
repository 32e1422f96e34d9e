/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#ifndef BFF_IDTOKEN_H
#define BFF_IDTOKEN_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <jansson.h>

/* What an ID token (OpenID Connect Core 3.1.3.7) or a back-channel logout
 * token must satisfy, besides its signature. */
typedef struct {
    const char *issuer;        /* iss must equal exactly */
    const char *client_id;     /* aud must contain; azp, if present, must equal */
    const char *nonce;         /* nonce must equal (NULL: nonce not checked) */
    apr_int64_t now;           /* seconds since the epoch */
    apr_int64_t leeway;        /* clock skew allowed, seconds (60) */
    apr_int64_t max_age;       /* iat not older than now - max_age - leeway (600) */
} bff_idtoken_expect_t;

/* Checks iss, aud (string or array; with several audiences azp must be
 * present and equal client_id), exp (number, > now - leeway), iat (number,
 * present, not in the future beyond leeway, not older than max_age), nonce,
 * sub (non-empty string). APR_EINVAL with *err naming the failed check, in
 * words fit for a log line (no token content beyond claim names). */
apr_status_t bff_idtoken_validate(const json_t *claims, const bff_idtoken_expect_t *expect,
                                  const char **err);

/* Convenience: parse the compact JWS, verify its signature (bff_jose), and
 * validate the claims. APR_NOTFOUND when the kid is not in the JWKS (caller
 * refetches and retries once); APR_EINVAL/APR_EGENERAL otherwise. *claims
 * is the payload (pool-owned). */
struct bff_jwks_t;
apr_status_t bff_idtoken_verify(apr_pool_t *p, const char *compact,
                                const struct bff_jwks_t *jwks, const char *const *allowed_algs,
                                const bff_idtoken_expect_t *expect, json_t **claims,
                                const char **err);

#endif /* BFF_IDTOKEN_H */
