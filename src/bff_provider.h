/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the provider cache, httpd-free. The provider's discovery metadata
 * and JWKS, fetched lazily and cached per process: parsed once, shared
 * read-only by all threads through immutable snapshots that a caller holds
 * until its pool is cleaned up. The glue (mod_bff_provider.c) binds it to
 * a request's pool and log; test/unit/test_provider.c runs it against a
 * loopback provider with a fake clock.
 *
 * Rules:
 *  - The first use fetches under the cache mutex, so one fetch goes out and
 *    the other threads wait for it.
 *  - A snapshot older than BFF_PCACHE_META_TTL is refetched by one thread
 *    outside the mutex; the others keep the old one meanwhile. If that
 *    fails, the old one serves for another minute.
 *  - With nothing cached, a failed fetch answers APR_EAGAIN at once for
 *    BFF_PCACHE_FAIL_RETRY seconds instead of queuing every request behind
 *    another doomed fetch.
 *  - An unknown kid refetches the JWKS alone (bff_pcache_refresh_jwks): at
 *    most once per BFF_PCACHE_JWKS_REFETCH_MIN seconds, one at a time,
 *    outside the mutex.
 *  - A snapshot replaced by a newer one lives until its last holder's pool
 *    is cleaned up.
 */
#ifndef BFF_PROVIDER_H
#define BFF_PROVIDER_H

#include <apr_errno.h>
#include <apr_pools.h>
#include <apr_time.h>

#include "bff_http.h"
#include "bff_jose.h"
#include "bff_log.h"
#include "bff_oidc.h"

#define BFF_PCACHE_META_TTL 3600       /* refetch discovery and keys hourly */
#define BFF_PCACHE_JWKS_REFETCH_MIN 10 /* at most one unknown-kid refetch per 10 s */
#define BFF_PCACHE_FAIL_RETRY 5        /* after a failed first fetch, wait before trying again */
#define BFF_PCACHE_STALE_RETRY 60 /* after a failed hourly refetch, keep the old one this long */
/* Every call to the provider ends within this many seconds, connecting
 * included, unless bff_pcache_set_timeouts() says otherwise
 * (BFFProviderTimeout; the glue's BFF_PROVIDER_HTTP_TIMEOUT_S). */
#define BFF_PCACHE_HTTP_TIMEOUT_S 10

typedef struct bff_pcache_t bff_pcache_t;

/* A caller's view of one snapshot, valid for the life of the pool it was
 * taken for. */
typedef struct {
    const bff_oidc_meta_t *meta;
    const bff_jwks_t *jwks;
} bff_pcache_view_t;

/* A clock: now in microseconds (apr_time_t). */
typedef struct {
    apr_time_t (*now)(void *baton);
    void *baton;
} bff_pcache_clock_t;

/* apr_time_now(). */
const bff_pcache_clock_t *bff_pcache_clock_real(void);

/* Where one call's log lines go (the glue: the request's log); a NULL fn:
 * the core log hook (bff_log.h). */
typedef struct {
    bff_log_fn *fn;
    void *baton;
} bff_pcache_log_t;

/* The cache for issuer (BFFProvider), made in p. Plain http is allowed only
 * for a loopback issuer. clock NULL: bff_pcache_clock_real(). Unusable until
 * bff_pcache_child_init(). */
bff_pcache_t *bff_pcache_create(apr_pool_t *p, const char *issuer, const char *ca_file,
                                const bff_pcache_clock_t *clock);

/* Fetch discovery from url instead of
 * <issuer>/.well-known/openid-configuration (BFFProviderMetadataURL); the
 * document's issuer must still equal the cache's issuer exactly. NULL: the
 * well-known URL. Before the first bff_pcache_get; url must outlive pc. */
void bff_pcache_set_metadata_url(bff_pcache_t *pc, const char *url);

/* The connect and whole-call timeouts of every call to this provider
 * (discovery, JWKS, and the flows' calls through bff_pcache_http), in
 * milliseconds, connect <= total. Before the first bff_pcache_get. */
void bff_pcache_set_timeouts(bff_pcache_t *pc, long connect_ms, long total_ms);

/* The mutex and condition of this process, in pchild. */
apr_status_t bff_pcache_child_init(bff_pcache_t *pc, apr_pool_t *pchild);

/* Drops the cache's own reference to its snapshot (freed once no caller
 * holds it); the next get fetches again. Only while no other call runs.
 * For tests and tools that end before the process does: httpd leaves the
 * snapshot to the process's end,
 * since a request pool may outlive pchild (the event MPM makes them under
 * pconf). */
void bff_pcache_drop(bff_pcache_t *pc);

/* The HTTP options of every call to this provider. */
const bff_http_opts_t *bff_pcache_http(const bff_pcache_t *pc);

/* A view held until p is cleaned up. APR_SUCCESS, or the back-channel error
 * (APR_TIMEUP for a timeout) after logging why, or APR_EAGAIN while backing
 * off after a failure, or APR_EGENERAL without bff_pcache_child_init(). */
apr_status_t bff_pcache_get(bff_pcache_t *pc, apr_pool_t *p, const bff_pcache_log_t *log,
                            bff_pcache_view_t *view);

/* The ID token names a kid we don't know: fetch the JWKS again (at most
 * once per BFF_PCACHE_JWKS_REFETCH_MIN, one fetch at a time, outside the
 * mutex: other callers keep the current keys meanwhile) and give a fresh
 * view. APR_EAGAIN (with the current view) when a refetch is running or was
 * just done; APR_EGENERAL when nothing is cached. */
apr_status_t bff_pcache_refresh_jwks(bff_pcache_t *pc, apr_pool_t *p, const bff_pcache_log_t *log,
                                     bff_pcache_view_t *view);

/* The same for a signed-in user's own request: when another thread's
 * refetch is running, wait for it (at most the HTTP timeout and a second,
 * on the cache's clock) instead of answering APR_EAGAIN at once.
 * APR_SUCCESS: *view holds keys fetched after the caller's (view->jwks on
 * entry). */
apr_status_t bff_pcache_refresh_jwks_wait(bff_pcache_t *pc, apr_pool_t *p,
                                          const bff_pcache_log_t *log, bff_pcache_view_t *view);

#endif /* BFF_PROVIDER_H */
