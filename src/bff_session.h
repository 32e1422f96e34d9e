/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the session record, the pending-login transaction, and session identifiers.
 */
#ifndef BFF_SESSION_H
#define BFF_SESSION_H

#include <apr_pools.h>
#include <apr_errno.h>

#include "bff_crypto.h"

/* A narrower access token of the session (BFFTokenResource, BFFTokenScope):
 * obtained with the session's refresh token for one (resource, scope) pair,
 * kept beside the default token. resource and scope: NULL when not asked. */
typedef struct {
    const char *resource;
    const char *scope;
    const char *access_token;
    const char *token_type;
    apr_int64_t at_expires; /* 0 = unknown */
    apr_int64_t at_issued;
} bff_session_token_t;

/* At most this many such tokens per session: adding one more drops the
 * oldest (the least recently issued), so a record never grows without
 * bound whatever the configuration. */
#define BFF_SESSION_MAX_TOKENS 8

/* A user's server-side session. Times are seconds since the epoch. Strings
 * may be NULL when absent. Serialised in a flat binary layout (read on
 * every relayed request, so it must decode without parsing; see
 * bff_session.c), then sealed with bff_crypto_seal() using the store key as
 * AAD. */
typedef struct {
    apr_uint64_t rev; /* bumped on every write */
    const char *iss;
    const char *sub;
    const char *sid; /* the provider's session id, for back-channel logout */
    const char *access_token;
    const char *token_type;
    const char *refresh_token;
    const char *id_token;
    const char *claims;     /* the ID token's claims, a JSON object as text */
    const char *logout_id;  /* random value that logout requests must carry */
    apr_int64_t at_expires; /* access token expiry, 0 = unknown */
    apr_int64_t at_issued;  /* when we obtained the access token */
    apr_int64_t created;
    apr_int64_t last_access; /* idle timeout counts from here */
    apr_int64_t expires;     /* absolute end of the session */
    int ntokens;             /* narrower tokens in use, 0..BFF_SESSION_MAX_TOKENS */
    bff_session_token_t tokens[BFF_SESSION_MAX_TOKENS];
} bff_session_t;

/* The narrower token for (resource, scope) (NULLs match NULLs only), or
 * NULL. */
bff_session_token_t *bff_session_token_find(bff_session_t *s, const char *resource,
                                            const char *scope);

/* Put t (its strings are referenced, not copied) in s: over the token of
 * the same (resource, scope), else in a free slot, else over the oldest. */
void bff_session_token_put(bff_session_t *s, const bff_session_token_t *t);

/* A pending login (authorization request in flight). It never enters the
 * store: it travels sealed in a cookie of the browser that started it
 * (bff_txn_to_cookie), so an anonymous client cannot fill the store. */
typedef struct {
    const char *state;
    const char *nonce;
    const char *code_verifier;
    const char *return_to;
    apr_int64_t created; /* microseconds (apr_time_t): orders a browser's
                                  * pending logins, of which several may start
                                  * within one second */
    apr_int64_t expires; /* seconds */
    /* From the SPA's login parameters (NULL when not sent): "none" for a
     * silent login (the only prompt the callback acts on), and max_age as
     * sent to the provider (1 to 9 digits; the ID token's auth_time is then
     * checked against it). */
    const char *prompt;
    const char *max_age;
} bff_txn_t;

/* Longest return_to a txn holds: the sealed cookie goes with every request
 * to the host while the login is pending. The Cookie header budget (httpd's
 * LimitRequestFieldSize, 8190 bytes by default, refuses the whole request
 * with 400 beyond it, before the module could clear anything): a browser
 * holds at most BFF_TXN_MAX_PENDING (4) pending-login cookies (fixed slot
 * names, see the handler), each at most BFF_TXN_COOKIE_VALUE_MAX bytes of
 * value (1098 measured with a 512-byte return_to, prompt and max_age,
 * test_txn_cookie_worst_case)
 * plus "__Host-Http-bff-tx.N=" and "; " (23 bytes with the default
 * BFFCookieName), and one session cookie ("__Host-Http-bff=" + 43 + "; " =
 * 61 bytes). Worst case: "Cookie: " + 4 * (23 + 1099) + 61 = 4557 bytes,
 * which leaves about 3.6 KB for the site's other cookies (docs/sessions.md).
 * A longer BFFCookieName costs 5 bytes per character more (5 cookies). */
#define BFF_TXN_MAX_RETURN_TO 512
#define BFF_TXN_COOKIE_VALUE_MAX 1099

/* Decoding rejects anything that is not exactly what encoding writes
 * (APR_EINVAL): for a session, a wrong magic or version, a truncated or
 * overlong record, a string without its NUL or with one inside, trailing
 * bytes, a missing iss, sub, created or expires; for a txn (compact JSON),
 * non-object JSON, wrong field types, an unknown format version, missing
 * required fields (state, nonce, code_verifier, return_to, expires), any
 * unknown field. Encoding a session refuses claims that are not a JSON
 * object; encoding a txn, a return_to longer than BFF_TXN_MAX_RETURN_TO.
 * Limits enforced by encode and decode: each string field (claims may be
 * longer), and the whole record. */
#define BFF_SESSION_MAX_STRING (64 * 1024)
#define BFF_SESSION_MAX_RECORD (256 * 1024)

apr_status_t bff_session_encode(apr_pool_t *p, const bff_session_t *s, char **out, apr_size_t *len);
apr_status_t bff_session_decode(apr_pool_t *p, const char *in, apr_size_t len, bff_session_t **s);
apr_status_t bff_txn_encode(apr_pool_t *p, const bff_txn_t *t, char **out, apr_size_t *len);
apr_status_t bff_txn_decode(apr_pool_t *p, const char *in, apr_size_t len, bff_txn_t **t);

/* encode + seal / open + decode, with the store key (for a txn: its
 * binding, see bff_txn_binding) as AAD. Open returns the bff_crypto_open()
 * codes or APR_EINVAL for a record that decrypts to junk. */
apr_status_t bff_session_seal(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                              const bff_session_t *s, unsigned char **rec, apr_size_t *len);
apr_status_t bff_session_open(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                              const unsigned char *rec, apr_size_t len, bff_session_t **s,
                              int *key_index);
apr_status_t bff_txn_seal(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                          const bff_txn_t *t, unsigned char **rec, apr_size_t *len);
apr_status_t bff_txn_open(apr_pool_t *p, const bff_keyring_t *ring, const char *store_key,
                          const unsigned char *rec, apr_size_t len, bff_txn_t **t);

/* A txn as a cookie value: the sealed record in unpadded base64url, sealed
 * with the ring's first key (every key of the ring opens it, so a rolling
 * key rotation keeps pending logins working). From-cookie opens it and
 * accepts it only for the given state (NULL: any) while it has not expired
 * at now: APR_EINVAL for a value that is not base64url, opens to junk or
 * holds another state, APR_TIMEUP for an expired one, else the
 * bff_crypto_open() codes (another site's or client's cookie: its binding
 * differs, APR_EGENERAL). */
apr_status_t bff_txn_to_cookie(apr_pool_t *p, const bff_keyring_t *ring, const char *binding,
                               const bff_txn_t *t, const char **value);
apr_status_t bff_txn_from_cookie(apr_pool_t *p, const bff_keyring_t *ring, const char *binding,
                                 const char *value, const char *state, apr_int64_t now,
                                 bff_txn_t **t);

/* What a txn cookie is bound to (its AAD): the cookie's own name, the
 * provider, the client and the site's redirect URI. A cookie that another
 * site or client of the same host sealed (browsers send cookies to every
 * port of a host) or that was renamed does not open. */
const char *bff_txn_binding(apr_pool_t *p, const char *cookie_name, const char *issuer,
                            const char *client_id, const char *redirect_uri);

/* A session identifier as it appears in the cookie: 43 base64url characters
 * (32 random bytes). bff_session_id_ok() checks the shape only. */
char *bff_session_new_id(apr_pool_t *p);
int bff_session_id_ok(const char *id);

#endif /* BFF_SESSION_H */
