/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: binds the refresh protocol (core, bff_refresh.c) to a request: the session operations
 * on the request's session, the provider's token and revocation endpoints, the refreshed ID
 * token's check, the request's log.
 */
#include <apr_strings.h>
#include <jansson.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "mod_bff.h"
#include "mod_bff_config.h"
#include "mod_bff_site.h"
#include "mod_bff_provider.h"
#include "mod_bff_refresh.h"
#include "mod_bff_session.h"
#include "mod_bff_status.h"
#include "bff_idtoken.h"
#include "bff_oidc.h"
#include "bff_refresh.h"
#include "bff_userinfo.h"
#include "bff_util.h"

/* The refresh lock must outlive the longest refresh, or a second one would
 * start beside it (with rotating refresh tokens, the provider then revokes
 * the grant). The worst path, each call bounded by the provider's HTTP
 * timeout T (BFF_PROVIDER_HTTP_TIMEOUT_S, 10 s): discovery and JWKS fetch
 * (2T, or a wait of at most as long for another thread's fetch), the token
 * call (T), a JWKS refetch for an unknown kid (T, or a wait of at most T + 1 s
 * for another thread's refetch, which runs outside the provider mutex:
 * bff_provider_refresh_jwks_wait): about 4T = 41 s, plus a few
 * session store calls (each at most one memcache timeout, 0.5 s, twice).
 * The TTL is 6T, a 20 s margin; it only matters when the holder crashed.
 * T is BFFProviderTimeout's total (bff_provider_lock_ttl: 6T, at least 60 s). */

/* One refresh's bindings. */
typedef struct {
    request_rec *r;
    bff_site_t *site;
    bff_req_session_t *rs;
    bff_provider_view_t pv;
    int have_pv;
    const char *resource; /* a narrower token's (NULL: the default token) */
    const char *scope;
} refresh_ctx_t;

static apr_status_t ops_reload(void *baton, apr_pool_t *p, bff_session_t **fresh)
{
    refresh_ctx_t *c = baton;

    return bff_glue_session_reload(c->r, c->site, c->rs, fresh);
}

static apr_status_t ops_save(void *baton, apr_pool_t *p, bff_session_t *s)
{
    refresh_ctx_t *c = baton;

    c->rs->s = s;
    return bff_glue_session_save(c->r, c->site, c->rs, 0);
}

static void ops_end(void *baton, apr_pool_t *p)
{
    refresh_ctx_t *c = baton;

    /* Under every key of the ring, as a logout does. */
    bff_glue_session_remove(c->r, c->site, c->rs->id);
}

static apr_status_t ep_prepare(void *baton, apr_pool_t *p)
{
    refresh_ctx_t *c = baton;
    apr_status_t rv = bff_provider_get(c->site->provider, c->r, &c->pv);

    c->have_pv = rv == APR_SUCCESS;
    return rv;
}

static const char *ep_where(void *baton)
{
    refresh_ctx_t *c = baton;

    return c->have_pv ? c->pv.meta->token_endpoint : "the token endpoint";
}

/* The refreshed ID token, if any, must name the session's user. */
static apr_status_t verify_id_token(refresh_ctx_t *c, const bff_session_t *s,
                                    const bff_oidc_tokens_t *tok, bff_refresh_grant_t *g)
{
    request_rec *r = c->r;
    bff_site_t *site = c->site;
    bff_provider_view_t *pv = &c->pv;
    bff_idtoken_expect_t ex;
    json_t *claims = NULL;
    const char *err = NULL;
    apr_status_t rv;
    char *txt;

    memset(&ex, 0, sizeof(ex));
    ex.issuer = site->issuer;
    ex.client_id = site->client_id;
    ex.trusted_audiences = site->trusted_audiences;
    ex.now = bff_util_now();
    ex.leeway = 60;
    ex.max_age = 600;
    rv = bff_idtoken_verify_refreshed(r->pool, tok->id_token, pv->jwks, pv->meta->id_token_algs,
                                      &ex, s->sub, &claims, &err);
    if (rv == APR_NOTFOUND
        && APR_SUCCESS == bff_provider_refresh_jwks_wait(site->provider, r, pv)) {
        rv = bff_idtoken_verify_refreshed(r->pool, tok->id_token, pv->jwks, pv->meta->id_token_algs,
                                          &ex, s->sub, &claims, &err);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF01401: refreshed ID token "
                      "rejected: %s",
                      err ? err : "invalid");
        return APR_EGENERAL;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF03238: refresh step verify_id_token: the refreshed ID token is valid and "
                  "names the session's user");
    g->id_token = tok->id_token;
    /* The claims userinfo gave at login stay (BFFUserInfo). */
    bff_userinfo_carry(r->pool, s->claims, s->id_token, claims, &claims);
    txt = json_dumps(claims, JSON_COMPACT);
    if (txt) {
        g->claims = apr_pstrdup(r->pool, txt);
        free(txt);
    }
    return APR_SUCCESS;
}

static apr_status_t ep_call(void *baton, apr_pool_t *p, const bff_session_t *s,
                            bff_refresh_grant_t *g, const char **err)
{
    refresh_ctx_t *c = baton;
    bff_oidc_tokens_t *tok = NULL;
    apr_status_t rv;

    if (c->resource || c->scope) {
        rv = bff_oidc_refresh_narrow(c->r->pool, bff_provider_http(c->site->provider), c->pv.meta,
                                     &c->site->client, s->refresh_token, c->resource, c->scope,
                                     &tok, err);
    }
    else {
        rv = bff_oidc_refresh(c->r->pool, bff_provider_http(c->site->provider), c->pv.meta,
                              &c->site->client, s->refresh_token, &tok, err);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (tok->error) {
        g->result = strcmp(tok->error, "invalid_grant") ? BFF_GRANT_REFUSED : BFF_GRANT_INVALID;
        g->error = tok->error;
        return APR_SUCCESS;
    }
    if (tok->id_token && APR_SUCCESS != verify_id_token(c, s, tok, g)) {
        g->result = BFF_GRANT_REJECTED;
        g->refresh_token = tok->refresh_token; /* for the core to revoke */
        return APR_SUCCESS;
    }
    g->result = BFF_GRANT_ISSUED;
    g->access_token = tok->access_token;
    g->token_type = tok->token_type;
    g->refresh_token = tok->refresh_token;
    g->expires_in = tok->expires_in;
    return APR_SUCCESS;
}

/* A refresh token the provider issued that no session holds: the session
 * ended meanwhile (a logout revoked its predecessor), the refreshed ID
 * token was refused, or the store did not take the new record. It must not
 * stay valid unused. */
static void ep_revoke(void *baton, apr_pool_t *p, const char *rt)
{
    refresh_ctx_t *c = baton;
    const bff_provider_view_t *pv = &c->pv;
    const char *err = NULL;
    apr_status_t rv;

    if (!rt || !pv->meta->revocation_endpoint) {
        return;
    }
    rv = bff_oidc_revoke(c->r->pool, bff_provider_http(c->site->provider), pv->meta,
                         &c->site->client, rt, "refresh_token", &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, c->r,
                      "BFF01420: revoking a refresh "
                      "token that no session holds (ended meanwhile, or not stored) at %s "
                      "failed: %s",
                      pv->meta->revocation_endpoint, err ? err : "error");
    }
}

/* The core's log lines for this refresh go to the request's log. */
static void refresh_log(void *baton, const char *file, int line, int level, apr_status_t rv,
                        const char *msg)
{
    ap_log_rerror(file, line, APLOG_MODULE_INDEX, level, rv, (request_rec *)baton, "%s", msg);
}

/* The default token (resource and scope NULL) or a narrower one. */
static bff_outcome_e glue_refresh(request_rec *r, bff_site_t *site, bff_req_session_t *rs,
                                  const char *resource, const char *scope)
{
    refresh_ctx_t c;
    bff_refresh_session_ops_t ops = { ops_reload, ops_save, ops_end, &c };
    bff_refresh_endpoint_t ep = { ep_prepare, ep_call, ep_revoke, ep_where, &c };
    bff_refresh_t rf;
    bff_refresh_outcome_e outcome;
    bff_outcome_e o;
    bff_session_t *s = rs->s;

    memset(&c, 0, sizeof(c));
    c.r = r;
    c.site = site;
    c.rs = rs;
    c.resource = resource;
    c.scope = scope;
    memset(&rf, 0, sizeof(rf));
    rf.store = site->store;
    rf.ring = site->keyring;
    rf.site = site->binding;
    rf.refresh_before = site->refresh_before;
    rf.lock_ttl = bff_provider_lock_ttl(site->provider);
    rf.session = &ops;
    rf.endpoint = &ep;
    rf.log = refresh_log;
    rf.log_baton = r;
    rf.resource = resource;
    rf.scope = scope;
    /* The handle is a hash of the session id; 8 digits tell sessions apart. */
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF03230: refresh step start: the access token of session %.8s... is due "
                  "(expires in %" APR_INT64_T_FMT " s; resource %s, scope %s)",
                  rs->handle ? rs->handle : "-", s->at_expires - bff_util_now(),
                  resource ? resource : "default", scope ? scope : "default");
    (void)bff_refresh_run(&rf, r->pool, rs->handle, &s, &outcome);
    rs->s = s;
    bff_metrics_refresh(bff_glue_metrics(), outcome);
    o = bff_refresh_outcome_general(outcome);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "BFF03239: refresh step done: %s",
                  bff_refresh_outcome_name(outcome));
    if (o == BFF_OUTCOME_SESSION_ENDED) {
        /* The session ended (here or by a logout): forget this request's view. */
        bff_glue_session_forget(r);
    }
    return o;
}

bff_outcome_e bff_glue_refresh(request_rec *r, bff_site_t *site, bff_req_session_t *rs)
{
    return glue_refresh(r, site, rs, NULL, NULL);
}

bff_outcome_e bff_glue_refresh_narrow(request_rec *r, bff_site_t *site, bff_req_session_t *rs,
                                      const char *resource, const char *scope)
{
    return glue_refresh(r, site, rs, resource, scope);
}
