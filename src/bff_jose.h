/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: JWKS parsing and compact JWS signature verification.
 */
#ifndef BFF_JOSE_H
#define BFF_JOSE_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <jansson.h>

/* JWS (compact serialisation) verification against a JWKS, with OpenSSL 3.
 * Algorithms: RS256/384/512, PS256/384/512 (RSA keys >= 2048 bits),
 * ES256/384/512 (P-256/P-384/P-521, curve must match), EdDSA (Ed25519,
 * Ed448). Never "none", never HMAC. A key's kty/crv must fit the alg; a
 * key's "alg" (if present) must equal it; a key with "use" other than "sig"
 * is never used. */

typedef struct bff_jwks_t bff_jwks_t;

/* Parse a JWKS document. Keys that are malformed or of an unsupported type
 * are skipped (counted in *skipped if not NULL); a document that is not a
 * JSON object with a "keys" array, or larger than 256 KiB, is APR_EINVAL.
 * OpenSSL objects are freed by a cleanup on p. */
apr_status_t bff_jose_jwks_parse(apr_pool_t *p, const char *json, apr_size_t len, bff_jwks_t **jwks,
                                 int *skipped, const char **err);
int bff_jose_jwks_count(const bff_jwks_t *jwks);
int bff_jose_jwks_has_kid(const bff_jwks_t *jwks, const char *kid);

/* A parsed (not yet verified) compact JWS. header and payload are JSON
 * objects owned by the pool (json_decref in a cleanup). */
typedef struct {
    const char *alg;
    const char *kid; /* NULL when absent */
    const char *typ; /* NULL when absent */
    json_t *header;
    json_t *payload;
    const char *signing_input; /* "b64header.b64payload" */
    apr_size_t signing_input_len;
    const unsigned char *sig;
    apr_size_t sig_len;
} bff_jws_t;

/* Exactly three base64url parts, header and payload JSON objects, alg a
 * string, total length at most 64 KiB, "crit" refused. APR_EINVAL otherwise. */
apr_status_t bff_jose_jws_parse(apr_pool_t *p, const char *compact, bff_jws_t **jws,
                                const char **err);

/* Verify the signature. allowed_algs is a NULL-terminated list (the
 * provider's advertised algs intersected with ours); NULL means every alg we
 * support. With a kid: only that key (APR_NOTFOUND when absent, so the caller
 * can refetch the JWKS once). Without a kid: every key that fits the alg is
 * tried. APR_EINVAL for a disallowed alg, APR_EGENERAL for a bad signature. */
apr_status_t bff_jose_jws_verify(apr_pool_t *p, const bff_jws_t *jws, const bff_jwks_t *jwks,
                                 const char *const *allowed_algs, const char **err);

/* Is alg one we can verify (and never none/HS*)? */
int bff_jose_alg_supported(const char *alg);

#endif /* BFF_JOSE_H */
