/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: binds the client token (core, bff_clienttoken.c) to a request: the provider's token
 * endpoint with the site's client authentication, the request's log.
 */
#include <string.h>

#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "mod_bff.h"
#include "mod_bff_site.h"
#include "mod_bff_provider.h"
#include "mod_bff_respond.h"
#include "mod_bff_clienttoken.h"
#include "bff_clienttoken.h"
#include "bff_oidc.h"

/* The lock must outlive the longest fetch (discovery and JWKS, 2T, then
 * the token call, T, plus store calls), as the refresh lock does
 * (mod_bff_refresh.c): 6T (bff_provider_lock_ttl, T from BFFProviderTimeout).
 * It only matters when the holder crashed. */

typedef struct {
    request_rec *r;
    bff_site_t *site;
    bff_provider_view_t pv;
    int have_pv;
} ctoken_ctx_t;

static apr_status_t ep_prepare(void *baton, apr_pool_t *p)
{
    ctoken_ctx_t *c = baton;
    apr_status_t rv = bff_provider_get(c->site->provider, c->r, &c->pv);

    (void)p;
    c->have_pv = rv == APR_SUCCESS;
    return rv;
}

static const char *ep_where(void *baton)
{
    ctoken_ctx_t *c = baton;

    return c->have_pv ? c->pv.meta->token_endpoint : "the token endpoint";
}

static apr_status_t ep_call(void *baton, apr_pool_t *p, const char *scope, bff_refresh_grant_t *g,
                            const char **err)
{
    ctoken_ctx_t *c = baton;
    bff_oidc_tokens_t *tok = NULL;
    apr_status_t rv;

    (void)p;
    rv = bff_oidc_client_credentials(c->r->pool, bff_provider_http(c->site->provider), c->pv.meta,
                                     &c->site->client, scope, &tok, err);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (tok->error) {
        g->result = BFF_GRANT_REFUSED;
        g->error = tok->error;
        return APR_SUCCESS;
    }
    g->result = BFF_GRANT_ISSUED;
    g->access_token = tok->access_token;
    g->token_type = tok->token_type;
    g->expires_in = tok->expires_in;
    return APR_SUCCESS;
}

static void ctoken_log(void *baton, const char *file, int line, int level, apr_status_t rv,
                       const char *msg)
{
    ap_log_rerror(file, line, APLOG_MODULE_INDEX, level, rv, (request_rec *)baton, "%s", msg);
}

bff_outcome_e bff_glue_client_token(request_rec *r, bff_site_t *site, const char *scope,
                                    const char **token)
{
    ctoken_ctx_t c;
    bff_clienttoken_endpoint_t ep = { ep_prepare, ep_call, ep_where, &c };
    bff_clienttoken_t ct;
    bff_clienttoken_value_t tok;
    bff_refresh_outcome_e outcome;
    apr_status_t rv;

    memset(&c, 0, sizeof(c));
    c.r = r;
    c.site = site;
    memset(&ct, 0, sizeof(ct));
    ct.store = site->store;
    ct.ring = site->keyring;
    ct.site = site->binding;
    ct.issuer = site->issuer;
    ct.scope = scope;
    ct.refresh_before = site->refresh_before;
    ct.lock_ttl = bff_provider_lock_ttl(site->provider);
    ct.endpoint = &ep;
    ct.log = ctoken_log;
    ct.log_baton = r;
    memset(&tok, 0, sizeof(tok));
    if (APR_SUCCESS != (rv = bff_clienttoken_get(&ct, r->pool, &tok, &outcome))) {
        if (outcome == BFF_REFRESH_STORE_DOWN) {
            BFF_RLOG_AT(bff_respond_level(BFF_OUTCOME_STORE_DOWN), rv, r,
                        "BFF02211: session store (%s) unavailable for the client token",
                        site->store->name);
        }
        else if (outcome == BFF_REFRESH_WAIT_TIMEOUT) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "BFF02212: gave up waiting for another request's client token "
                          "request");
        }
        return bff_refresh_outcome_general(outcome);
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "BFF02210: client token: %s",
                  bff_refresh_outcome_name(outcome));
    *token = tok.access_token;
    return BFF_OUTCOME_OK;
}
