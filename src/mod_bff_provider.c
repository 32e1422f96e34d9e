/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the per-child provider cache: snapshots of metadata and keys held by requests until
 * their pool ends, the hourly refetch by one thread, the back-off after a failure, and the
 * unknown-kid JWKS refetch.
 */
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include <httpd.h>
#include <http_log.h>

#include "mod_bff.h"
#include "mod_bff_provider.h"
#include "bff_url.h"
#include "bff_util.h"

#define META_TTL 3600       /* refetch discovery and keys hourly */
#define JWKS_REFETCH_MIN 10 /* at most one unknown-kid refetch per 10 s per child */
#define FAIL_RETRY 5        /* after a failed fetch, wait before hammering again */

typedef struct snapshot_t {
    apr_pool_t *pool;
    bff_oidc_meta_t *meta;
    bff_jwks_t *jwks;
    apr_int64_t fetched;
    apr_uint32_t refs;
    int retired;
} snapshot_t;

struct bff_provider_t {
    server_rec *s;
    const char *issuer;
    bff_http_opts_t http;
    apr_thread_mutex_t *mutex; /* per child */
    snapshot_t *current;
    apr_int64_t last_jwks_fetch;
    apr_int64_t last_failure;
    int refreshing;
    int jwks_refetching; /* one unknown-kid refetch at a time, outside the mutex */
};

typedef struct {
    bff_provider_t *prov;
    snapshot_t *snap;
} hold_t;

bff_provider_t *bff_provider_create(apr_pool_t *pconf, server_rec *s, const char *issuer,
                                    const char *ca_file)
{
    bff_provider_t *prov = apr_pcalloc(pconf, sizeof(*prov));
    bff_url_t u;

    prov->s = s;
    prov->issuer = issuer;
    prov->http.ca_file = ca_file;
    prov->http.connect_timeout_ms = 3000;
    prov->http.timeout_ms = BFF_PROVIDER_HTTP_TIMEOUT_S * 1000;
    prov->http.max_body = 1024 * 1024;
    prov->http.allow_http = APR_SUCCESS == bff_url_parse(pconf, issuer, &u)
                            && !strcmp(u.scheme, "http") && bff_url_host_is_loopback(u.host);
    return prov;
}

void bff_provider_child_init(bff_provider_t *prov, apr_pool_t *pchild)
{
    apr_status_t rv = apr_thread_mutex_create(&prov->mutex, APR_THREAD_MUTEX_DEFAULT, pchild);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, prov->s,
                     "BFF00301: cannot create the "
                     "provider cache mutex");
        prov->mutex = NULL;
    }
}

const bff_http_opts_t *bff_provider_http(const bff_provider_t *prov)
{
    return &prov->http;
}

static void snapshot_release_locked(snapshot_t *snap)
{
    if (--snap->refs == 0 && snap->retired) {
        apr_pool_destroy(snap->pool);
    }
}

static apr_status_t hold_cleanup(void *data)
{
    hold_t *h = data;

    apr_thread_mutex_lock(h->prov->mutex);
    snapshot_release_locked(h->snap);
    apr_thread_mutex_unlock(h->prov->mutex);
    return APR_SUCCESS;
}

static void install_locked(bff_provider_t *prov, snapshot_t *snap)
{
    snapshot_t *old = prov->current;

    snap->refs = 1; /* the cache's own reference */
    prov->current = snap;
    if (old) {
        old->retired = 1;
        snapshot_release_locked(old);
    }
}

static void hold_locked(bff_provider_t *prov, request_rec *r, snapshot_t *snap,
                        bff_provider_view_t *view)
{
    hold_t *h = apr_palloc(r->pool, sizeof(*h));

    snap->refs++;
    h->prov = prov;
    h->snap = snap;
    apr_pool_cleanup_register(r->pool, h, hold_cleanup, apr_pool_cleanup_null);
    view->meta = snap->meta;
    view->jwks = snap->jwks;
}

static apr_status_t fetch_jwks(bff_provider_t *prov, request_rec *r, apr_pool_t *p,
                               const bff_oidc_meta_t *meta, bff_jwks_t **jwks)
{
    bff_http_resp_t *resp;
    const char *err = NULL;
    int skipped = 0;
    apr_status_t rv;

    rv = bff_http_get(p, &prov->http, meta->jwks_uri, &resp, &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "BFF00302: cannot fetch the provider's "
                      "keys from %s: %s",
                      meta->jwks_uri, err ? err : "error");
        return rv;
    }
    if (resp->status != 200) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF00303: the provider's jwks_uri %s "
                      "answered HTTP %ld",
                      meta->jwks_uri, resp->status);
        return APR_EGENERAL;
    }
    rv = bff_jose_jwks_parse(p, resp->body, resp->len, jwks, &skipped, &err);
    if (rv != APR_SUCCESS || bff_jose_jwks_count(*jwks) == 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF00304: the provider's JWKS at %s "
                      "has no usable signing key: %s",
                      meta->jwks_uri, err ? err : "no keys");
        return APR_EGENERAL;
    }
    if (skipped) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BFF00305: skipped %d unusable keys in "
                      "the provider's JWKS",
                      skipped);
    }
    return APR_SUCCESS;
}

static apr_status_t fetch_all(bff_provider_t *prov, request_rec *r, snapshot_t **out)
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
    url = bff_oidc_discovery_url(p, prov->issuer);
    rv = bff_http_get(p, &prov->http, url, &resp, &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "BFF00306: cannot fetch the provider's "
                      "metadata from %s: %s",
                      url, err ? err : "error");
        goto fail;
    }
    if (resp->status != 200) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF00307: the provider's discovery "
                      "document %s answered HTTP %ld",
                      url, resp->status);
        rv = APR_EGENERAL;
        goto fail;
    }
    rv = bff_oidc_meta_parse(p, resp->body, resp->len, prov->issuer, prov->http.allow_http,
                             &snap->meta, &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF00308: the provider's discovery "
                      "document %s is not acceptable: %s",
                      url, err ? err : "invalid");
        goto fail;
    }
    if (APR_SUCCESS != (rv = fetch_jwks(prov, r, p, snap->meta, &snap->jwks))) {
        goto fail;
    }
    snap->fetched = bff_util_now();
    *out = snap;
    return APR_SUCCESS;
fail:
    apr_pool_destroy(p);
    return rv;
}

apr_status_t bff_provider_get(bff_provider_t *prov, request_rec *r, bff_provider_view_t *view)
{
    apr_int64_t now = bff_util_now();
    snapshot_t *snap = NULL;
    apr_status_t rv = APR_SUCCESS;
    int stale;

    if (!prov->mutex) {
        return APR_EGENERAL;
    }
    apr_thread_mutex_lock(prov->mutex);
    if (prov->current && (now - prov->current->fetched < META_TTL || prov->refreshing)) {
        hold_locked(prov, r, prov->current, view);
        apr_thread_mutex_unlock(prov->mutex);
        return APR_SUCCESS;
    }
    stale = prov->current != NULL;
    if (!stale && prov->last_failure && now - prov->last_failure < FAIL_RETRY) {
        /* The provider just failed: answer at once instead of queuing every
         * request behind another doomed fetch. */
        apr_thread_mutex_unlock(prov->mutex);
        return APR_EAGAIN;
    }
    if (stale) {
        /* One thread refreshes; the others keep using the old snapshot. */
        prov->refreshing = 1;
        apr_thread_mutex_unlock(prov->mutex);
        rv = fetch_all(prov, r, &snap);
        apr_thread_mutex_lock(prov->mutex);
        prov->refreshing = 0;
    }
    else {
        /* Nothing cached yet: fetch under the lock so only one goes out. */
        rv = fetch_all(prov, r, &snap);
    }
    if (rv == APR_SUCCESS) {
        install_locked(prov, snap);
        prov->last_failure = 0;
    }
    else {
        prov->last_failure = now;
        if (stale) {
            prov->current->fetched = now - META_TTL + FAIL_RETRY * 12; /* retry in a minute */
            rv = APR_SUCCESS;
        }
    }
    if (rv == APR_SUCCESS) {
        hold_locked(prov, r, prov->current, view);
    }
    apr_thread_mutex_unlock(prov->mutex);
    return rv;
}

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

static int refetching(bff_provider_t *prov)
{
    int busy;

    apr_thread_mutex_lock(prov->mutex);
    busy = prov->jwks_refetching;
    apr_thread_mutex_unlock(prov->mutex);
    return busy;
}

apr_status_t bff_provider_refresh_jwks_wait(bff_provider_t *prov, request_rec *r,
                                            bff_provider_view_t *view)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(BFF_PROVIDER_HTTP_TIMEOUT_S + 1);
    const void *before = view->jwks;
    apr_status_t rv = bff_provider_refresh_jwks(prov, r, view);

    while (rv == APR_EAGAIN && prov->mutex && refetching(prov) && apr_time_now() < deadline) {
        apr_sleep(apr_time_from_msec(50));
        rv = bff_provider_refresh_jwks(prov, r, view);
    }
    /* Refetched by another thread (now, or within the last seconds): the
     * view it gave holds newer keys than the caller had. */
    if (rv == APR_EAGAIN && view->jwks != before) {
        return APR_SUCCESS;
    }
    return rv;
}

/* The fetch (up to the HTTP timeout) runs outside the mutex: logins and
 * refreshes that need the provider go on with the current keys meanwhile,
 * and an anonymous back-channel POST with an unknown kid can delay nobody
 * but itself. One refetch at a time per child; the others answer EAGAIN. */
apr_status_t bff_provider_refresh_jwks(bff_provider_t *prov, request_rec *r,
                                       bff_provider_view_t *view)
{
    apr_int64_t now = bff_util_now();
    snapshot_t *cur, *snap = NULL;
    apr_status_t rv;

    if (!prov->mutex) {
        return APR_EGENERAL;
    }
    apr_thread_mutex_lock(prov->mutex);
    cur = prov->current;
    if (!cur || prov->jwks_refetching || now - prov->last_jwks_fetch < JWKS_REFETCH_MIN) {
        if (cur) {
            hold_locked(prov, r, cur, view);
        }
        apr_thread_mutex_unlock(prov->mutex);
        return cur ? APR_EAGAIN : APR_EGENERAL;
    }
    prov->last_jwks_fetch = now;
    rv = snapshot_copy_meta(cur, &snap);
    if (rv != APR_SUCCESS) {
        hold_locked(prov, r, cur, view);
        apr_thread_mutex_unlock(prov->mutex);
        return rv;
    }
    prov->jwks_refetching = 1;
    cur->refs++; /* kept alive, so that the comparison below cannot meet a reused address */
    apr_thread_mutex_unlock(prov->mutex);

    rv = fetch_jwks(prov, r, snap->pool, snap->meta, &snap->jwks);

    apr_thread_mutex_lock(prov->mutex);
    prov->jwks_refetching = 0;
    if (rv == APR_SUCCESS && prov->current == cur) {
        install_locked(prov, snap);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF00309: refetched the provider's "
                      "keys after an unknown key id (key rotation)");
    }
    else {
        /* Failed, or a full refresh installed newer metadata and keys
         * meanwhile: those win over ours. */
        apr_pool_destroy(snap->pool);
    }
    snapshot_release_locked(cur);
    hold_locked(prov, r, prov->current, view);
    apr_thread_mutex_unlock(prov->mutex);
    return rv;
}
