/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#ifndef BFF_SESSION_H
#define BFF_SESSION_H

#include <apr_pools.h>
#include <apr_errno.h>

#include "bff_crypto.h"

/* A user's server-side session. Times are seconds since the epoch. Strings
 * may be NULL when absent. Serialised in a flat binary layout (read on
 * every relayed request, so it must decode without parsing; see
 * bff_session.c), then sealed with bff_crypto_seal() using the store key as
 * AAD. */
typedef struct {
    apr_uint64_t rev;            /* bumped on every write */
    const char *iss;
    const char *sub;
    const char *sid;             /* the provider's session id, for back-channel logout */
    const char *access_token;
    const char *token_type;
    const char *refresh_token;
    const char *id_token;
    const char *claims;          /* the ID token's claims, a JSON object as text */
    const char *logout_id;       /* random value that logout requests must carry */
    apr_int64_t at_expires;      /* access token expiry, 0 = unknown */
    apr_int64_t at_issued;       /* when we obtained the access token */
    apr_int64_t created;
    apr_int64_t last_access;     /* idle timeout counts from here */
    apr_int64_t expires;         /* absolute end of the session */
} bff_session_t;

/* A pending login (authorization request in flight), keyed by state. */
typedef struct {
    const char *state;
    const char *nonce;
    const char *code_verifier;
    const char *return_to;
    const char *binder_hash;     /* hex SHA-256 of the browser-binding cookie value */
    apr_int64_t created;
    apr_int64_t expires;
} bff_txn_t;

/* Decoding rejects anything that is not exactly what encoding writes
 * (APR_EINVAL): for a session, a wrong magic or version, a truncated or
 * overlong record, a string without its NUL or with one inside, trailing
 * bytes, a missing iss, sub, created or expires; for a txn (compact JSON),
 * non-object JSON, wrong field types, an unknown format version, missing
 * required fields (state, nonce, code_verifier, return_to, binder_hash,
 * expires). Encoding a session refuses claims that are not a JSON object.
 * Limits enforced by encode and decode: each string field (claims may be
 * longer), and the whole record. */
#define BFF_SESSION_MAX_STRING (64 * 1024)
#define BFF_SESSION_MAX_RECORD (256 * 1024)

apr_status_t bff_session_encode(apr_pool_t *p, const bff_session_t *s, char **out, apr_size_t *len);
apr_status_t bff_session_decode(apr_pool_t *p, const char *in, apr_size_t len, bff_session_t **s);
apr_status_t bff_txn_encode(apr_pool_t *p, const bff_txn_t *t, char **out, apr_size_t *len);
apr_status_t bff_txn_decode(apr_pool_t *p, const char *in, apr_size_t len, bff_txn_t **t);

/* encode + seal / open + decode, with the store key as AAD. Open returns the
 * bff_crypto_open() codes or APR_EINVAL for a record that decrypts to junk. */
apr_status_t bff_session_seal(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                              const bff_session_t *s, unsigned char **rec, apr_size_t *len);
apr_status_t bff_session_open(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                              const unsigned char *rec, apr_size_t len, bff_session_t **s,
                              int *key_index);
apr_status_t bff_txn_seal(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                          const bff_txn_t *t, unsigned char **rec, apr_size_t *len);
apr_status_t bff_txn_open(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                          const unsigned char *rec, apr_size_t len, bff_txn_t **t);

/* A session identifier as it appears in the cookie: 43 base64url characters
 * (32 random bytes). bff_session_id_ok() checks the shape only. */
char *bff_session_new_id(apr_pool_t *p);
int bff_session_id_ok(const char *id);

#endif /* BFF_SESSION_H */
