/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the SetHandler bff endpoints: dispatch by the last path segment and method, the login,
 * callback and user flows, and the shared response helpers.
 */
#include <apr_atomic.h>
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
#include "bff_ns.h"
#include "bff_idtoken.h"
#include "bff_oidc.h"
#include "bff_session.h"
#include "bff_url.h"
#include "bff_util.h"

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
    const char *body = apr_psprintf(
        r->pool,
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

static void set_cookie(request_rec *r, const char *name, const char *value, apr_int64_t max_age,
                       bff_samesite_e ss)
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

/* Pending logins live in the browser, sealed, so an anonymous client can
 * start as many as it likes without writing to the store. They take a fixed
 * set of cookie names, "<prefix>0" .. "<prefix>N-1" (slots, N =
 * BFF_TXN_MAX_PENDING): however many logins start at once, and each sees
 * only the cookies the browser had before any of them answered, a browser
 * never holds more than N, so the Cookie header stays bounded (one name per
 * login would let concurrent logins pile up past LimitRequestFieldSize, and
 * httpd would then refuse every request to the host with 400 until they
 * expire). */

#if BFF_TXN_MAX_PENDING < 1 || BFF_TXN_MAX_PENDING > 10
#error "slot names are one digit"
#endif

#define TXN_SCAN_MAX 16 /* pending-login cookies looked at per request */

static const char *txn_binding(request_rec *r, bff_srv_conf_t *sc, const char *cookie)
{
    return bff_txn_binding(r->pool, cookie, sc->issuer, sc->client_id, sc->redirect_uri);
}

static void expire_cookie(request_rec *r, const char *name)
{
    set_cookie(r, name, "", 0, BFF_SAMESITE_LAX);
}

/* The slot a cookie name is, or -1 (a per-login name of earlier releases). */
static int slot_of(bff_srv_conf_t *sc, const char *name)
{
    apr_size_t n = strlen(sc->txn_cookie_prefix);

    if (strncmp(name, sc->txn_cookie_prefix, n) || name[n] < '0'
        || name[n] >= '0' + BFF_TXN_MAX_PENDING || name[n + 1]) {
        return -1;
    }
    return name[n] - '0';
}

static const char *slot_name(request_rec *r, bff_srv_conf_t *sc, int i)
{
    return apr_psprintf(r->pool, "%s%d", sc->txn_cookie_prefix, i);
}

/* What a slot holds, in the order a new login prefers to take it: nothing
 * usable (not sent, expired, junk), a cookie that does not open here (another
 * site on another port of this host name with the same BFFCookieName, or a
 * key no longer in BFFCryptoKey), a live pending login of this site. */
typedef enum { SLOT_FREE = 0, SLOT_FOREIGN = 1, SLOT_LIVE = 2 } slot_use_e;

/* The slot for a new pending login with this state: the one H(state) picks
 * if free, else the next free one, so logins that start at once (and all see
 * the same cookies) spread over the slots; with none free, a slot another
 * site's cookie holds; else the one with the oldest pending login, so that
 * the newest N logins of sequential tabs complete. Expired cookies and this
 * site's cookies of earlier releases are deleted on the way. */
static int choose_slot(request_rec *r, bff_srv_conf_t *sc, const char *state)
{
    const char *hdr = apr_table_get(r->headers_in, "Cookie");
    slot_use_e use[BFF_TXN_MAX_PENDING];
    apr_int64_t created[BFF_TXN_MAX_PENDING], now = bff_util_now();
    int expired[BFF_TXN_MAX_PENDING], i, k, start, pick = -1;
    unsigned char h[32];
    apr_array_header_t *all = NULL;
    const bff_cookie_pair_t *c;
    slot_use_e want;
    bff_txn_t *t;

    memset(use, 0, sizeof(use));
    memset(expired, 0, sizeof(expired));
    if (hdr && bff_cookie_get(r->pool, hdr, sc->txn_cookie_name)) {
        expire_cookie(r, sc->txn_cookie_name); /* the binder of earlier releases */
    }
    if (hdr) {
        all = bff_cookie_with_prefix(r->pool, hdr, sc->txn_cookie_prefix, TXN_SCAN_MAX);
    }
    c = all ? (const bff_cookie_pair_t *)all->elts : NULL;
    for (k = 0; all && k < all->nelts; ++k) {
        apr_status_t rv = bff_txn_from_cookie(r->pool, sc->keyring, txn_binding(r, sc, c[k].name),
                                              c[k].value, NULL, now, &t);
        if ((i = slot_of(sc, c[k].name)) < 0) {
            if (rv == APR_SUCCESS || rv == APR_TIMEUP) {
                expire_cookie(r, c[k].name); /* a per-login name of earlier releases */
            }
        }
        else if (rv == APR_SUCCESS) {
            if (use[i] != SLOT_LIVE || t->created < created[i]) {
                created[i] = t->created;
            }
            use[i] = SLOT_LIVE;
        }
        else if (rv == APR_TIMEUP) {
            expired[i] = 1;
        }
        else if (rv != APR_EINVAL && use[i] == SLOT_FREE) {
            use[i] = SLOT_FOREIGN;
        }
    }
    start = (APR_SUCCESS == bff_util_sha256(state, strlen(state), h)) ? h[0] % BFF_TXN_MAX_PENDING
                                                                      : 0;
    for (want = SLOT_FREE; pick < 0 && want <= SLOT_FOREIGN; ++want) {
        for (k = 0; pick < 0 && k < BFF_TXN_MAX_PENDING; ++k) {
            if (use[(start + k) % BFF_TXN_MAX_PENDING] == want) {
                pick = (start + k) % BFF_TXN_MAX_PENDING;
            }
        }
    }
    if (pick < 0) {
        for (pick = 0, i = 1; i < BFF_TXN_MAX_PENDING; ++i) {
            if (created[i] < created[pick]) {
                pick = i;
            }
        }
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BFF00252: %d logins pending in this "
                      "browser, the oldest is dropped",
                      BFF_TXN_MAX_PENDING);
    }
    for (i = 0; i < BFF_TXN_MAX_PENDING; ++i) {
        if (expired[i] && use[i] == SLOT_FREE && i != pick) {
            expire_cookie(r, slot_name(r, sc, i));
        }
    }
    return pick;
}

static int handle_login(request_rec *r, bff_srv_conf_t *sc)
{
    apr_table_t *q = NULL;
    const char *return_to = "/", *url, *name, *value;
    bff_provider_view_t pv;
    bff_txn_t t;
    bff_oidc_authz_t az;
    apr_status_t rv;

    if (r->args && APR_SUCCESS != bff_url_parse_query(r->pool, r->args, &q)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF00201: login refused: malformed "
                      "query string");
        return bff_respond_page(r, HTTP_BAD_REQUEST, "Bad sign-in link",
                                "The sign-in link is malformed.");
    }
    if (q && apr_table_get(q, "returnTo")) {
        return_to = apr_table_get(q, "returnTo");
        if (!bff_url_return_to_ok(return_to)) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "BFF00202: login refused: returnTo "
                          "is not a same-origin relative path");
            return bff_respond_page(r, HTTP_BAD_REQUEST, "Bad sign-in link",
                                    "The page to return to after sign-in must be a path on "
                                    "this site.");
        }
        /* It travels in the pending-login cookie, which must stay small. */
        if (strlen(return_to) > BFF_TXN_MAX_RETURN_TO) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "BFF00250: login refused: returnTo "
                          "is longer than %d bytes",
                          BFF_TXN_MAX_RETURN_TO);
            return bff_respond_page(r, HTTP_BAD_REQUEST, "Bad sign-in link",
                                    "The page to return to after sign-in is too long.");
        }
    }
    if (APR_SUCCESS != (rv = bff_provider_get(sc->provider, r, &pv))) {
        return provider_unavailable(r, rv);
    }
    memset(&t, 0, sizeof(t));
    t.state = bff_util_random_token(r->pool, 32);
    t.nonce = bff_util_random_token(r->pool, 32);
    t.code_verifier = bff_oidc_pkce_verifier(r->pool);
    t.return_to = return_to;
    t.created = (apr_int64_t)apr_time_now();
    t.expires = bff_util_now() + BFF_TXN_LIFETIME;
    if (!t.state || !t.nonce || !t.code_verifier) {
        return bff_respond_page(r, HTTP_INTERNAL_SERVER_ERROR, "Sign-in failed",
                                "A random value could not be generated.");
    }
    name = slot_name(r, sc, choose_slot(r, sc, t.state));
    rv = bff_txn_to_cookie(r->pool, sc->keyring, txn_binding(r, sc, name), &t, &value);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "BFF00203: cannot seal the login "
                      "transaction");
        return bff_respond_page(r, HTTP_INTERNAL_SERVER_ERROR, "Sign-in failed",
                                "The sign-in could not be started.");
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
    /* Lax: the provider's redirect back is a cross-site top-level GET. */
    set_cookie(r, name, value, BFF_TXN_LIFETIME, BFF_SAMESITE_LAX);
    no_store(r);
    apr_table_setn(r->headers_out, "Location", url);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF00204: login started, redirecting to "
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

/* The pending login that this browser started with state: the slot cookie
 * that opens and holds it. *name is that cookie's name. APR_NOTFOUND: no
 * slot holds it; APR_TIMEUP: expired; anything else: not found, and a slot
 * cookie did not open here (sealed for another site or client, with a key
 * not in BFFCryptoKey, or altered). */
static apr_status_t open_txn(request_rec *r, bff_srv_conf_t *sc, const char *state,
                             const char **name, bff_txn_t **t)
{
    const char *hdr = apr_table_get(r->headers_in, "Cookie");
    apr_array_header_t *all;
    const bff_cookie_pair_t *c;
    apr_int64_t now = bff_util_now();
    apr_status_t rv, found = APR_NOTFOUND;
    int k;

    *t = NULL;
    *name = NULL;
    all = hdr ? bff_cookie_with_prefix(r->pool, hdr, sc->txn_cookie_prefix, TXN_SCAN_MAX) : NULL;
    c = all ? (const bff_cookie_pair_t *)all->elts : NULL;
    for (k = 0; all && k < all->nelts; ++k) {
        if (slot_of(sc, c[k].name) < 0) {
            continue;
        }
        rv = bff_txn_from_cookie(r->pool, sc->keyring, txn_binding(r, sc, c[k].name), c[k].value,
                                 state, now, t);
        if (rv == APR_SUCCESS) {
            *name = c[k].name;
            return APR_SUCCESS;
        }
        if (rv == APR_TIMEUP) { /* it holds this state, expired */
            *name = c[k].name;
            found = APR_TIMEUP;
        }
        else if (rv != APR_EINVAL && found == APR_NOTFOUND) {
            found = rv; /* EINVAL: another login, or junk */
        }
    }
    return found;
}

/* Single use across nodes: whoever adds the marker owns the login attempt.
 * Its key holds no key of the ring (nodes in a rotation agree on it). The
 * request is anonymous until the code exchange succeeds, so the marker
 * never evicts anything (a junk callback must not push a session out of a
 * full store): APR_ENOSPC when there is no room. */
static apr_status_t mark_used(request_rec *r, bff_srv_conf_t *sc, const char *state,
                              const bff_txn_t *t, const char **key)
{
    return bff_glue_mark_used(r, sc, state, t->expires, key);
}

/* A full store refuses sign-ins rather than evict: said at warning level at
 * most once a minute per process (with how many were refused meanwhile), so
 * a flood of callbacks cannot flood the log; the rest at debug. */
#define STORE_FULL_LOG_INTERVAL 60

static int store_full_page(request_rec *r)
{
    static volatile apr_uint32_t last_log, refused;
    apr_uint32_t now = (apr_uint32_t)bff_util_now(), last = apr_atomic_read32(&last_log);
    apr_uint32_t n = apr_atomic_inc32(&refused) + 1;
    int warn = now - last >= STORE_FULL_LOG_INTERVAL
               && apr_atomic_cas32(&last_log, now, last) == last;

    if (warn) {
        apr_atomic_sub32(&refused, n);
    }
    /* One message for one event (one tag): only its level varies. */
    ap_log_rerror(APLOG_MARK, warn ? APLOG_WARNING : APLOG_DEBUG, 0, r,
                  "BFF00253: sign-in refused (503): the "
                  "session store is full of live entries and a login's single-use "
                  "marker never evicts one (%u refused in this process since the last "
                  "warning); raise BFFSessionStore shm:<size>",
                  n);
    apr_table_setn(r->err_headers_out, "Retry-After", "30");
    return bff_respond_page(r, HTTP_SERVICE_UNAVAILABLE, "Sign-in is busy",
                            "Too many sign-ins are in progress right now. Please try again "
                            "in a moment.");
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

static apr_status_t verify_id_token(request_rec *r, bff_srv_conf_t *sc, bff_provider_view_t *pv,
                                    const char *id_token, const char *nonce, json_t **claims,
                                    const char **err)
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
    rv = bff_idtoken_verify(r->pool, id_token, pv->jwks, pv->meta->id_token_algs, &ex, claims, err);
    if (rv == APR_NOTFOUND) {
        /* An unknown kid: the provider may have rotated its keys. */
        if (APR_SUCCESS == bff_provider_refresh_jwks_wait(sc->provider, r, pv)) {
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
    const char *body = apr_psprintf(
        r->pool,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"refresh\" content=\"0;url=%s\"><title>Signed in</title></head>\n"
        "<body><p>Signed in. <a href=\"%s\">Continue</a></p></body></html>\n",
        esc, esc);

    apr_table_setn(r->headers_out, "Content-Security-Policy", "default-src 'none'");
    apr_table_setn(r->headers_out, "Referrer-Policy", "no-referrer");
    return send_body(r, HTTP_OK, "text/html; charset=utf-8", body);
}

static int handle_callback(request_rec *r, bff_srv_conf_t *sc)
{
    apr_table_t *q = NULL;
    const char *state, *code, *iss, *error, *hdr, *txn_cookie, *used, *err = NULL, *old;
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
    rv = open_txn(r, sc, state, &txn_cookie, &t);
    if (rv == APR_NOTFOUND) {
        return callback_fail(r, HTTP_BAD_REQUEST,
                             "BFF00214: callback from a browser that "
                             "did not start this login, one that completed it, or one whose "
                             "later logins took its cookie (no login cookie holds this state)",
                             "This sign-in response does not belong to this browser. "
                             "Please sign in again.",
                             APLOG_INFO);
    }
    if (rv == APR_TIMEUP) {
        expire_cookie(r, txn_cookie);
        return callback_fail(r, HTTP_BAD_REQUEST,
                             "BFF00212: callback with an unknown, "
                             "expired or already used state",
                             "This sign-in attempt has expired or was already used. "
                             "Please sign in again.",
                             APLOG_INFO);
    }
    if (rv != APR_SUCCESS) {
        /* Left alone: the site on another port of this host that sealed it
         * may still complete it. */
        return callback_fail(r, HTTP_BAD_REQUEST,
                             "BFF00251: callback whose state no login "
                             "cookie holds, and a login cookie that does not open here "
                             "(sealed for another site or client, with a key not in "
                             "BFFCryptoKey, or altered)",
                             "This sign-in response does not belong to this site. "
                             "Please sign in again.",
                             APLOG_INFO);
    }
    /* From here on the attempt is over whatever happens: the browser drops
     * the cookie, so a reload cannot replay it. */
    expire_cookie(r, txn_cookie);
    if (APR_SUCCESS != (rv = bff_provider_get(sc->provider, r, &pv))) {
        return provider_unavailable(r, rv);
    }
    if (iss ? strcmp(iss, sc->issuer) != 0 : pv.meta->iss_parameter_supported) {
        return callback_fail(r, HTTP_BAD_REQUEST,
                             iss ? "BFF00215: callback iss parameter "
                                   "does not match the provider (mix-up attack?)"
                                 : "BFF00216: callback without the iss parameter the provider "
                                   "advertises",
                             "The sign-in response came from an unexpected "
                             "identity provider.",
                             APLOG_INFO);
    }
    if (error) {
        const char *e = safe_error_code(r, error);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF00217: the provider returned error "
                      "'%s' to the login",
                      e);
        return bff_respond_page(r, HTTP_FORBIDDEN, "Sign-in was not completed",
                                apr_psprintf(r->pool,
                                             "The identity provider answered: %s. "
                                             "You can try to sign in again.",
                                             e));
    }
    if (!code || !*code) {
        return callback_fail(r, HTTP_BAD_REQUEST, "BFF00218: callback without code",
                             "The sign-in response is incomplete. Please sign in again.",
                             APLOG_INFO);
    }
    rv = mark_used(r, sc, state, t, &used);
    if (rv == APR_EEXIST) {
        return callback_fail(r, HTTP_BAD_REQUEST,
                             "BFF00254: callback with a state that "
                             "was already used (a replayed or twice-delivered callback)",
                             "This sign-in attempt has expired or was already used. "
                             "Please sign in again.",
                             APLOG_INFO);
    }
    if (rv == APR_ENOSPC) {
        return store_full_page(r);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, bff_glue_store_fail_level(), rv, r,
                      "BFF00213: session "
                      "store unavailable during callback");
        return store_unavailable_page(r);
    }
    rv = bff_oidc_exchange_code(r->pool, bff_provider_http(sc->provider), pv.meta, &sc->client,
                                code, t->code_verifier, sc->redirect_uri, &tok, &err);
    if (rv != APR_SUCCESS || tok->error) {
        /* No session came of it: the marker goes at once, so junk callbacks
         * leave nothing live in the store. A real code the provider refused
         * cannot be replayed into a session either. */
        bff_store_remove(sc->store, r->pool, used);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "BFF00219: code exchange at %s %s: %s",
                      pv.meta->token_endpoint, status_reason(rv), err ? err : "error");
        return provider_unavailable(r, rv);
    }
    if (tok->error) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF00220: the token endpoint refused the "
                      "code: %s",
                      safe_error_code(r, tok->error));
        return bff_respond_page(r, HTTP_BAD_GATEWAY, "Sign-in failed",
                                "The identity provider refused to complete the sign-in. "
                                "Please sign in again.");
    }
    if (!tok->id_token) {
        return callback_fail(r, HTTP_BAD_GATEWAY,
                             "BFF00221: the token response has no "
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
    hdr = apr_table_get(r->headers_in, "Cookie");
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
        return rv == APR_ENOSPC ? bff_respond_page(r, HTTP_INTERNAL_SERVER_ERROR, "Sign-in failed",
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
        return bff_respond_json_error(
            r, HTTP_FORBIDDEN, "csrf",
            apr_psprintf(r->pool,
                         "The request must come from this site and carry the "
                         "header %s: %s.",
                         bff_dir_csrf_header(dc), bff_dir_csrf_value(dc)));
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
    if (bff_glue_session_touch(r, sc, rs) == APR_NOTFOUND) {
        return bff_respond_json_error(r, HTTP_UNAUTHORIZED, "unauthenticated",
                                      "There is no valid session; sign in first.");
    }
    now = bff_util_now();
    idle_left = rs->s->last_access + sc->idle_timeout - now;
    claims = json_loads(rs->s->claims ? rs->s->claims : "{}", 0, NULL);
    if (!json_is_object(claims)) {
        json_decref(claims);
        claims = json_object();
    }
    o = json_pack("{s:o,s:s,s:I,s:I,s:s}", "claims", claims, "sub", rs->s->sub, "sessionExpiresIn",
                  (json_int_t)(rs->s->expires - now), "idleExpiresIn", (json_int_t)idle_left,
                  "logoutUrl",
                  apr_pstrcat(r->pool, base_path(r),
                              "logout?sid=", rs->s->logout_id ? rs->s->logout_id : "", NULL));
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
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF00240: SetHandler bff is used in a "
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
    if (!strcmp(ep, "login") || !strcmp(ep, "callback")) {
        /* HEAD would start or end a login without anyone to follow it. */
        if (r->method_number != M_GET || r->header_only) {
            return method_not_allowed(r, "GET");
        }
        return !strcmp(ep, "login") ? handle_login(r, sc) : handle_callback(r, sc);
    }
    if (!strcmp(ep, "user")) {
        if (r->method_number != M_GET) {
            return method_not_allowed(r, "GET, HEAD");
        }
        return handle_user(r, sc);
    }
    return bff_respond_json_error(r, HTTP_NOT_FOUND, "not_found",
                                  "No such endpoint; use login, callback, user, logout or "
                                  "backchannel-logout.");
}
