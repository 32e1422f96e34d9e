/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
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
#include "bff_ns.h"
#include "bff_oidc.h"
#include "bff_util.h"

/* The refresh lock must outlive the longest refresh, or a second one would
 * start beside it (with rotating refresh tokens, the provider then revokes
 * the grant). The worst path, each call bounded by the provider's HTTP
 * timeout T (BFF_PROVIDER_HTTP_TIMEOUT_S, 10 s): discovery and JWKS fetch
 * (2T, or a wait of at most as long for another thread's fetch), the token
 * call (T), a JWKS refetch for an unknown kid (T, or a wait as long behind
 * another thread's refetch under the provider mutex): 4T = 40 s, plus a few
 * session store calls (each at most one memcache timeout, 0.5 s, twice).
 * The TTL is 6T, a 20 s margin; it only matters when the holder crashed. */
#define REFRESH_LOCK_TTL (6 * BFF_PROVIDER_HTTP_TIMEOUT_S)
#define REFRESH_WAIT_MS 12000 /* waiters give up after this */
#define REFRESH_POLL_MS 50
#define REFRESH_FAIL_TTL 5 /* a failed refresh is not retried for this long */

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

static int needs_refresh(bff_srv_conf_t *sc, const bff_session_t *s, apr_int64_t now)
{
    apr_int64_t window = sc->refresh_before;

    /* Tokens that live shorter than twice the window would be refreshed on
     * every request: refresh those at half their lifetime instead. */
    if (s->at_issued && s->at_expires > s->at_issued
        && (s->at_expires - s->at_issued) / 2 < window) {
        window = (s->at_expires - s->at_issued) / 2;
    }
    return s->at_expires && now + window >= s->at_expires;
}

static int relay_error(request_rec *r, int status, const char *error, const char *msg)
{
    return bff_respond_json_error(r, status, error, msg);
}

static void end_session(request_rec *r, bff_srv_conf_t *sc, bff_req_session_t *rs)
{
    /* Under every key of the ring, as a logout does. */
    bff_glue_session_remove(r, sc, rs->id);
    bff_glue_session_forget(r);
}

/* A refresh that failed at the provider leaves its answer in the store for
 * a few seconds: the requests that waited for it, and the next ones, answer
 * the same instead of each trying a provider that is down again. */
static const char *fail_key(request_rec *r, bff_srv_conf_t *sc, const char *handle)
{
    return bff_ns_key(r->pool, sc->keyring, BFF_NS_REFRESH_FAIL, 0, sc->site, handle);
}

static void fail_mark(request_rec *r, bff_srv_conf_t *sc, const char *key, int status)
{
    const char *v = apr_itoa(r->pool, status);

    /* add, not set: later failures must not stretch the window, or several
     * processes failing in turn would keep a recovered provider unused. */
    bff_store_add(sc->store, r->pool, fail_key(r, sc, key), (const unsigned char *)v, strlen(v),
                  bff_util_now() + REFRESH_FAIL_TTL);
}

static int fail_status(request_rec *r, bff_srv_conf_t *sc, const char *key)
{
    unsigned char *v;
    apr_size_t len;
    int status;

    if (APR_SUCCESS != bff_store_get(sc->store, r->pool, fail_key(r, sc, key), &v, &len) || len == 0
        || len > 3) {
        return 0;
    }
    status = atoi(apr_pstrmemdup(r->pool, (const char *)v, len));
    return status == HTTP_BAD_GATEWAY || status == HTTP_GATEWAY_TIME_OUT ? status : 0;
}

/* Apply a token response to the session (we hold its lock). */
static apr_status_t apply_tokens(request_rec *r, bff_srv_conf_t *sc, bff_provider_view_t *pv,
                                 bff_session_t *s, const bff_oidc_tokens_t *tok)
{
    apr_int64_t now = bff_util_now();

    if (tok->id_token) {
        bff_idtoken_expect_t ex;
        json_t *claims = NULL;
        const char *err = NULL;
        apr_status_t rv;
        char *txt;

        memset(&ex, 0, sizeof(ex));
        ex.issuer = sc->issuer;
        ex.client_id = sc->client_id;
        ex.trusted_audiences = sc->trusted_audiences;
        ex.now = now;
        ex.leeway = 60;
        ex.max_age = 600;
        rv = bff_idtoken_verify_refreshed(r->pool, tok->id_token, pv->jwks, pv->meta->id_token_algs,
                                          &ex, s->sub, &claims, &err);
        if (rv == APR_NOTFOUND && APR_SUCCESS == bff_provider_refresh_jwks(sc->provider, r, pv)) {
            rv = bff_idtoken_verify_refreshed(r->pool, tok->id_token, pv->jwks,
                                              pv->meta->id_token_algs, &ex, s->sub, &claims, &err);
        }
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "BFF01401: refreshed ID token "
                          "rejected: %s",
                          err ? err : "invalid");
            return APR_EGENERAL;
        }
        s->id_token = tok->id_token;
        txt = json_dumps(claims, JSON_COMPACT);
        if (txt) {
            s->claims = apr_pstrdup(r->pool, txt);
            free(txt);
        }
    }
    s->access_token = tok->access_token;
    s->token_type = tok->token_type;
    if (tok->refresh_token) {
        /* Rotation: the old refresh token is dropped in the same write. */
        s->refresh_token = tok->refresh_token;
    }
    s->at_expires = tok->expires_in > 0 ? now + tok->expires_in : 0;
    s->at_issued = now;
    s->last_access = now;
    return APR_SUCCESS;
}

/* A refresh token issued to a session that a logout ended meanwhile: the
 * logout revoked its predecessor; this one must not stay valid unused. */
static void revoke_unused(request_rec *r, bff_srv_conf_t *sc, const bff_provider_view_t *pv,
                          const char *rt)
{
    const char *err = NULL;
    apr_status_t rv;

    if (!rt || !pv->meta->revocation_endpoint) {
        return;
    }
    rv = bff_oidc_revoke(r->pool, bff_provider_http(sc->provider), pv->meta, &sc->client, rt,
                         "refresh_token", &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r,
                      "BFF01420: revoking the refresh token "
                      "issued to a session that ended meanwhile at %s failed: %s",
                      pv->meta->revocation_endpoint, err ? err : "error");
    }
}

/* We hold the lock: call the token endpoint and store the result. */
static int refresh_locked(request_rec *r, bff_srv_conf_t *sc, bff_req_session_t *rs)
{
    bff_provider_view_t pv;
    bff_oidc_tokens_t *tok = NULL;
    bff_session_t *fresh = NULL;
    const char *err = NULL;
    apr_int64_t now = bff_util_now();
    apr_status_t rv;
    int status;

    rv = bff_glue_session_reload(r, sc, rs, &fresh);
    if (rv == APR_NOTFOUND) {
        bff_glue_session_forget(r);
        return HTTP_UNAUTHORIZED;
    }
    if (rv != APR_SUCCESS) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    rs->s = fresh;
    if (!needs_refresh(sc, fresh, now)) {
        return OK; /* another request refreshed it meanwhile */
    }
    if (!fresh->refresh_token) {
        if (now < fresh->at_expires) {
            return OK;
        }
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF01402: access token expired and "
                      "there is no refresh token: session ended");
        end_session(r, sc, rs);
        return HTTP_UNAUTHORIZED;
    }
    if (APR_SUCCESS != (rv = bff_provider_get(sc->provider, r, &pv))) {
        status = rv == APR_TIMEUP ? HTTP_GATEWAY_TIME_OUT : HTTP_BAD_GATEWAY;
        if (rv != APR_EAGAIN) {
            /* EAGAIN: this child's own back-off after a failed fetch, not news. */
            fail_mark(r, sc, rs->handle, status);
        }
        return now < fresh->at_expires ? OK : status;
    }
    if (now >= fresh->at_expires && (status = fail_status(r, sc, rs->handle))) {
        return status;
    }
    rv = bff_oidc_refresh(r->pool, bff_provider_http(sc->provider), pv.meta, &sc->client,
                          fresh->refresh_token, &tok, &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, now < fresh->at_expires ? APLOG_WARNING : APLOG_ERR, rv, r,
                      "BFF01403: token refresh at %s failed: %s%s", pv.meta->token_endpoint,
                      err ? err : "error",
                      now < fresh->at_expires ? "; the current access token is still used" : "");
        status = rv == APR_TIMEUP ? HTTP_GATEWAY_TIME_OUT : HTTP_BAD_GATEWAY;
        fail_mark(r, sc, rs->handle, status);
        return now < fresh->at_expires ? OK : status;
    }
    if (tok->error) {
        if (!strcmp(tok->error, "invalid_grant")) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "BFF01404: the provider refused the "
                          "refresh token (invalid_grant): session ended");
            end_session(r, sc, rs);
            return HTTP_UNAUTHORIZED;
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "BFF01405: token refresh refused: %s",
                      tok->error);
        fail_mark(r, sc, rs->handle, HTTP_BAD_GATEWAY);
        return now < fresh->at_expires ? OK : HTTP_BAD_GATEWAY;
    }
    if (APR_SUCCESS != apply_tokens(r, sc, &pv, fresh, tok)) {
        end_session(r, sc, rs);
        return HTTP_UNAUTHORIZED;
    }
    rv = bff_glue_session_save(r, sc, rs, 0);
    if (rv == APR_NOTFOUND) {
        /* A logout ended the session while the provider answered: it stays
         * ended, and the tokens just issued are not used. */
        revoke_unused(r, sc, &pv, tok->refresh_token);
        bff_glue_session_forget(r);
        return HTTP_UNAUTHORIZED;
    }
    if (rv != APR_SUCCESS) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "BFF01406: access token refreshed");
    return OK;
}

/* Someone else is refreshing: wait (bounded) for their result. */
static int refresh_wait(request_rec *r, bff_srv_conf_t *sc, bff_req_session_t *rs,
                        apr_time_t deadline)
{
    apr_uint64_t rev = rs->s->rev;
    bff_session_t *fresh;
    apr_status_t rv;
    int status;

    while (apr_time_now() < deadline) {
        apr_sleep(apr_time_from_msec(REFRESH_POLL_MS));
        rv = bff_glue_session_reload(r, sc, rs, &fresh);
        if (rv == APR_NOTFOUND) {
            bff_glue_session_forget(r);
            return HTTP_UNAUTHORIZED;
        }
        if (rv != APR_SUCCESS) {
            return HTTP_SERVICE_UNAVAILABLE;
        }
        if (fresh->rev != rev) {
            rs->s = fresh;
            if (!needs_refresh(sc, fresh, bff_util_now())) {
                return OK;
            }
            rev = fresh->rev;
        }
        if (!bff_glue_is_locked(r, sc, rs->handle)) {
            /* The refresher gave up: take its answer rather than trying a
             * provider that just failed once more. */
            if (bff_util_now() < rs->s->at_expires) {
                return OK;
            }
            status = fail_status(r, sc, rs->handle);
            return status ? status : DECLINED;
        }
    }
    return bff_util_now() < rs->s->at_expires ? OK : HTTP_GATEWAY_TIME_OUT;
}

int bff_glue_refresh(request_rec *r, bff_srv_conf_t *sc, bff_req_session_t *rs)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_msec(REFRESH_WAIT_MS);
    const char *key = rs->handle; /* the same lock on every node, whatever its ring */
    apr_status_t rv;
    int status, attempt;

    /* A second attempt only when the lock holder vanished without a word
     * (a crashed child): the wait is bounded from the start either way. */
    for (attempt = 0; attempt < 2; ++attempt) {
        rv = bff_glue_lock(r, sc, key, REFRESH_LOCK_TTL);
        if (rv == APR_SUCCESS) {
            status = refresh_locked(r, sc, rs);
            bff_glue_unlock(r, sc, key);
            return status;
        }
        if (rv != APR_EEXIST) {
            return HTTP_SERVICE_UNAVAILABLE;
        }
        status = refresh_wait(r, sc, rs, deadline);
        if (status != DECLINED) {
            return status;
        }
    }
    return bff_util_now() < rs->s->at_expires ? OK : HTTP_BAD_GATEWAY;
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
    if (needs_refresh(sc, rs->s, bff_util_now())) {
        status = bff_glue_refresh(r, sc, rs);
        if (status != OK) {
            return relay_status_answer(r, status);
        }
    }
    else {
        bff_glue_session_touch(r, sc, rs);
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
