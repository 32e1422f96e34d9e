/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#ifndef BFF_REFRESH_H
#define BFF_REFRESH_H

/* The single-flight token refresh of one session, httpd-free: over a store
 * (the lock "l:" and the failure marker "f:"), a clock, the session's
 * reload/save/end operations and a token-endpoint callback, all supplied
 * by the caller (the glue: mod_bff_relay.c; the tests: fakes).
 *
 * Protocol (per session handle, the same on every node):
 *  1. Take the lock "l:<handle>" with add (owner token kept by this call).
 *     Taken: reload the record (another request may have refreshed it
 *     meanwhile), present its refresh token, apply the answer, save it with
 *     a replace (never recreates a record a logout removed), then unlock.
 *     The rotated refresh token is in the same write as the new access
 *     token, made before the lock is released.
 *  2. Held by someone else: poll the record every poll interval until its
 *     revision changes to a fresh token, the lock disappears (the holder
 *     gave up: take the failure marker's answer, or try once more to take
 *     the lock) or the wait deadline passes.
 *  3. A refresh that failed at the provider adds "f:<handle>" (add: a later
 *     failure never stretches the window) holding "502" or "504"; while it
 *     lives, requests whose access token has expired answer the same
 *     without calling the provider.
 *  4. The save finds no record (a logout won): the refresh token just
 *     issued is revoked through the endpoint callback, the session stays
 *     ended.
 *  5. A narrower token (rf->resource, rf->scope: BFFTokenResource,
 *     BFFTokenScope) is refreshed the same way under the session's one lock
 *     (every refresh presents the session's refresh token, which rotation
 *     spends), with a failure marker of its own; its waiters take their
 *     turn at the lock when it is released without their token, within the
 *     same deadline. */

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_time.h>

#include "bff_crypto.h"
#include "bff_log.h"
#include "bff_outcome.h"
#include "bff_session.h"
#include "bff_store.h"

/* The lock's TTL bounds how long a crashed holder blocks the session; it
 * must exceed the longest refresh (the glue passes its own, derived from
 * the provider's HTTP timeout: see mod_bff_relay.c). */
#define BFF_REFRESH_LOCK_TTL 60
#define BFF_REFRESH_WAIT_MS 12000 /* waiters give up after this */
#define BFF_REFRESH_POLL_MS 50
#define BFF_REFRESH_FAIL_TTL 5 /* a failed refresh is not retried for this long */

/* What happened. The first four leave a usable session (APR_SUCCESS). */
typedef enum {
    BFF_REFRESH_NOT_NEEDED = 0,   /* fresh enough (another request refreshed it first) */
    BFF_REFRESH_REFRESHED,        /* this call refreshed and saved it */
    BFF_REFRESH_WAITED,           /* another request refreshed it while this one waited */
    BFF_REFRESH_STILL_VALID,      /* no new token, but the current one has not expired */
    BFF_REFRESH_PROVIDER_DOWN,    /* the provider failed or refused; token expired (502) */
    BFF_REFRESH_PROVIDER_TIMEOUT, /* the provider did not answer; token expired (504) */
    BFF_REFRESH_WAIT_TIMEOUT,     /* another request's refresh took too long (504) */
    BFF_REFRESH_GRANT_REVOKED,    /* invalid_grant: session ended (401) */
    BFF_REFRESH_NO_REFRESH_TOKEN, /* expired, nothing to refresh with: session ended (401) */
    BFF_REFRESH_REJECTED,         /* the provider's answer was refused: session ended (401) */
    BFF_REFRESH_SESSION_GONE,     /* a logout (or the expiry) ended it meanwhile (401) */
    BFF_REFRESH_STORE_DOWN        /* the session store failed (503) */
} bff_refresh_outcome_e;

/* A clock: now in microseconds (apr_time_t), and a sleep. */
typedef struct {
    apr_time_t (*now)(void *baton);
    void (*sleep)(void *baton, apr_interval_time_t t);
    void *baton;
} bff_refresh_clock_t;

/* apr_time_now() and apr_sleep(). */
const bff_refresh_clock_t *bff_refresh_clock_real(void);

/* The session the refresh works on. The caller's baton knows which. */
typedef struct {
    /* Read the record again from the store. APR_NOTFOUND: gone; any other
     * failure: the store is down. */
    apr_status_t (*reload)(void *baton, apr_pool_t *p, bff_session_t **fresh);
    /* Write s over the live record (a replace, never a create); bumps
     * s->rev. APR_NOTFOUND: the record is gone (a logout won). */
    apr_status_t (*save)(void *baton, apr_pool_t *p, bff_session_t *s);
    /* End the session (its record removed under every key). */
    void (*end)(void *baton, apr_pool_t *p);
    void *baton;
} bff_refresh_session_ops_t;

/* The token endpoint's answer to a refresh grant. */
typedef enum {
    BFF_GRANT_ISSUED = 0, /* tokens issued; an ID token among them already verified */
    BFF_GRANT_INVALID,    /* invalid_grant: the refresh token is no longer valid */
    BFF_GRANT_REFUSED,    /* another OAuth error (error names it) */
    BFF_GRANT_REJECTED    /* issued, but the ID token failed verification (logged) */
} bff_grant_e;

typedef struct {
    bff_grant_e result;
    const char *error; /* BFF_GRANT_REFUSED: the provider's error code */
    const char *access_token;
    const char *token_type;
    const char *refresh_token; /* NULL: not rotated, the current one stays */
    const char *id_token;      /* NULL: none issued */
    const char *claims;        /* the verified ID token's claims (JSON text) */
    apr_int64_t expires_in;    /* 0: unknown */
} bff_refresh_grant_t;

typedef struct {
    /* The provider's metadata is at hand. APR_TIMEUP: it timed out;
     * APR_EAGAIN: this process backs off after its own failed fetch (no
     * failure marker); any other failure: the provider is down. */
    apr_status_t (*prepare)(void *baton, apr_pool_t *p);
    /* Present s->refresh_token (s->sub for the ID token check). A failure
     * status means no answer (APR_TIMEUP: timed out) with *err saying why;
     * otherwise g describes the answer. */
    apr_status_t (*call)(void *baton, apr_pool_t *p, const bff_session_t *s, bff_refresh_grant_t *g,
                         const char **err);
    /* Revoke a refresh token that will never be used (logs its own failure). */
    void (*revoke)(void *baton, apr_pool_t *p, const char *refresh_token);
    /* For log lines: the token endpoint's URL, once prepare succeeded. */
    const char *(*where)(void *baton);
    void *baton;
} bff_refresh_endpoint_t;

typedef struct {
    bff_store_t *store;
    const bff_keyring_t *ring;        /* for bff_ns_key (lock and marker keys are fixed) */
    const char *site;                 /* bff_ns_site() */
    apr_int64_t refresh_before;       /* BFFRefreshBeforeExpiry, seconds */
    apr_int64_t lock_ttl;             /* seconds; 0: BFF_REFRESH_LOCK_TTL */
    apr_interval_time_t wait;         /* 0: BFF_REFRESH_WAIT_MS */
    apr_interval_time_t poll;         /* 0: BFF_REFRESH_POLL_MS */
    apr_int64_t fail_ttl;             /* seconds; 0: BFF_REFRESH_FAIL_TTL */
    const bff_refresh_clock_t *clock; /* NULL: bff_refresh_clock_real() */
    const bff_refresh_session_ops_t *session;
    const bff_refresh_endpoint_t *endpoint;
    /* Where this refresh's log lines go (the glue: the request's log);
     * NULL: the core log hook (bff_log.h). */
    bff_log_fn *log;
    void *log_baton;
    /* A narrower token (BFFTokenResource, BFFTokenScope): when either is
     * set, the refresh obtains and saves the session's token for this
     * (resource, scope) (bff_session_token_put) instead of the default one,
     * under a lock and failure marker of its own, so that each pair is
     * refreshed single flight and independently of the others. A rotated
     * refresh token replaces the session's all the same. The endpoint's
     * call must send them (the caller's baton knows them too). */
    const char *resource;
    const char *scope;
} bff_refresh_t;

/* Whether s's access token is due: within refresh_before of its expiry, or
 * past half its lifetime when it lives shorter than twice that. now in
 * seconds. */
int bff_refresh_needed(apr_int64_t refresh_before, const bff_session_t *s, apr_int64_t now);

/* The same for the narrower token of (resource, scope): due as above, or
 * not yet obtained. */
int bff_refresh_token_needed(apr_int64_t refresh_before, bff_session_t *s, const char *resource,
                             const char *scope, apr_int64_t now);

/* Refresh the session named by handle (bff_ns_handle), single flight.
 * *s in: the session as this request loaded it; out: the one to use (the
 * reloaded or refreshed record; unchanged on failures). APR_SUCCESS with
 * outcome NOT_NEEDED, REFRESHED, WAITED or STILL_VALID: use *s. Otherwise:
 * APR_NOTFOUND for the outcomes that end the session (GRANT_REVOKED,
 * NO_REFRESH_TOKEN, REJECTED, SESSION_GONE; the caller forgets its view),
 * APR_TIMEUP for PROVIDER_TIMEOUT and WAIT_TIMEOUT, APR_EGENERAL for
 * PROVIDER_DOWN, the store's status for STORE_DOWN. */
apr_status_t bff_refresh_run(const bff_refresh_t *rf, apr_pool_t *p, const char *handle,
                             bff_session_t **s, bff_refresh_outcome_e *outcome);

/* Short name of an outcome, for logs and tests. */
const char *bff_refresh_outcome_name(bff_refresh_outcome_e outcome);

/* What the request ends with (bff_outcome.h): BFF_OUTCOME_OK when it goes
 * on with *s; SESSION_ENDED for the four that end the session; PROVIDER_TIMEOUT
 * for both timeouts; STORE_DOWN; PROVIDER_DOWN for the rest. */
bff_outcome_e bff_refresh_outcome_general(bff_refresh_outcome_e outcome);

#endif /* BFF_REFRESH_H */
