/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the module's own signing key (private_key_jwt, RFC 7523): loading and checking it,
 * its public JWKS, the choice of algorithm, and compact JWS signing.
 */
#ifndef BFF_JWS_SIGN_H
#define BFF_JWS_SIGN_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <jansson.h>

/* A private signing key: RSA of at least 2048 bits (RS256, PS256) or EC on
 * P-256 (ES256); nothing else is accepted. Read-only once loaded, so
 * threads may sign with it at the same time. */
typedef struct bff_jws_sign_key_t bff_jws_sign_key_t;

#define BFF_JWS_SIGN_RSA_MIN_BITS 2048

/* Load a private key from PEM text (the first private-key block; an
 * encrypted key is refused: there is nobody to type a passphrase at
 * start-up). kid NULL: the RFC 7638 thumbprint of the public key. Any
 * other key type, an RSA key below 2048 bits or another curve is APR_EINVAL
 * with *err saying which key it was and what is accepted; *err never
 * quotes the key. The OpenSSL object is freed by a cleanup on p. */
apr_status_t bff_jws_sign_key_load(apr_pool_t *p, const char *pem, apr_size_t len, const char *kid,
                                   bff_jws_sign_key_t **key, const char **err);

const char *bff_jws_sign_key_kid(const bff_jws_sign_key_t *key);
/* "RSA 2048 bits" or "EC P-256", for log lines. */
const char *bff_jws_sign_key_desc(const bff_jws_sign_key_t *key);
/* The public key as a JWKS document {"keys":[{...}]}: kty, use "sig", kid,
 * n/e (RSA) or crv/x/y and alg ES256 (EC). No private member. An RSA key
 * has no "alg" member: it signs RS256 or PS256, whichever the provider
 * takes, and an "alg" would tie it to one. */
const char *bff_jws_sign_key_jwks(const bff_jws_sign_key_t *key);

/* The algorithm to sign with, from what the provider advertises
 * (NULL-terminated; NULL when the provider does not say): RSA: PS256 when
 * listed, else RS256; EC: ES256. Not advertised at all: RS256 or ES256, the
 * algorithms every JOSE implementation has. NULL when the list names none
 * this key can do. */
const char *bff_jws_sign_choose_alg(const bff_jws_sign_key_t *key, const char *const *advertised);

/* A compact JWS of payload (a JSON object) with the header {alg, kid, typ}
 * (typ left out when NULL). alg must be one bff_jws_sign_choose_alg can
 * return for this key, else APR_EINVAL. */
apr_status_t bff_jws_sign_compact(apr_pool_t *p, const bff_jws_sign_key_t *key, const char *alg,
                                  const char *typ, json_t *payload, char **out, const char **err);

#endif /* BFF_JWS_SIGN_H */
