/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the relay: in BFFTokenRelay locations the session, CSRF and refresh checks and the
 * bearer header; elsewhere mod_bff's cookies kept from proxied requests and a relayed token
 * kept from internal redirects and subrequests.
 */
#include <apr_lib.h>
#include <apr_strings.h>
#include <jansson.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mod_bff.h"
#include "mod_bff_config.h"
#include "mod_bff_handler.h"
#include "mod_bff_provider.h"
#include "mod_bff_relay.h"
#include "mod_bff_session.h"
#include "bff_cookie.h"
#include "bff_idtoken.h"
#include "bff_oidc.h"
#include "bff_refresh.h"
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
 * The TTL is 6T, a 20 s margin; it only matters when the holder crashed. */
#define REFRESH_LOCK_TTL (6 * BFF_PROVIDER_HTTP_TIMEOUT_S)

static int is_websocket(request_rec *r)
{
    const char *up = apr_table_get(r->headers_in, "Upgrade");
    return up && ap_find_token(r->pool, up, "websocket");
}

static int origin_trusted(bff_srv_conf_t *sc, const bff_dir_conf_t *dc, const char *origin)
{
    int i;

    if (sc->origin && !strcasecmp(origin, sc->origin)) {
        return 1;
    }
    for (i = 0; dc->trusted_origins && i < dc->trusted_origins->nelts; ++i) {
        if (!strcasecmp(origin, APR_ARRAY_IDX(dc->trusted_origins, i, const char *))) {
            return 1;
        }
    }
    return 0;
}

const char *bff_glue_csrf_check(request_rec *r, bff_srv_conf_t *sc, const bff_dir_conf_t *dc)
{
    const char *origin = apr_table_get(r->headers_in, "Origin");
    const char *site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    const char *name, *want, *got;

    if (site && !strcasecmp(site, "cross-site")) {
        return "Sec-Fetch-Site is cross-site";
    }
    if (origin && !origin_trusted(sc, dc, origin)) {
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

/* ---- refresh ------------------------------------------------------- */

/* The protocol is in the core (bff_refresh.c); this binds it to the request:
 * the session operations on the request's session, the provider's token
 * endpoint, the request's log, and the outcome's answer. */

static int relay_error(request_rec *r, int status, const char *error, const char *msg)
{
    return bff_respond_json_error(r, status, error, msg);
}

/* One refresh's bindings. */
typedef struct {
    request_rec *r;
    bff_srv_conf_t *sc;
    bff_req_session_t *rs;
    bff_provider_view_t pv;
    int have_pv;
} refresh_ctx_t;

static apr_status_t ops_reload(void *baton, apr_pool_t *p, bff_session_t **fresh)
{
    refresh_ctx_t *c = baton;

    return bff_glue_session_reload(c->r, c->sc, c->rs, fresh);
}

static apr_status_t ops_save(void *baton, apr_pool_t *p, bff_session_t *s)
{
    refresh_ctx_t *c = baton;

    c->rs->s = s;
    return bff_glue_session_save(c->r, c->sc, c->rs, 0);
}

static void ops_end(void *baton, apr_pool_t *p)
{
    refresh_ctx_t *c = baton;

    /* Under every key of the ring, as a logout does. */
    bff_glue_session_remove(c->r, c->sc, c->rs->id);
}

static apr_status_t ep_prepare(void *baton, apr_pool_t *p)
{
    refresh_ctx_t *c = baton;
    apr_status_t rv = bff_provider_get(c->sc->provider, c->r, &c->pv);

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
    bff_srv_conf_t *sc = c->sc;
    bff_provider_view_t *pv = &c->pv;
    bff_idtoken_expect_t ex;
    json_t *claims = NULL;
    const char *err = NULL;
    apr_status_t rv;
    char *txt;

    memset(&ex, 0, sizeof(ex));
    ex.issuer = sc->issuer;
    ex.client_id = sc->client_id;
    ex.trusted_audiences = sc->trusted_audiences;
    ex.now = bff_util_now();
    ex.leeway = 60;
    ex.max_age = 600;
    rv = bff_idtoken_verify_refreshed(r->pool, tok->id_token, pv->jwks, pv->meta->id_token_algs,
                                      &ex, s->sub, &claims, &err);
    if (rv == APR_NOTFOUND && APR_SUCCESS == bff_provider_refresh_jwks_wait(sc->provider, r, pv)) {
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
    g->id_token = tok->id_token;
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

    rv = bff_oidc_refresh(c->r->pool, bff_provider_http(c->sc->provider), c->pv.meta,
                          &c->sc->client, s->refresh_token, &tok, err);
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
    rv = bff_oidc_revoke(c->r->pool, bff_provider_http(c->sc->provider), pv->meta, &c->sc->client,
                         rt, "refresh_token", &err);
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

/* The HTTP status each outcome answers with (relay_status_answer() turns
 * it into the JSON error); OK: relay with rs->s. */
static int refresh_status(bff_refresh_outcome_e o)
{
    switch (o) {
    case BFF_REFRESH_NOT_NEEDED:
    case BFF_REFRESH_REFRESHED:
    case BFF_REFRESH_WAITED:
    case BFF_REFRESH_STILL_VALID:
        return OK;
    case BFF_REFRESH_GRANT_REVOKED:
    case BFF_REFRESH_NO_REFRESH_TOKEN:
    case BFF_REFRESH_REJECTED:
    case BFF_REFRESH_SESSION_GONE:
        return HTTP_UNAUTHORIZED;
    case BFF_REFRESH_PROVIDER_TIMEOUT:
    case BFF_REFRESH_WAIT_TIMEOUT:
        return HTTP_GATEWAY_TIME_OUT;
    case BFF_REFRESH_STORE_DOWN:
        return HTTP_SERVICE_UNAVAILABLE;
    case BFF_REFRESH_PROVIDER_DOWN:
    default:
        return HTTP_BAD_GATEWAY;
    }
}

int bff_glue_refresh(request_rec *r, bff_srv_conf_t *sc, bff_req_session_t *rs)
{
    refresh_ctx_t c;
    bff_refresh_session_ops_t ops = { ops_reload, ops_save, ops_end, &c };
    bff_refresh_endpoint_t ep = { ep_prepare, ep_call, ep_revoke, ep_where, &c };
    bff_refresh_t rf;
    bff_refresh_outcome_e outcome;
    bff_session_t *s = rs->s;

    memset(&c, 0, sizeof(c));
    c.r = r;
    c.sc = sc;
    c.rs = rs;
    memset(&rf, 0, sizeof(rf));
    rf.store = sc->store;
    rf.ring = sc->keyring;
    rf.site = sc->site;
    rf.refresh_before = sc->refresh_before;
    rf.lock_ttl = REFRESH_LOCK_TTL;
    rf.session = &ops;
    rf.endpoint = &ep;
    rf.log = refresh_log;
    rf.log_baton = r;
    (void)bff_refresh_run(&rf, r->pool, rs->handle, &s, &outcome);
    rs->s = s;
    if (refresh_status(outcome) == HTTP_UNAUTHORIZED) {
        /* The session ended (here or by a logout): forget this request's view. */
        bff_glue_session_forget(r);
    }
    return refresh_status(outcome);
}

/* ---- relay --------------------------------------------------------- */

static void strip_own_cookies(request_rec *r, bff_srv_conf_t *sc)
{
    const char *hdr = apr_table_get(r->headers_in, "Cookie");
    const char *names[3];
    char *rest;

    if (!hdr) {
        return;
    }
    names[0] = sc->cookie_name;
    names[1] = sc->txn_cookie_name;
    names[2] = NULL;
    rest = bff_cookie_strip_prefix(r->pool, hdr, names, sc->txn_cookie_prefix);
    if (rest) {
        apr_table_setn(r->headers_in, "Cookie", rest);
    }
    else {
        apr_table_unset(r->headers_in, "Cookie");
    }
}

static int relay_status_answer(request_rec *r, int status)
{
    switch (status) {
    case HTTP_UNAUTHORIZED:
        return relay_error(r, status, "unauthenticated", "The session has ended; sign in again.");
    case HTTP_GATEWAY_TIME_OUT:
        return relay_error(r, status, "provider_timeout",
                           "The identity provider did not answer in time; try again.");
    case HTTP_SERVICE_UNAVAILABLE:
        return relay_error(r, status, "store_unavailable",
                           "The session store is not available; try again.");
    default:
        return relay_error(r, HTTP_BAD_GATEWAY, "provider_error",
                           "The access token could not be renewed; try again.");
    }
}

/* The request the client sent: internal redirects (ErrorDocument, mod_rewrite
 * [PT] in a directory) and subrequests (SSI includes) hang off it. */
static request_rec *initial_req(request_rec *r)
{
    for (;;) {
        if (r->main) {
            r = r->main;
        }
        else if (r->prev) {
            r = r->prev;
        }
        else {
            return r;
        }
    }
}

/* Pool userdata of the initial request (not a note: notes can be logged). */
#define RELAYED_KEY "mod_bff:relayed-authorization"

/* Internal redirects share headers_in with the relayed request and
 * subrequests copy it: the bearer set for a relay location must not reach
 * whatever an ErrorDocument or an include points at. Only our own value is
 * removed; an Authorization header the client sent to a non-relay location
 * was never replaced, so it stays. */
static void drop_inherited_token(request_rec *r)
{
    request_rec *first;
    void *ours = NULL;
    const char *got;

    if (!r->main && !r->prev) {
        return;
    }
    first = initial_req(r);
    apr_pool_userdata_get(&ours, RELAYED_KEY, first->pool);
    got = apr_table_get(r->headers_in, "Authorization");
    if (ours && got && bff_util_ct_streq(ours, got)) {
        apr_table_unset(r->headers_in, "Authorization");
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BFF01450: relayed access token removed "
                      "from an internal redirect or subrequest to a location without "
                      "BFFTokenRelay");
    }
}

/* mod_proxy forwards this request (ProxyPass, RewriteRule [P], SetHandler
 * proxy:...): the same tests as its handler. */
static int is_proxied(const request_rec *r)
{
    return (r->proxyreq && r->filename && !strncmp(r->filename, "proxy:", 6))
           || (r->handler && !strncmp(r->handler, "proxy:", 6));
}

/* A location without BFFTokenRelay: the session cookie is a bearer
 * credential for the session, so proxied requests do not carry it unless
 * the location says BFFPassCookie On. */
static int not_relayed(request_rec *r, const bff_dir_conf_t *dc)
{
    bff_srv_conf_t *sc = bff_srv_conf(r->server);

    drop_inherited_token(r);
    if (sc->issuer && is_proxied(r) && !bff_dir_pass_cookie(dc)) {
        strip_own_cookies(r, sc);
    }
    return DECLINED;
}

int bff_relay_handler(request_rec *r)
{
    bff_dir_conf_t *dc = bff_dir_conf(r);
    int mode = bff_dir_relay(dc);
    bff_srv_conf_t *sc;
    bff_req_session_t *rs = NULL;
    request_rec *first;
    const char *why, *bearer;
    apr_status_t rv;
    int status;

    if (mode == BFF_RELAY_OFF) {
        return not_relayed(r, dc);
    }
    sc = bff_srv_conf(r->server);
    if (!sc->issuer || !sc->store) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF01410: BFFTokenRelay is on in a server "
                      "without BFFProvider");
        return relay_error(r, HTTP_INTERNAL_SERVER_ERROR, "not_configured",
                           "The token relay is not configured.");
    }
    /* Nothing the client sends may pass as our credential. */
    apr_table_unset(r->headers_in, "Authorization");
    rv = bff_glue_session_load(r, sc, &rs);
    strip_own_cookies(r, sc);
    if (rv == APR_NOTFOUND) {
        if (mode == BFF_RELAY_OPTIONAL) {
            return DECLINED;
        }
        return relay_error(r, HTTP_UNAUTHORIZED, "unauthenticated",
                           "There is no valid session; sign in first.");
    }
    if (rv != APR_SUCCESS) {
        return relay_status_answer(r, HTTP_SERVICE_UNAVAILABLE);
    }
    if ((why = bff_glue_csrf_check(r, sc, dc))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "BFF01411: relayed request refused: %s", why);
        return relay_error(r, HTTP_FORBIDDEN, "csrf",
                           apr_psprintf(r->pool,
                                        "The request "
                                        "must come from this site and carry the header %s: %s.",
                                        bff_dir_csrf_header(dc), bff_dir_csrf_value(dc)));
    }
    if (bff_refresh_needed(sc->refresh_before, rs->s, bff_util_now())) {
        status = bff_glue_refresh(r, sc, rs);
        if (status != OK) {
            return relay_status_answer(r, status);
        }
    }
    else if (bff_glue_session_touch(r, sc, rs) == APR_NOTFOUND) {
        return relay_status_answer(r, HTTP_UNAUTHORIZED);
    }
    if (!rs->s->access_token) {
        return relay_status_answer(r, HTTP_UNAUTHORIZED);
    }
    bearer = apr_pstrcat(r->pool, "Bearer ", rs->s->access_token, NULL);
    apr_table_setn(r->headers_in, "Authorization", bearer);
    /* Remembered in the pool that outlives the redirects and subrequests,
     * so that requests derived from this one can tell our value from a
     * client's. */
    first = initial_req(r);
    apr_pool_userdata_set(apr_pstrdup(first->pool, bearer), RELAYED_KEY, NULL, first->pool);
    return DECLINED;
}
