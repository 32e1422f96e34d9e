/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the CSRF check (Sec-Fetch-Site, Origin, the custom header) and its answer.
 */
#include <apr_strings.h>

#include <httpd.h>
#include <http_protocol.h>

#include "mod_bff_config.h"
#include "mod_bff_site.h"
#include "mod_bff_csrf.h"
#include "mod_bff_respond.h"
#include "mod_bff_status.h"

static int is_websocket(request_rec *r)
{
    const char *up = apr_table_get(r->headers_in, "Upgrade");
    return up && ap_find_token(r->pool, up, "websocket");
}

static int origin_trusted(const bff_site_t *site, const bff_dir_conf_t *dc, const char *origin)
{
    int i;

    if (site->origin && !strcasecmp(origin, site->origin)) {
        return 1;
    }
    for (i = 0; dc->trusted_origins && i < dc->trusted_origins->nelts; ++i) {
        if (!strcasecmp(origin, APR_ARRAY_IDX(dc->trusted_origins, i, const char *))) {
            return 1;
        }
    }
    return 0;
}

const char *bff_csrf_check(request_rec *r, const bff_site_t *site, const bff_dir_conf_t *dc)
{
    const char *origin = apr_table_get(r->headers_in, "Origin");
    const char *fetch_site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    const char *name, *want, *got;

    if (fetch_site && !strcasecmp(fetch_site, "cross-site")) {
        return "Sec-Fetch-Site is cross-site";
    }
    if (origin && !origin_trusted(site, dc, origin)) {
        return "Origin is neither this site nor a BFFTrustedOrigin";
    }
    if (is_websocket(r)) {
        /* Browsers always send Origin on WebSocket handshakes and never let a
         * page add headers to them: the Origin check is the defence. */
        return origin ? NULL : "WebSocket upgrade without Origin";
    }
    name = bff_dir_csrf_header(dc);
    want = bff_dir_csrf_value(dc);
    got = apr_table_get(r->headers_in, name);
    if (!got || strcmp(got, want)) {
        return apr_psprintf(r->pool, "missing or wrong %s header", name);
    }
    return NULL;
}

const char *bff_csrf_check_unsafe(request_rec *r, const bff_site_t *site, const bff_dir_conf_t *dc)
{
    const char *origin = apr_table_get(r->headers_in, "Origin");
    const char *fetch_site = apr_table_get(r->headers_in, "Sec-Fetch-Site");

    switch (r->method_number) {
    case M_GET:
    case M_OPTIONS:
    case M_TRACE:
        return NULL; /* HEAD is M_GET */
    default:
        break;
    }
    if (origin) {
        return origin_trusted(site, dc, origin) ? NULL
                                                : "Origin is neither this site nor a "
                                                  "BFFTrustedOrigin";
    }
    if (fetch_site && !strcasecmp(fetch_site, "same-origin")) {
        return NULL;
    }
    return apr_psprintf(r->pool, "%s without Origin or Sec-Fetch-Site: same-origin", r->method);
}

int bff_csrf_refuse(request_rec *r, const bff_dir_conf_t *dc)
{
    bff_metrics_csrf_refused(bff_glue_metrics());
    return bff_respond_outcome(r, BFF_OUTCOME_CSRF, BFF_AS_API,
                               apr_psprintf(r->pool,
                                            "The request must come from this site and carry "
                                            "the header %s: %s.",
                                            bff_dir_csrf_header(dc), bff_dir_csrf_value(dc)));
}
