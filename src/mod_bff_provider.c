/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the provider cache of the core (bff_provider.c) bound to httpd: one
 * per site (mod_bff_site.c), its mutex made per child, and each request's
 * view held in r->pool with the cache's log lines in the request's log.
 */
#include <httpd.h>
#include <http_log.h>

#include "mod_bff.h"
#include "mod_bff_provider.h"

struct bff_provider_t {
    server_rec *s;
    bff_pcache_t *cache;
};

bff_provider_t *bff_provider_create(apr_pool_t *pconf, server_rec *s, const char *issuer,
                                    const char *ca_file)
{
    bff_provider_t *prov = apr_pcalloc(pconf, sizeof(*prov));

    prov->s = s;
    prov->cache = bff_pcache_create(pconf, issuer, ca_file, NULL);
    return prov;
}

void bff_provider_set_metadata_url(bff_provider_t *prov, const char *url)
{
    bff_pcache_set_metadata_url(prov->cache, url);
}

void bff_provider_set_timeouts(bff_provider_t *prov, long connect_ms, long total_ms)
{
    bff_pcache_set_timeouts(prov->cache, connect_ms, total_ms);
}

apr_int64_t bff_provider_lock_ttl(const bff_provider_t *prov)
{
    apr_int64_t total_s = (bff_pcache_http(prov->cache)->timeout_ms + 999) / 1000;

    return 6 * (total_s > BFF_PROVIDER_HTTP_TIMEOUT_S ? total_s : BFF_PROVIDER_HTTP_TIMEOUT_S);
}

void bff_provider_child_init(bff_provider_t *prov, apr_pool_t *pchild)
{
    apr_status_t rv = bff_pcache_child_init(prov->cache, pchild);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, prov->s,
                     "BFF00301: cannot create the "
                     "provider cache mutex");
    }
}

const bff_http_opts_t *bff_provider_http(const bff_provider_t *prov)
{
    return bff_pcache_http(prov->cache);
}

/* The cache's log lines for this request go to the request's log. */
static void request_log(void *baton, const char *file, int line, int level, apr_status_t rv,
                        const char *msg)
{
    ap_log_rerror(file, line, APLOG_MODULE_INDEX, level, rv, (request_rec *)baton, "%s", msg);
}

apr_status_t bff_provider_get(bff_provider_t *prov, request_rec *r, bff_provider_view_t *view)
{
    bff_pcache_log_t log = { request_log, r };

    return bff_pcache_get(prov->cache, r->pool, &log, view);
}

apr_status_t bff_provider_refresh_jwks(bff_provider_t *prov, request_rec *r,
                                       bff_provider_view_t *view)
{
    bff_pcache_log_t log = { request_log, r };

    return bff_pcache_refresh_jwks(prov->cache, r->pool, &log, view);
}

apr_status_t bff_provider_refresh_jwks_wait(bff_provider_t *prov, request_rec *r,
                                            bff_provider_view_t *view)
{
    bff_pcache_log_t log = { request_log, r };

    return bff_pcache_refresh_jwks_wait(prov->cache, r->pool, &log, view);
}
