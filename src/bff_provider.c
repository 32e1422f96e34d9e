/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the provider cache (rules in bff_provider.h): snapshots of metadata
 * and keys held by callers until their pool ends, the hourly refetch by one
 * thread, the back-off after a failure, and the unknown-kid JWKS refetch.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>

#include "bff_provider.h"
#include "bff_url.h"

typedef struct snapshot_t {
    apr_pool_t *pool;
    bff_oidc_meta_t *meta;
    bff_jwks_t *jwks;
    apr_int64_t fetched;
    apr_uint32_t refs;
    int retired;
} snapshot_t;

struct bff_pcache_t {
    const char *issuer;
    const char *metadata_url; /* NULL: the issuer's well-known URL */
    bff_http_opts_t http;
    const bff_pcache_clock_t *clock;
    apr_thread_mutex_t *mutex;    /* per process */
    apr_thread_cond_t *jwks_done; /* signalled when an unknown-kid refetch ends */
    snapshot_t *current;
    apr_int64_t last_jwks_fetch;
    apr_int64_t last_failure;
    int refreshing;
    int jwks_refetching; /* one unknown-kid refetch at a time, outside the mutex */
};

typedef struct {
    bff_pcache_t *pc;
    snapshot_t *snap;
} hold_t;

/* ---- clock and log ------------------------------------------------- */

static apr_time_t real_now(void *baton)
{
    (void)baton;
    return apr_time_now();
}

const bff_pcache_clock_t *bff_pcache_clock_real(void)
{
    static const bff_pcache_clock_t real = { real_now, NULL };

    return &real;
}

static apr_int64_t now_sec(const bff_pcache_t *pc)
{
    return (apr_int64_t)apr_time_sec(pc->clock->now(pc->clock->baton));
}

/* Log lines go where the caller says (the glue: the request's log), else
 * to the core log hook. */
#define PLOG(log, level, rv, ...) \
    bff_log_emit_to((log) ? (log)->fn : NULL, (log) ? (log)->baton : NULL, __FILE__, __LINE__, \
                    (level), (rv), __VA_ARGS__)

/* ---- set-up -------------------------------------------------------- */

bff_pcache_t *bff_pcache_create(apr_pool_t *p, const char *issuer, const char *ca_file,
                                const bff_pcache_clock_t *clock)
{
    bff_pcache_t *pc = apr_pcalloc(p, sizeof(*pc));
    bff_url_t u;

    pc->issuer = issuer;
    pc->clock = clock ? clock : bff_pcache_clock_real();
    pc->http.ca_file = ca_file;
    pc->http.connect_timeout_ms = BFF_HTTP_DEF_CONNECT_MS;
    pc->http.timeout_ms = BFF_PCACHE_HTTP_TIMEOUT_S * 1000;
    pc->http.max_body = 1024 * 1024;
    pc->http.allow_http = APR_SUCCESS == bff_url_parse(p, issuer, &u) && !strcmp(u.scheme, "http")
                          && bff_url_host_is_loopback(u.host);
    return pc;
}

void bff_pcache_set_metadata_url(bff_pcache_t *pc, const char *url)
{
    pc->metadata_url = url;
}

void bff_pcache_set_timeouts(bff_pcache_t *pc, long connect_ms, long total_ms)
{
    pc->http.connect_timeout_ms = connect_ms;
    pc->http.timeout_ms = total_ms;
}

const bff_http_opts_t *bff_pcache_http(const bff_pcache_t *pc)
{
    return &pc->http;
}

apr_status_t bff_pcache_child_init(bff_pcache_t *pc, apr_pool_t *pchild)
{
    apr_status_t rv;

    rv = apr_thread_mutex_create(&pc->mutex, APR_THREAD_MUTEX_DEFAULT, pchild);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&pc->jwks_done, pchild);
    }
    if (rv != APR_SUCCESS) {
        pc->mutex = NULL;
    }
    return rv;
}

/* ---- snapshots and holds ------------------------------------------- */

/* A retired snapshot goes with its last holder. */
static void snapshot_release_locked(snapshot_t *snap)
{
    if (--snap->refs == 0 && snap->retired) {
        apr_pool_destroy(snap->pool);
    }
}

static apr_status_t hold_cleanup(void *data)
{
    hold_t *h = data;

    apr_thread_mutex_lock(h->pc->mutex);
    snapshot_release_locked(h->snap);
    apr_thread_mutex_unlock(h->pc->mutex);
    return APR_SUCCESS;
}

static void install_locked(bff_pcache_t *pc, snapshot_t *snap)
{
    snapshot_t *old = pc->current;

    snap->refs = 1; /* the cache's own reference */
    pc->current = snap;
    if (old) {
        old->retired = 1;
        snapshot_release_locked(old);
    }
}

void bff_pcache_drop(bff_pcache_t *pc)
{
    if (!pc->mutex) {
        return;
    }
    apr_thread_mutex_lock(pc->mutex);
    if (pc->current) {
        pc->current->retired = 1;
        snapshot_release_locked(pc->current);
        pc->current = NULL;
    }
    apr_thread_mutex_unlock(pc->mutex);
}

static void hold_locked(bff_pcache_t *pc, apr_pool_t *p, snapshot_t *snap, bff_pcache_view_t *view)
{
    hold_t *h = apr_palloc(p, sizeof(*h));

    snap->refs++;
    h->pc = pc;
    h->snap = snap;
    apr_pool_cleanup_register(p, h, hold_cleanup, apr_pool_cleanup_null);
    view->meta = snap->meta;
    view->jwks = snap->jwks;
}

/* ---- fetching ------------------------------------------------------ */

static apr_status_t fetch_jwks(bff_pcache_t *pc, const bff_pcache_log_t *log, apr_pool_t *p,
                               const bff_oidc_meta_t *meta, bff_jwks_t **jwks)
{
    bff_http_resp_t *resp;
    const char *err = NULL;
    int skipped = 0;
    apr_status_t rv;

    rv = bff_http_get(p, &pc->http, meta->jwks_uri, &resp, &err);
    if (rv != APR_SUCCESS) {
        PLOG(log, BFF_LOG_ERR, rv,
             "BFF00302: cannot fetch the provider's "
             "keys from %s: %s",
             meta->jwks_uri, err ? err : "error");
        return rv;
    }
    if (resp->status != 200) {
        PLOG(log, BFF_LOG_ERR, 0,
             "BFF00303: the provider's jwks_uri %s "
             "answered HTTP %ld",
             meta->jwks_uri, resp->status);
        return APR_EGENERAL;
    }
    rv = bff_jose_jwks_parse(p, resp->body, resp->len, jwks, &skipped, &err);
    if (rv != APR_SUCCESS || bff_jose_jwks_count(*jwks) == 0) {
        PLOG(log, BFF_LOG_ERR, 0,
             "BFF00304: the provider's JWKS at %s "
             "has no usable signing key: %s",
             meta->jwks_uri, err ? err : "no keys");
        return APR_EGENERAL;
    }
    if (skipped) {
        PLOG(log, BFF_LOG_DEBUG, 0,
             "BFF00305: skipped %d unusable keys in "
             "the provider's JWKS",
             skipped);
    }
    return APR_SUCCESS;
}

/* A document from BFFProviderMetadataURL whose issuer is not BFFProvider
 * (another tenant's, or a placeholder such as Entra's multi-tenant
 * {tenantid}): said with both values, so the operator sees which to fix.
 * 1 when that was the reason. */
static int issuer_mismatch(const bff_pcache_t *pc, const bff_pcache_log_t *log, apr_pool_t *p,
                           const char *url, const bff_http_resp_t *resp)
{
    const char *doc_issuer = bff_oidc_meta_issuer(p, resp->body, resp->len);

    if (!doc_issuer || !strcmp(doc_issuer, pc->issuer)) {
        return 0;
    }
    PLOG(log, BFF_LOG_ERR, 0,
         "BFF01901: the discovery document at %s (BFFProviderMetadataURL) names the issuer "
         "'%s', not BFFProvider '%s': they must be equal exactly (a tenant placeholder such as "
         "{tenantid} is not supported); logins fail until they are",
         url, doc_issuer, pc->issuer);
    return 1;
}

static apr_status_t fetch_all(bff_pcache_t *pc, const bff_pcache_log_t *log, snapshot_t **out)
{
    apr_pool_t *p;
    snapshot_t *snap;
    bff_http_resp_t *resp;
    const char *err = NULL, *url;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = apr_pool_create_unmanaged_ex(&p, NULL, NULL))) {
        return rv;
    }
    snap = apr_pcalloc(p, sizeof(*snap));
    snap->pool = p;
    url = pc->metadata_url ? pc->metadata_url : bff_oidc_discovery_url(p, pc->issuer);
    rv = bff_http_get(p, &pc->http, url, &resp, &err);
    if (rv != APR_SUCCESS) {
        PLOG(log, BFF_LOG_ERR, rv,
             "BFF00306: cannot fetch the provider's "
             "metadata from %s: %s",
             url, err ? err : "error");
        goto fail;
    }
    if (resp->status != 200) {
        PLOG(log, BFF_LOG_ERR, 0,
             "BFF00307: the provider's discovery "
             "document %s answered HTTP %ld",
             url, resp->status);
        rv = APR_EGENERAL;
        goto fail;
    }
    rv = bff_oidc_meta_parse(p, resp->body, resp->len, pc->issuer, pc->http.allow_http, &snap->meta,
                             &err);
    if (rv != APR_SUCCESS && pc->metadata_url && issuer_mismatch(pc, log, p, url, resp)) {
        goto fail;
    }
    if (rv != APR_SUCCESS) {
        PLOG(log, BFF_LOG_ERR, 0,
             "BFF00308: the provider's discovery "
             "document %s is not acceptable: %s",
             url, err ? err : "invalid");
        goto fail;
    }
    if (APR_SUCCESS != (rv = fetch_jwks(pc, log, p, snap->meta, &snap->jwks))) {
        goto fail;
    }
    snap->fetched = now_sec(pc);
    *out = snap;
    return APR_SUCCESS;
fail:
    apr_pool_destroy(p);
    return rv;
}

/* ---- the view ------------------------------------------------------ */

apr_status_t bff_pcache_get(bff_pcache_t *pc, apr_pool_t *p, const bff_pcache_log_t *log,
                            bff_pcache_view_t *view)
{
    apr_int64_t now = now_sec(pc);
    snapshot_t *snap = NULL;
    apr_status_t rv = APR_SUCCESS;
    int stale;

    if (!pc->mutex) {
        return APR_EGENERAL;
    }
    apr_thread_mutex_lock(pc->mutex);
    if (pc->current && (now - pc->current->fetched < BFF_PCACHE_META_TTL || pc->refreshing)) {
        hold_locked(pc, p, pc->current, view);
        apr_thread_mutex_unlock(pc->mutex);
        return APR_SUCCESS;
    }
    stale = pc->current != NULL;
    if (!stale && pc->last_failure && now - pc->last_failure < BFF_PCACHE_FAIL_RETRY) {
        /* The provider just failed: answer at once instead of queuing every
         * request behind another doomed fetch. */
        apr_thread_mutex_unlock(pc->mutex);
        return APR_EAGAIN;
    }
    if (stale) {
        /* One thread refreshes; the others keep using the old snapshot. */
        pc->refreshing = 1;
        apr_thread_mutex_unlock(pc->mutex);
        rv = fetch_all(pc, log, &snap);
        apr_thread_mutex_lock(pc->mutex);
        pc->refreshing = 0;
    }
    else {
        /* Nothing cached yet: fetch under the lock so only one goes out. */
        rv = fetch_all(pc, log, &snap);
    }
    if (rv == APR_SUCCESS) {
        install_locked(pc, snap);
        pc->last_failure = 0;
    }
    else {
        pc->last_failure = now;
        if (stale) {
            /* Keep the old one, and try again in a minute. */
            pc->current->fetched = now - BFF_PCACHE_META_TTL + BFF_PCACHE_STALE_RETRY;
            rv = APR_SUCCESS;
        }
    }
    if (rv == APR_SUCCESS) {
        hold_locked(pc, p, pc->current, view);
    }
    apr_thread_mutex_unlock(pc->mutex);
    return rv;
}

/* ---- the unknown-kid refetch --------------------------------------- */

/* A snapshot with a copy of cur's metadata (its strings live in cur's pool)
 * and no keys yet. */
static apr_status_t snapshot_copy_meta(const snapshot_t *cur, snapshot_t **out)
{
    snapshot_t *snap;
    bff_oidc_meta_t *m;
    const char **algs;
    apr_pool_t *p;
    apr_status_t rv;
    int n = 0, i;

    if (APR_SUCCESS != (rv = apr_pool_create_unmanaged_ex(&p, NULL, NULL))) {
        return rv;
    }
    snap = apr_pcalloc(p, sizeof(*snap));
    snap->pool = p;
    snap->meta = m = apr_pmemdup(p, cur->meta, sizeof(*cur->meta));
    m->issuer = apr_pstrdup(p, m->issuer);
    m->authorization_endpoint = apr_pstrdup(p, m->authorization_endpoint);
    m->token_endpoint = apr_pstrdup(p, m->token_endpoint);
    m->jwks_uri = apr_pstrdup(p, m->jwks_uri);
    m->userinfo_endpoint = apr_pstrdup(p, m->userinfo_endpoint);
    m->end_session_endpoint = apr_pstrdup(p, m->end_session_endpoint);
    m->revocation_endpoint = apr_pstrdup(p, m->revocation_endpoint);
    while (m->id_token_algs && m->id_token_algs[n]) {
        ++n;
    }
    algs = apr_pcalloc(p, sizeof(*algs) * (n + 1));
    for (i = 0; i < n; ++i) {
        algs[i] = apr_pstrdup(p, m->id_token_algs[i]);
    }
    m->id_token_algs = algs;
    snap->fetched = cur->fetched;
    *out = snap;
    return APR_SUCCESS;
}

/* The fetch (up to the HTTP timeout) runs outside the mutex: logins and
 * refreshes that need the provider go on with the current keys meanwhile,
 * and an anonymous back-channel POST with an unknown kid can delay nobody
 * but itself. One refetch at a time per process; the others answer EAGAIN. */
apr_status_t bff_pcache_refresh_jwks(bff_pcache_t *pc, apr_pool_t *p, const bff_pcache_log_t *log,
                                     bff_pcache_view_t *view)
{
    apr_int64_t now = now_sec(pc);
    snapshot_t *cur, *snap = NULL;
    apr_status_t rv;

    if (!pc->mutex) {
        return APR_EGENERAL;
    }
    apr_thread_mutex_lock(pc->mutex);
    cur = pc->current;
    if (!cur || pc->jwks_refetching || now - pc->last_jwks_fetch < BFF_PCACHE_JWKS_REFETCH_MIN) {
        if (cur) {
            hold_locked(pc, p, cur, view);
        }
        apr_thread_mutex_unlock(pc->mutex);
        return cur ? APR_EAGAIN : APR_EGENERAL;
    }
    pc->last_jwks_fetch = now;
    rv = snapshot_copy_meta(cur, &snap);
    if (rv != APR_SUCCESS) {
        hold_locked(pc, p, cur, view);
        apr_thread_mutex_unlock(pc->mutex);
        return rv;
    }
    pc->jwks_refetching = 1;
    cur->refs++; /* kept alive, so that the comparison below cannot meet a reused address */
    apr_thread_mutex_unlock(pc->mutex);

    rv = fetch_jwks(pc, log, snap->pool, snap->meta, &snap->jwks);

    apr_thread_mutex_lock(pc->mutex);
    pc->jwks_refetching = 0;
    if (rv == APR_SUCCESS && pc->current == cur) {
        install_locked(pc, snap);
        PLOG(log, BFF_LOG_INFO, 0,
             "BFF00309: refetched the provider's "
             "keys after an unknown key id (key rotation)");
    }
    else {
        /* Failed, or a full refresh installed newer metadata and keys
         * meanwhile: those win over ours. */
        apr_pool_destroy(snap->pool);
    }
    snapshot_release_locked(cur);
    hold_locked(pc, p, pc->current, view);
    apr_thread_cond_broadcast(pc->jwks_done);
    apr_thread_mutex_unlock(pc->mutex);
    return rv;
}

/* Waits until no unknown-kid refetch runs, or until deadline (on the
 * cache's clock). 1: one was running and has ended; 0: none was running, or
 * the deadline came first. */
static int wait_refetch(bff_pcache_t *pc, apr_time_t deadline)
{
    int waited = 0, running;

    apr_thread_mutex_lock(pc->mutex);
    while (pc->jwks_refetching) {
        apr_time_t left = deadline - pc->clock->now(pc->clock->baton);

        waited = 1;
        if (left <= 0 || APR_TIMEUP == apr_thread_cond_timedwait(pc->jwks_done, pc->mutex, left)) {
            break;
        }
    }
    running = pc->jwks_refetching;
    apr_thread_mutex_unlock(pc->mutex);
    return waited && !running;
}

apr_status_t bff_pcache_refresh_jwks_wait(bff_pcache_t *pc, apr_pool_t *p,
                                          const bff_pcache_log_t *log, bff_pcache_view_t *view)
{
    apr_time_t deadline = pc->clock->now(pc->clock->baton) + apr_time_from_msec(pc->http.timeout_ms)
                          + apr_time_from_sec(1);
    const void *before = view->jwks;
    apr_status_t rv = bff_pcache_refresh_jwks(pc, p, log, view);

    /* Another thread's refetch ended: take its keys (or, if its window has
     * passed meanwhile, try once more ourselves). */
    while (rv == APR_EAGAIN && pc->mutex && wait_refetch(pc, deadline)) {
        rv = bff_pcache_refresh_jwks(pc, p, log, view);
    }
    /* Refetched by another thread (now, or within the last seconds): the
     * view it gave holds newer keys than the caller had. */
    if (rv == APR_EAGAIN && view->jwks != before) {
        return APR_SUCCESS;
    }
    return rv;
}
