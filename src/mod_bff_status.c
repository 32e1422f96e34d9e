/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: SetHandler bff-status: the counters' block in retained shared memory (one for all
 * children, kept by a graceful restart) and the page in Prometheus text or JSON (?json).
 */
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include "mod_bff.h"
#include "mod_bff_respond.h"
#include "mod_bff_status.h"
#include "mod_bff_store.h"
#include "bff_url.h"

#define BFF_RETAINED_METRICS "mod_bff-metrics"

/* Retained data holds only data: the block's address, never a pointer
 * into the module (it is loaded again, maybe elsewhere, at each restart). */
typedef struct {
    bff_metrics_t *m;
} retained_metrics_t;

/* This generation's view of the block (children inherit it). */
static bff_metrics_t *metrics;

bff_metrics_t *bff_glue_metrics(void)
{
    return metrics;
}

void bff_glue_status_post_config(server_rec *s)
{
    retained_metrics_t *rm = ap_retained_data_get(BFF_RETAINED_METRICS);
    apr_status_t rv;

    if (!rm) {
        rm = ap_retained_data_create(BFF_RETAINED_METRICS, sizeof(*rm));
    }
    if (rm->m && !bff_metrics_compatible(rm->m)) {
        /* A graceful restart into a build with another layout: the old
         * block stays mapped (the process pool keeps it) but unused. */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "BFF03101: bff-status counters start again: this build of mod_bff counts "
                     "in another layout");
        rm->m = NULL;
    }
    if (!rm->m) {
        if (APR_SUCCESS != (rv = bff_metrics_create(s->process->pool, &rm->m))) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                         "BFF03102: cannot create the shared memory of the bff-status "
                         "counters; nothing is counted and the status page answers 500");
            rm->m = NULL;
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                         "BFF03100: bff-status counters created (%" APR_SIZE_T_FMT " bytes of "
                         "shared memory)",
                         sizeof(bff_metrics_t));
        }
    }
    metrics = rm->m;
    bff_metrics_new_generation(metrics);
}

/* ?json anywhere in the query (json, json=1, a=b&json). */
static bff_metrics_format_e wanted_format(request_rec *r)
{
    apr_table_t *q = NULL;

    if (r->args && APR_SUCCESS == bff_url_parse_query(r->pool, r->args, &q)
        && apr_table_get(q, "json")) {
        return BFF_METRICS_JSON;
    }
    return BFF_METRICS_TEXT;
}

int bff_status_handler(request_rec *r)
{
    bff_metrics_store_view_t *views = NULL;
    bff_metrics_format_e format;
    const char *body = NULL;
    int n = 0;

    if (!r->handler || strcmp(r->handler, BFF_STATUS_HANDLER_NAME)) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        return bff_respond_method_not_allowed(r, "GET, HEAD");
    }
    if (!metrics) {
        return bff_respond_outcome(r, BFF_OUTCOME_INTERNAL, BFF_AS_API,
                                   "The status counters are not available (BFF03102).");
    }
    format = wanted_format(r);
    bff_glue_store_views(r->pool, &views, &n);
    if (APR_SUCCESS != bff_metrics_render(r->pool, metrics, views, n, format, &body)) {
        return bff_respond_outcome(r, BFF_OUTCOME_INTERNAL, BFF_AS_API, NULL);
    }
    return bff_respond_body(r, HTTP_OK, bff_metrics_content_type(format), body);
}
