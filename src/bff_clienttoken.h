/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the client's own access token (client credentials grant) for BFFTokenRelay client and
 * user-or-client: cached in the store for every child and node, fetched single flight.
 */
#ifndef BFF_CLIENTTOKEN_H
#define BFF_CLIENTTOKEN_H

/* One token per site, issuer and scope, httpd-free: over a store, the key
 * ring, a clock and a token-endpoint callback supplied by the caller (the
 * glue: mod_bff_clienttoken.c; the tests: fakes).
 *
 * Protocol (the same key on every node: bff_ns.h, "c:"):
 *  1. Read the entry "c:<hash>" (sealed with the ring, AAD = its key; it
 *     opens under any key of the ring). Not due (BFFRefreshBeforeExpiry,
 *     or half its lifetime when shorter, as bff_refresh_needed): use it.
 *  2. Due or absent: take the lock "l:c:<hash>" with add. Taken: read the
 *     entry again (another request may have fetched it meanwhile), else ask
 *     the token endpoint (grant_type=client_credentials), seal and set the
 *     answer with the token's expiry as the entry's, unlock.
 *  3. Held by someone else: poll the entry until a fresh token is there,
 *     the lock disappears (the holder gave up: take the failure marker's
 *     answer, or try once more to take the lock) or the wait ends.
 *  4. A fetch that failed at the provider adds "f:c:<hash>" ("502" or
 *     "504", a few seconds, never stretched); while it lives the provider
 *     is not asked again: requests use the current token if it is still
 *     valid, else answer the same.
 *  A token that is due but not yet expired is used whenever no fresh one
 *  can be had (the provider failed, the wait ended). */

#include <apr_pools.h>
#include <apr_errno.h>

#include "bff_crypto.h"
#include "bff_log.h"
#include "bff_refresh.h"
#include "bff_store.h"

/* When the token endpoint gives no expires_in: cache the token this long
 * (seconds). */
#define BFF_CLIENTTOKEN_DEFAULT_TTL 300

/* The token endpoint, for grant_type=client_credentials. */
typedef struct {
    /* The provider's metadata is at hand: as bff_refresh_endpoint_t. */
    apr_status_t (*prepare)(void *baton, apr_pool_t *p);
    /* Ask for a token with scope (NULL: none). A failure status means no
     * answer (APR_TIMEUP: timed out) with *err saying why; otherwise g
     * says what the endpoint answered: BFF_GRANT_ISSUED (access_token,
     * expires_in) or BFF_GRANT_REFUSED (error). */
    apr_status_t (*call)(void *baton, apr_pool_t *p, const char *scope, bff_refresh_grant_t *g,
                         const char **err);
    /* For log lines: the token endpoint's URL, once prepare succeeded. */
    const char *(*where)(void *baton);
    void *baton;
} bff_clienttoken_endpoint_t;

typedef struct {
    bff_store_t *store;
    const bff_keyring_t *ring;  /* seals the entry (first key), opens it (any key) */
    const char *site;           /* bff_ns_site() */
    const char *issuer;         /* part of the key: a token of another provider is not reused */
    const char *scope;          /* BFFTokenScope; NULL: none */
    apr_int64_t refresh_before; /* BFFRefreshBeforeExpiry, seconds */
    apr_int64_t lock_ttl;       /* seconds; 0: BFF_REFRESH_LOCK_TTL */
    apr_interval_time_t wait;   /* 0: BFF_REFRESH_WAIT_MS */
    apr_interval_time_t poll;   /* 0: BFF_REFRESH_POLL_MS */
    apr_int64_t fail_ttl;       /* seconds; 0: BFF_REFRESH_FAIL_TTL */
    apr_int64_t default_ttl;    /* seconds; 0: BFF_CLIENTTOKEN_DEFAULT_TTL */
    const bff_refresh_clock_t *clock; /* NULL: bff_refresh_clock_real() */
    const bff_clienttoken_endpoint_t *endpoint;
    /* Where the log lines go (the glue: the request's log); NULL: the core
     * log hook (bff_log.h). */
    bff_log_fn *log;
    void *log_baton;
} bff_clienttoken_t;

/* A token as cached. */
typedef struct {
    const char *access_token;
    apr_int64_t issued;  /* seconds since the epoch */
    apr_int64_t expires; /* seconds since the epoch */
} bff_clienttoken_value_t;

/* The client's token, single flight. APR_SUCCESS with *outcome NOT_NEEDED
 * (cached), REFRESHED (this call fetched it), WAITED (another request
 * fetched it) or STILL_VALID (no fresh one, the cached one has not
 * expired): *tok is set (in p). Otherwise *tok is untouched and: APR_TIMEUP
 * for PROVIDER_TIMEOUT and WAIT_TIMEOUT, APR_EGENERAL for PROVIDER_DOWN,
 * the store's status for STORE_DOWN (bff_refresh_outcome_general maps
 * them to an answer). */
apr_status_t bff_clienttoken_get(const bff_clienttoken_t *ct, apr_pool_t *p,
                                 bff_clienttoken_value_t *tok, bff_refresh_outcome_e *outcome);

/* The entry's store key ("c:..."), NULL for a bad argument. */
const char *bff_clienttoken_key(apr_pool_t *p, const bff_clienttoken_t *ct);

#endif /* BFF_CLIENTTOKEN_H */
