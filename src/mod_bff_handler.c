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
#include "mod_bff_logout.h"
#include "mod_bff_provider.h"
#include "mod_bff_relay.h"
#include "mod_bff_session.h"
#include "bff_cookie.h"
#include "bff_idtoken.h"
#include "bff_oidc.h"
#include "bff_session.h"
#include "bff_url.h"
#include "bff_util.h"

#define TXN_KEY_PREFIX "t:"
#define ID_TOKEN_LEEWAY 60
#define ID_TOKEN_MAX_AGE 600

static void no_store(request_rec *r)
{
    /* err_headers_out survives error and redirect responses too. */
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
}

static int send_body(request_rec *r, int status, const char *ctype, const char *body)
{
    r->status = status;
    no_store(r);
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    ap_set_content_type(r, ctype);
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}

int bff_respond_json_error(request_rec *r, int status, const char *error, const char *message)
{
    json_t *o = json_pack("{s:s,s:s}", "error", error, "message", message);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    const char *body = txt ? apr_pstrcat(r->pool, txt, "\n", NULL) : "{\"error\":\"internal\"}\n";

    free(txt);
    json_decref(o);
    return send_body(r, status, "application/json", body);
}

int bff_respond_page(request_rec *r, int status, const char *title, const char *message)
{
    const char *body = apr_psprintf(r->pool,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n"
        "<body><h1>%s</h1>\n<p>%s</p>\n<p><a href=\"/\">Back to the start page</a></p>"
        "</body></html>\n",
        ap_escape_html(r->pool, title), ap_escape_html(r->pool, title),
        ap_escape_html(r->pool, message));

    apr_table_setn(r->headers_out, "Content-Security-Policy", "default-src 'none'");
    return send_body(r, status, "text/html; charset=utf-8", body);
}

static int json_ok(request_rec *r, json_t *o)
{
    char *txt = json_dumps(o, JSON_COMPACT);
    const char *body;

    json_decref(o);
    if (!txt) {
        return bff_respond_json_error(r, HTTP_INTERNAL_SERVER_ERROR, "internal",
                                      "The response could not be encoded.");
    }
    body = apr_pstrcat(r->pool, txt, "\n", NULL);
    free(txt);
    return send_body(r, HTTP_OK, "application/json", body);
}

static void set_cookie(request_rec *r, const char *name, const char *value,
                       apr_int64_t max_age, bff_samesite_e ss)
{
    const char *c = bff_cookie_format(r->pool, name, value, max_age, ss);

    if (c) {
        apr_table_add(r->err_headers_out, "Set-Cookie", c);
    }
}

static const char *status_reason(apr_status_t rv)
{
    return rv == APR_TIMEUP ? "timed out" : "failed";
}

/* The provider could not be reached or gave unusable metadata. */
static int provider_unavailable(request_rec *r, apr_status_t rv)
{
    return bff_respond_page(r, rv == APR_TIMEUP ? HTTP_GATEWAY_TIME_OUT : HTTP_BAD_GATEWAY,
                            "Sign-in is unavailable",
                            "The identity provider cannot be reached right now. "
                            "Please try again in a moment.");
}

static int store_unavailable_page(request_rec *r)
{
    return bff_respond_page(r, HTTP_SERVICE_UNAVAILABLE, "Sign-in is unavailable",
                            "The session store is not available right now. "
                            "Please try again in a moment.");
}

/* ---- login ---------------------------------------------------------- */

static const char *login_binder(request_rec *r, bff_srv_conf_t *sc, int *is_new)
{
    const char *hdr = apr_table_get(r->headers_in, "Cookie");
    const char *b = hdr ? bff_cookie_get(r->pool, hdr, sc->txn_cookie_name) : NULL;

    /* Parallel tabs share one binder, so every pending login stays valid. */
    if (b && bff_session_id_ok(b)) {
        *is_new = 0;
        return b;
    }
    *is_new = 1;
    return bff_session_new_id(r->pool);
}

static const char *binder_hash(request_rec *r, const char *binder)
{
    unsigned char h[32];

    if (APR_SUCCESS != bff_util_sha256(binder, strlen(binder), h)) {
        return NULL;
    }
    return bff_util_hex(r->pool, h, sizeof(h));
}

static int handle_login(request_rec *r, bff_srv_conf_t *sc)
{
    apr_table_t *q = NULL;
    const char *return_to = "/", *binder, *url;
    bff_provider_view_t pv;
    bff_txn_t t;
    bff_oidc_authz_t az;
    unsigned char *rec;
    apr_size_t len;
    apr_status_t rv;
    int binder_new;

    if (r->args && APR_SUCCESS != bff_url_parse_query(r->pool, r->args, &q)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "BFF00201: login refused: malformed "
                      "query string");
        return bff_respond_page(r, HTTP_BAD_REQUEST, "Bad sign-in link",
                                "The sign-in link is malformed.");
    }
    if (q && apr_table_get(q, "returnTo")) {
        return_to = apr_table_get(q, "returnTo");
        if (!bff_url_return_to_ok(return_to)) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "BFF00202: login refused: returnTo "
                          "is not a same-origin relative path");
            return bff_respond_page(r, HTTP_BAD_REQUEST, "Bad sign-in link",
                                    "The page to return to after sign-in must be a path on "
                                    "this site.");
        }
    }
    if (APR_SUCCESS != (rv = bff_provider_get(sc->provider, r, &pv))) {
        return provider_unavailable(r, rv);
    }
    binder = login_binder(r, sc, &binder_new);
    memset(&t, 0, sizeof(t));
    t.state = bff_util_random_token(r->pool, 32);
    t.nonce = bff_util_random_token(r->pool, 32);
    t.code_verifier = bff_oidc_pkce_verifier(r->pool);
    t.return_to = return_to;
    t.binder_hash = binder_hash(r, binder);
    t.created = bff_util_now();
    t.expires = t.created + BFF_TXN_LIFETIME;
    if (!t.state || !t.nonce || !t.code_verifier || !t.binder_hash) {
        return bff_respond_page(r, HTTP_INTERNAL_SERVER_ERROR, "Sign-in failed",
                                "A random value could not be generated.");
    }
    {
        const char *key = bff_crypto_store_key(r->pool, sc->keyring, 0, TXN_KEY_PREFIX, t.state);
        rv = bff_txn_seal(r->pool, sc->keyring, key, &t, &rec, &len);
        if (rv == APR_SUCCESS) {
            rv = bff_store_add(sc->store, r->pool, key, rec, len, t.expires);
        }
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, bff_glue_store_fail_level(), rv, r, "BFF00203: cannot store the login "
                      "transaction (%s store)", sc->store->name);
        return store_unavailable_page(r);
    }
    memset(&az, 0, sizeof(az));
    az.client_id = sc->client_id;
    az.redirect_uri = sc->redirect_uri;
    az.scope = sc->scope;
    az.state = t.state;
    az.nonce = t.nonce;
    az.code_challenge = bff_oidc_pkce_challenge(r->pool, t.code_verifier);
    az.extra = sc->auth_params;
    url = bff_oidc_authz_url(r->pool, pv.meta, &az);
    if (binder_new) {
        /* Lax: the provider's redirect back is a cross-site top-level GET. */
        set_cookie(r, sc->txn_cookie_name, binder, BFF_TXN_LIFETIME, BFF_SAMESITE_LAX);
    }
    no_store(r);
    apr_table_setn(r->headers_out, "Location", url);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "BFF00204: login started, redirecting to "
                  "the provider");
    return HTTP_MOVED_TEMPORARILY;
}

/* ---- callback ------------------------------------------------------- */

static int callback_fail(request_rec *r, int status, const char *tag_msg, const char *user_msg,
                         int level)
{
    ap_log_rerror(APLOG_MARK, level, 0, r, "%s", tag_msg);
    return bff_respond_page(r, status, "Sign-in failed", user_msg);
}

/* Single use: whoever removes the record owns the login attempt. */
static apr_status_t take_txn(request_rec *r, bff_srv_conf_t *sc, const char *state,
                             bff_txn_t **t)
{
    const char *key = bff_crypto_store_key(r->pool, sc->keyring, 0, TXN_KEY_PREFIX, state);
    unsigned char *rec;
    apr_size_t len;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = bff_store_get(sc->store, r->pool, key, &rec, &len))) {
        return rv;
    }
    if (APR_SUCCESS != (rv = bff_store_remove(sc->store, r->pool, key))) {
        return rv;
    }
    rv = bff_txn_open(r->pool, sc->keyring, key, rec, len, t);
    if (rv != APR_SUCCESS) {
        return APR_EINVAL;
    }
    return (*t)->expires > bff_util_now() ? APR_SUCCESS : APR_NOTFOUND;
}

/* Only the error code from the provider is echoed, and only if it looks
 * like one: the description is attacker-controllable text. */
static const char *safe_error_code(request_rec *r, const char *e)
{
    const char *c;

    if (!e || !*e || strlen(e) > 64) {
        return "unknown";
    }
    for (c = e; *c; ++c) {
        if (!apr_isalnum(*c) && *c != '_' && *c != '-' && *c != '.') {
            return "unknown";
        }
    }
    return e;
}

static apr_status_t verify_id_token(request_rec *r, bff_srv_conf_t *sc,
                                    bff_provider_view_t *pv, const char *id_token,
                                    const char *nonce, json_t **claims, const char **err)
{
    bff_idtoken_expect_t ex;
    apr_status_t rv;

    memset(&ex, 0, sizeof(ex));
    ex.issuer = sc->issuer;
    ex.client_id = sc->client_id;
    ex.trusted_audiences = sc->trusted_audiences;
    ex.nonce = nonce;
    ex.now = bff_util_now();
    ex.leeway = ID_TOKEN_LEEWAY;
    ex.max_age = ID_TOKEN_MAX_AGE;
    rv = bff_idtoken_verify(r->pool, id_token, pv->jwks, pv->meta->id_token_algs, &ex, claims,
                            err);
    if (rv == APR_NOTFOUND) {
        /* An unknown kid: the provider may have rotated its keys. */
        if (APR_SUCCESS == bff_provider_refresh_jwks(sc->provider, r, pv)) {
            rv = bff_idtoken_verify(r->pool, id_token, pv->jwks, pv->meta->id_token_algs, &ex,
                                    claims, err);
        }
    }
    return rv;
}

static int callback_page(request_rec *r, const char *return_to)
{
    const char *esc = ap_escape_html(r->pool, return_to);
    /* A same-site refresh instead of a 302: the provider's redirect is a
     * cross-site navigation, on which SameSite=Strict cookies are withheld
     * from every request of the redirect chain. The refresh starts a new,
     * same-site navigation that carries the fresh session cookie. */
    const char *body = apr_psprintf(r->pool,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"refresh\" content=\"0;url=%s\"><title>Signed in</title></head>\n"
        "<body><p>Signed in. <a href=\"%s\">Continue</a></p></body></html>\n", esc, esc);

    apr_table_setn(r->headers_out, "Content-Security-Policy", "default-src 'none'");
    apr_table_setn(r->headers_out, "Referrer-Policy", "no-referrer");
    return send_body(r, HTTP_OK, "text/html; charset=utf-8", body);
}

static int handle_callback(request_rec *r, bff_srv_conf_t *sc)
{
    apr_table_t *q = NULL;
    const char *state, *code, *iss, *error, *hdr, *binder, *err = NULL, *old;
    bff_provider_view_t pv;
    bff_txn_t *t = NULL;
    bff_oidc_tokens_t *tok = NULL;
    json_t *claims = NULL;
    bff_req_session_t rs;
    bff_session_t s;
    apr_int64_t now;
    apr_status_t rv;
    char *claims_txt;

    if (!r->args || APR_SUCCESS != bff_url_parse_query(r->pool, r->args, &q)) {
        return callback_fail(r, HTTP_BAD_REQUEST, "BFF00210: callback without a valid query",
                             "The sign-in response is incomplete. Please sign in again.",
                             APLOG_INFO);
    }
    state = apr_table_get(q, "state");
    code = apr_table_get(q, "code");
    iss = apr_table_get(q, "iss");
    error = apr_table_get(q, "error");
    if (!state || !*state || strlen(state) > 256) {
        return callback_fail(r, HTTP_BAD_REQUEST, "BFF00211: callback without state",
                             "The sign-in response is incomplete. Please sign in again.",
                             APLOG_INFO);
    }
    rv = take_txn(r, sc, state, &t);
    if (rv == APR_NOTFOUND || rv == APR_EINVAL) {
        return callback_fail(r, HTTP_BAD_REQUEST, "BFF00212: callback with an unknown, "
                             "expired or already used state",
                             "This sign-in attempt has expired or was already used. "
                             "Please sign in again.", APLOG_INFO);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, bff_glue_store_fail_level(), rv, r, "BFF00213: session store unavailable "
                      "during callback");
        return store_unavailable_page(r);
    }
    hdr = apr_table_get(r->headers_in, "Cookie");
    binder = hdr ? bff_cookie_get(r->pool, hdr, sc->txn_cookie_name) : NULL;
    if (!binder || !bff_util_ct_streq(binder_hash(r, binder), t->binder_hash)) {
        return callback_fail(r, HTTP_BAD_REQUEST, "BFF00214: callback from a browser that "
                             "did not start this login (login cookie missing or different)",
                             "This sign-in response does not belong to this browser. "
                             "Please sign in again.", APLOG_INFO);
    }
    if (APR_SUCCESS != (rv = bff_provider_get(sc->provider, r, &pv))) {
        return provider_unavailable(r, rv);
    }
    if (iss ? strcmp(iss, sc->issuer) != 0 : pv.meta->iss_parameter_supported) {
        return callback_fail(r, HTTP_BAD_REQUEST, iss ? "BFF00215: callback iss parameter "
                             "does not match the provider (mix-up attack?)"
                             : "BFF00216: callback without the iss parameter the provider "
                             "advertises", "The sign-in response came from an unexpected "
                             "identity provider.", APLOG_INFO);
    }
    if (error) {
        const char *e = safe_error_code(r, error);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "BFF00217: the provider returned error "
                      "'%s' to the login", e);
        return bff_respond_page(r, HTTP_FORBIDDEN, "Sign-in was not completed",
                                apr_psprintf(r->pool, "The identity provider answered: %s. "
                                             "You can try to sign in again.", e));
    }
    if (!code || !*code) {
        return callback_fail(r, HTTP_BAD_REQUEST, "BFF00218: callback without code",
                             "The sign-in response is incomplete. Please sign in again.",
                             APLOG_INFO);
    }
    rv = bff_oidc_exchange_code(r->pool, bff_provider_http(sc->provider), pv.meta, &sc->client,
                                code, t->code_verifier, sc->redirect_uri, &tok, &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "BFF00219: code exchange at %s %s: %s",
                      pv.meta->token_endpoint, status_reason(rv), err ? err : "error");
        return provider_unavailable(r, rv);
    }
    if (tok->error) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "BFF00220: the token endpoint refused the "
                      "code: %s", safe_error_code(r, tok->error));
        return bff_respond_page(r, HTTP_BAD_GATEWAY, "Sign-in failed",
                                "The identity provider refused to complete the sign-in. "
                                "Please sign in again.");
    }
    if (!tok->id_token) {
        return callback_fail(r, HTTP_BAD_GATEWAY, "BFF00221: the token response has no "
                             "id_token (is 'openid' in the scope?)",
                             "The identity provider's answer was incomplete.", APLOG_ERR);
    }
    rv = verify_id_token(r, sc, &pv, tok->id_token, t->nonce, &claims, &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "BFF00222: ID token rejected: %s",
                      err ? err : "invalid");
        return bff_respond_page(r, HTTP_BAD_GATEWAY, "Sign-in failed",
                                "The identity provider's answer could not be verified.");
    }

    now = bff_util_now();
    memset(&s, 0, sizeof(s));
    s.iss = sc->issuer;
    s.sub = json_string_value(json_object_get(claims, "sub"));
    s.sid = json_string_value(json_object_get(claims, "sid"));
    s.access_token = tok->access_token;
    s.token_type = tok->token_type;
    s.refresh_token = tok->refresh_token;
    s.id_token = tok->id_token;
    claims_txt = json_dumps(claims, JSON_COMPACT);
    s.claims = claims_txt ? apr_pstrdup(r->pool, claims_txt) : "{}";
    free(claims_txt);
    s.logout_id = bff_util_random_token(r->pool, 16);
    s.at_expires = tok->expires_in > 0 ? now + tok->expires_in : 0;
    s.at_issued = now;
    s.created = now;
    s.last_access = now;
    s.expires = now + sc->max_lifetime;

    /* A fresh identifier at every login: a cookie planted before the login
     * (session fixation) names nothing afterwards. */
    old = hdr ? bff_cookie_get(r->pool, hdr, sc->cookie_name) : NULL;
    if (old && bff_session_id_ok(old)) {
        bff_glue_session_remove(r, sc, old);
    }
    memset(&rs, 0, sizeof(rs));
    rs.id = bff_session_new_id(r->pool);
    rs.s = &s;
    if (!rs.id) {
        return bff_respond_page(r, HTTP_INTERNAL_SERVER_ERROR, "Sign-in failed",
                                "A random value could not be generated.");
    }
    rv = bff_glue_session_save(r, sc, &rs, 1);
    if (rv != APR_SUCCESS) {
        return rv == APR_ENOSPC
            ? bff_respond_page(r, HTTP_INTERNAL_SERVER_ERROR, "Sign-in failed",
                               "The session is too large to store.")
            : store_unavailable_page(r);
    }
    /* So a back-channel logout can find the session by sid or sub. */
    if (s.sid && *s.sid) {
        bff_glue_index_add(r, sc, BFF_INDEX_SID, s.sid, rs.handle, s.expires);
    }
    bff_glue_index_add(r, sc, BFF_INDEX_SUB, s.sub, rs.handle, s.expires);
    set_cookie(r, sc->cookie_name, rs.id, -1, (bff_samesite_e)sc->samesite);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "BFF00223: login completed for sub %s",
                  ap_escape_logitem(r->pool, s.sub));
    return callback_page(r, t->return_to);
}

/* ---- user ----------------------------------------------------------- */

static const char *base_path(request_rec *r)
{
    const char *u = r->uri, *slash = strrchr(u, '/');
    return apr_pstrndup(r->pool, u, (apr_size_t)(slash - u) + 1);
}

static int handle_user(request_rec *r, bff_srv_conf_t *sc)
{
    bff_req_session_t *rs;
    json_t *o, *claims;
    apr_int64_t now, idle_left;
    apr_status_t rv;

    const bff_dir_conf_t *dc = bff_dir_conf(r);
    const char *why;

    if ((why = bff_glue_csrf_check(r, sc, dc))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "BFF00230: user request refused: %s", why);
        return bff_respond_json_error(r, HTTP_FORBIDDEN, "csrf", apr_psprintf(r->pool,
                                      "The request must come from this site and carry the "
                                      "header %s: %s.", bff_dir_csrf_header(dc),
                                      bff_dir_csrf_value(dc)));
    }
    rv = bff_glue_session_load(r, sc, &rs);
    if (rv == APR_NOTFOUND) {
        return bff_respond_json_error(r, HTTP_UNAUTHORIZED, "unauthenticated",
                                      "There is no valid session; sign in first.");
    }
    if (rv != APR_SUCCESS) {
        return bff_respond_json_error(r, HTTP_SERVICE_UNAVAILABLE, "store_unavailable",
                                      "The session store is not available; try again.");
    }
    bff_glue_session_touch(r, sc, rs);
    now = bff_util_now();
    idle_left = rs->s->last_access + sc->idle_timeout - now;
    claims = json_loads(rs->s->claims ? rs->s->claims : "{}", 0, NULL);
    if (!json_is_object(claims)) {
        json_decref(claims);
        claims = json_object();
    }
    o = json_pack("{s:o,s:s,s:I,s:I,s:s}", "claims", claims, "sub", rs->s->sub,
                  "sessionExpiresIn", (json_int_t)(rs->s->expires - now),
                  "idleExpiresIn", (json_int_t)idle_left,
                  "logoutUrl", apr_pstrcat(r->pool, base_path(r), "logout?sid=",
                                           rs->s->logout_id ? rs->s->logout_id : "", NULL));
    if (!o) {
        return bff_respond_json_error(r, HTTP_INTERNAL_SERVER_ERROR, "internal",
                                      "The response could not be encoded.");
    }
    return json_ok(r, o);
}

/* ---- dispatch ------------------------------------------------------- */

static int method_not_allowed(request_rec *r, const char *allow)
{
    apr_table_setn(r->err_headers_out, "Allow", allow);
    return bff_respond_json_error(r, HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                  apr_psprintf(r->pool, "Use %s for this endpoint.", allow));
}

int bff_handler(request_rec *r)
{
    bff_srv_conf_t *sc;
    const char *ep;

    if (!r->handler || strcmp(r->handler, BFF_HANDLER_NAME)) {
        return DECLINED;
    }
    sc = bff_srv_conf(r->server);
    if (!sc || !sc->issuer || !sc->store || !sc->provider) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "BFF00240: SetHandler bff is used in a "
                      "server without BFFProvider, BFFClientID, BFFClientSecret and "
                      "BFFRedirectURI");
        return bff_respond_json_error(r, HTTP_INTERNAL_SERVER_ERROR, "not_configured",
                                      "The sign-in service is not configured.");
    }
    ep = strrchr(r->uri, '/');
    ep = ep ? ep + 1 : r->uri;
    if (!strcmp(ep, "logout")) {
        if (r->method_number == M_GET || r->method_number == M_POST) {
            return bff_logout_handle(r, sc);
        }
        return method_not_allowed(r, "GET, HEAD, POST");
    }
    if (!strcmp(ep, "backchannel-logout")) {
        if (r->method_number == M_POST) {
            return bff_logout_backchannel(r, sc);
        }
        return method_not_allowed(r, "POST");
    }
    if (!strcmp(ep, "login") || !strcmp(ep, "callback") || !strcmp(ep, "user")) {
        if (r->method_number != M_GET) {
            return method_not_allowed(r, "GET, HEAD");
        }
        return !strcmp(ep, "login") ? handle_login(r, sc)
             : !strcmp(ep, "callback") ? handle_callback(r, sc) : handle_user(r, sc);
    }
    return bff_respond_json_error(r, HTTP_NOT_FOUND, "not_found",
                                  "No such endpoint; use login, callback, user, logout or "
                                  "backchannel-logout.");
}
