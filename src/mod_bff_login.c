/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the login flow. login: check returnTo, make a pending login (state, nonce, PKCE
 * verifier) sealed in a slot cookie, redirect to the provider. callback: find the pending
 * login, check the provider's answer, claim the attempt once across nodes, exchange the code,
 * verify the ID token, store a new session, set its cookie.
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
#include "mod_bff_site.h"
#include "mod_bff_login.h"
#include "mod_bff_pending.h"
#include "mod_bff_provider.h"
#include "mod_bff_respond.h"
#include "mod_bff_session.h"
#include "mod_bff_status.h"
#include "bff_cookie.h"
#include "bff_idtoken.h"
#include "bff_ns.h"
#include "bff_oidc.h"
#include "bff_session.h"
#include "bff_url.h"
#include "bff_userinfo.h"
#include "bff_util.h"

#define ID_TOKEN_LEEWAY 60
#define ID_TOKEN_MAX_AGE 600

/* A step that did not answer: the flow goes on. Distinct from every
 * handler return value (OK, DECLINED, DONE, HTTP statuses). */
#define GO_ON (-1000)

static const char *safe_error_code(const char *e);

/* Every login that ends with an error answer passes here (bff-status
 * counts it by outcome). */
static int signin_fails(request_rec *r, bff_outcome_e o, const char *text)
{
    bff_metrics_login_failed(bff_glue_metrics(), o);
    return bff_respond_outcome(r, o, BFF_AS_SIGNIN, text);
}

static int provider_unavailable(request_rec *r, apr_status_t rv)
{
    return signin_fails(r,
                        rv == APR_TIMEUP ? BFF_OUTCOME_PROVIDER_TIMEOUT : BFF_OUTCOME_PROVIDER_DOWN,
                        NULL);
}

/* ---- login ---------------------------------------------------------- */

/* The page to come back to: a same-origin path, small enough to travel in
 * the pending-login cookie. */
static int read_return_to(request_rec *r, const char **return_to)
{
    apr_table_t *q = NULL;
    const char *rt;

    *return_to = "/";
    if (r->args && APR_SUCCESS != bff_url_parse_query(r->pool, r->args, &q)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF00201: login refused: malformed "
                      "query string");
        return signin_fails(r, BFF_OUTCOME_BAD_REQUEST, "The sign-in link is malformed.");
    }
    if (!q || !(rt = apr_table_get(q, "returnTo"))) {
        return GO_ON;
    }
    if (!bff_url_return_to_ok(rt)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF00202: login refused: returnTo "
                      "is not a same-origin relative path");
        return signin_fails(r, BFF_OUTCOME_BAD_REQUEST,
                            "The page to return to after sign-in must be a path on this site.");
    }
    if (strlen(rt) > BFF_TXN_MAX_RETURN_TO) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF00250: login refused: returnTo "
                      "is longer than %d bytes",
                      BFF_TXN_MAX_RETURN_TO);
        return signin_fails(r, BFF_OUTCOME_BAD_REQUEST,
                            "The page to return to after sign-in is too long.");
    }
    *return_to = rt;
    return GO_ON;
}

/* ---- login parameters from the SPA -------------------------------------- */

/* What the SPA asked for, checked: "k=v" for the authorization request,
 * and what the pending login must remember. */
typedef struct {
    apr_array_header_t *kv;
    const char *prompt;  /* "none" for a silent login, else NULL */
    const char *max_age; /* digits, or NULL */
} login_params_t;

static int bad_login_param(request_rec *r, const char *name, const char *why)
{
    /* The name and the reason only: a login_hint is personal data. */
    ap_log_rerror(APLOG_MARK, bff_respond_level(BFF_OUTCOME_BAD_REQUEST), 0, r,
                  "BFF02001: login refused: parameter %s is %s", name, why);
    return signin_fails(r, BFF_OUTCOME_BAD_REQUEST,
                        apr_psprintf(r->pool, "The sign-in parameter %s is not valid.", name));
}

/* One query parameter the site lets through: at most once, valid. An
 * empty value counts as not sent (SPAs often pass one when they have no
 * hint). */
static int take_login_param(request_rec *r, int bit, const char *value, int *seen,
                            login_params_t *lp)
{
    const char *name = bff_oidc_login_param_name(bit), *why = NULL;

    if (*seen & bit) {
        return bad_login_param(r, name, "given more than once");
    }
    *seen |= bit;
    if (!*value) {
        return GO_ON;
    }
    if (APR_SUCCESS != bff_oidc_login_param_check(bit, value, &why)) {
        return bad_login_param(r, name, why);
    }
    APR_ARRAY_PUSH(lp->kv, const char *) = apr_pstrcat(r->pool, name, "=", value, NULL);
    if (bit == BFF_LOGIN_PROMPT && bff_oidc_prompt_is_none(value)) {
        lp->prompt = "none";
    }
    if (bit == BFF_LOGIN_MAX_AGE) {
        lp->max_age = value;
    }
    return GO_ON;
}

/* The parameters BFFLoginParams names (exact, case-sensitive names);
 * everything else in the query is ignored. */
static int read_login_params(request_rec *r, const bff_site_t *site, login_params_t *lp)
{
    apr_table_t *q = NULL;
    const apr_array_header_t *arr;
    const apr_table_entry_t *e;
    int i, bit, seen = 0, answer;

    memset(lp, 0, sizeof(*lp));
    lp->kv = apr_array_make(r->pool, 5, sizeof(const char *));
    /* BFFAuthParams' max_age is checked the same way (the SPA cannot send
     * one then: BFFLoginParams never lets a BFFAuthParams name through). */
    lp->max_age = site->max_age;
    /* read_return_to has refused a malformed query already. */
    if (!r->args || !site->login_params || APR_SUCCESS != bff_url_parse_query(r->pool, r->args, &q)
        || !q) {
        return GO_ON;
    }
    arr = apr_table_elts(q);
    e = (const apr_table_entry_t *)arr->elts;
    for (i = 0; i < arr->nelts; ++i) {
        bit = bff_oidc_login_param_bit(e[i].key);
        if (bit && (site->login_params & bit)
            && GO_ON != (answer = take_login_param(r, bit, e[i].val, &seen, lp))) {
            return answer;
        }
    }
    return GO_ON;
}

static apr_status_t new_pending(request_rec *r, const char *return_to, bff_txn_t *t)
{
    memset(t, 0, sizeof(*t));
    t->state = bff_util_random_token(r->pool, 32);
    t->nonce = bff_util_random_token(r->pool, 32);
    t->code_verifier = bff_oidc_pkce_verifier(r->pool);
    t->return_to = return_to;
    t->created = (apr_int64_t)apr_time_now();
    t->expires = bff_util_now() + BFF_TXN_LIFETIME;
    return t->state && t->nonce && t->code_verifier ? APR_SUCCESS : APR_EGENERAL;
}

static void authz_request(request_rec *r, const bff_site_t *site, const bff_txn_t *t,
                          const login_params_t *lp, bff_oidc_authz_t *az)
{
    memset(az, 0, sizeof(*az));
    az->client_id = site->client_id;
    az->redirect_uri = site->redirect_uri;
    az->scope = site->scope;
    az->state = t->state;
    az->nonce = t->nonce;
    az->code_challenge = bff_oidc_pkce_challenge(r->pool, t->code_verifier);
    az->extra = site->auth_params;
    az->login = lp->kv;
}

/* ---- pushed authorization requests (RFC 9126) ---------------------------- */

/* BFFPushedAuthorization: On, Off, or (auto) what the provider demands. */
static int use_par(request_rec *r, const bff_site_t *site, const bff_oidc_meta_t *meta)
{
    if (site->par == BFF_PAR_OFF && meta->require_par) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BFF02006: %s Off, but the provider requires pushed authorization "
                      "requests (require_pushed_authorization_requests): it will refuse the "
                      "login; set %s auto or On",
                      BFF_D_PUSHED_AUTHZ, BFF_D_PUSHED_AUTHZ);
    }
    return site->par == BFF_PAR_ON || (site->par == BFF_PAR_AUTO && meta->require_par);
}

/* The request goes to the provider over the back channel; the browser
 * carries only client_id and the request_uri the provider gave back. */
static int par_redirect(request_rec *r, const bff_site_t *site, const bff_provider_view_t *pv,
                        const bff_oidc_authz_t *az, const char **url)
{
    bff_oidc_par_t *par = NULL;
    const char *err = NULL;
    apr_status_t rv;

    if (!pv->meta->par_endpoint) {
        ap_log_rerror(APLOG_MARK, bff_respond_level(BFF_OUTCOME_NOT_CONFIGURED), 0, r,
                      "BFF02003: login refused: %s On, but the provider's metadata has no "
                      "pushed_authorization_request_endpoint; set %s auto or Off, or enable "
                      "PAR at the provider",
                      BFF_D_PUSHED_AUTHZ, BFF_D_PUSHED_AUTHZ);
        return signin_fails(r, BFF_OUTCOME_NOT_CONFIGURED, NULL);
    }
    rv = bff_oidc_par_push(r->pool, bff_provider_http(site->provider), pv->meta, &site->client, az,
                           &par, &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "BFF02004: pushed authorization request %s: %s",
                      rv == APR_TIMEUP ? "timed out" : "failed", err ? err : "error");
        return provider_unavailable(r, rv);
    }
    if (par->error) {
        ap_log_rerror(APLOG_MARK, bff_respond_level(BFF_OUTCOME_PROVIDER_DENIED), 0, r,
                      "BFF02005: the PAR endpoint refused the authorization request: %s",
                      safe_error_code(par->error));
        return signin_fails(r, BFF_OUTCOME_PROVIDER_DENIED,
                            apr_psprintf(r->pool,
                                         "The identity provider answered: %s. "
                                         "You can try to sign in again.",
                                         safe_error_code(par->error)));
    }
    *url = bff_oidc_par_authz_url(r->pool, pv->meta, site->client_id, par->request_uri);
    return GO_ON;
}

int bff_login_start(request_rec *r, bff_site_t *site)
{
    const char *return_to, *name, *value, *url = NULL;
    bff_provider_view_t pv;
    bff_oidc_authz_t az;
    login_params_t lp;
    bff_txn_t t;
    apr_status_t rv;
    int answer, par;

    if (GO_ON != (answer = read_return_to(r, &return_to))
        || GO_ON != (answer = read_login_params(r, site, &lp))) {
        return answer;
    }
    if (APR_SUCCESS != (rv = bff_provider_get(site->provider, r, &pv))) {
        return provider_unavailable(r, rv);
    }
    if (APR_SUCCESS != new_pending(r, return_to, &t)) {
        return signin_fails(r, BFF_OUTCOME_INTERNAL, "A random value could not be generated.");
    }
    t.prompt = lp.prompt;
    t.max_age = lp.max_age;
    authz_request(r, site, &t, &lp, &az);
    if ((par = use_par(r, site, pv.meta))) {
        if (GO_ON != (answer = par_redirect(r, site, &pv, &az, &url))) {
            return answer;
        }
    }
    else {
        url = bff_oidc_authz_url(r->pool, pv.meta, &az);
    }
    if (APR_SUCCESS != (rv = bff_pending_seal(r, site, &t, &name, &value))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "BFF00203: cannot seal the login "
                      "transaction");
        return signin_fails(r, BFF_OUTCOME_INTERNAL, "The sign-in could not be started.");
    }
    /* Lax: the provider's redirect back is a cross-site top-level GET. */
    bff_respond_cookie(r, name, value, BFF_TXN_LIFETIME, BFF_SAMESITE_LAX);
    bff_metrics_login_started(bff_glue_metrics());
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF03220: login step start: pending login sealed in cookie %s (expires in "
                  "%d s), authorization request %s, prompt=none: %s, max_age: %s",
                  name, BFF_TXN_LIFETIME, par ? "pushed (PAR)" : "in the redirect",
                  bff_oidc_prompt_is_none(t.prompt) ? "yes" : "no", t.max_age ? "set" : "not set");
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF00204: login started, redirecting to "
                  "the provider");
    return bff_respond_redirect(r, url);
}

/* ---- callback ------------------------------------------------------- */

/* One callback as it goes through its steps. */
typedef struct {
    const char *state, *code, *iss, *error;
    bff_txn_t *t;
    bff_provider_view_t pv;
    const char *used; /* the single-use marker's key */
    bff_oidc_tokens_t *tok;
    json_t *claims;
    bff_req_session_t rs;
    bff_session_t s;
} callback_t;

/* why: the reason bff-status counts the refused callback under. */
static int refuse(request_rec *r, bff_m_callback_e why, const char *tag_msg, const char *user_msg)
{
    bff_metrics_callback_refused(bff_glue_metrics(), why);
    ap_log_rerror(APLOG_MARK, bff_respond_level(BFF_OUTCOME_BAD_REQUEST), 0, r, "%s", tag_msg);
    return signin_fails(r, BFF_OUTCOME_BAD_REQUEST, user_msg);
}

#define SIGN_IN_AGAIN "The sign-in response is incomplete. Please sign in again."
#define EXPIRED_OR_USED \
    "This sign-in attempt has expired or was already used. Please sign in again."

static int read_query(request_rec *r, callback_t *cb)
{
    apr_table_t *q = NULL;

    if (!r->args || APR_SUCCESS != bff_url_parse_query(r->pool, r->args, &q)) {
        return refuse(r, BFF_M_CB_NO_QUERY, "BFF00210: callback without a valid query",
                      SIGN_IN_AGAIN);
    }
    cb->state = apr_table_get(q, "state");
    cb->code = apr_table_get(q, "code");
    cb->iss = apr_table_get(q, "iss");
    cb->error = apr_table_get(q, "error");
    if (!cb->state || !*cb->state || strlen(cb->state) > 256) {
        return refuse(r, BFF_M_CB_NO_STATE, "BFF00211: callback without state", SIGN_IN_AGAIN);
    }
    /* Which parameters came, never their values. */
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF03210: callback step read_query: state present, code %s, iss %s, "
                  "error %s",
                  cb->code ? "present" : "absent", cb->iss ? "present" : "absent",
                  cb->error ? "present" : "absent");
    return GO_ON;
}

/* The pending login this browser started with the state. From here on the
 * attempt is over whatever happens: the browser drops the cookie, so a
 * reload cannot replay it. */
static int take_pending(request_rec *r, const bff_site_t *site, callback_t *cb)
{
    const char *name;
    apr_status_t rv = bff_pending_open(r, site, cb->state, &name, &cb->t);

    if (rv == APR_NOTFOUND) {
        return refuse(r, BFF_M_CB_NOT_THIS_BROWSER,
                      "BFF00214: callback from a browser that "
                      "did not start this login, one that completed it, or one whose "
                      "later logins took its cookie (no login cookie holds this state)",
                      "This sign-in response does not belong to this browser. "
                      "Please sign in again.");
    }
    if (rv == APR_TIMEUP) {
        bff_pending_expire(r, name);
        return refuse(r, BFF_M_CB_EXPIRED,
                      "BFF00212: callback with an unknown, "
                      "expired or already used state",
                      EXPIRED_OR_USED);
    }
    if (rv != APR_SUCCESS) {
        /* Left alone: the site on another port of this host that sealed it
         * may still complete it. */
        return refuse(r, BFF_M_CB_OTHER_SITE,
                      "BFF00251: callback whose state no login "
                      "cookie holds, and a login cookie that does not open here "
                      "(sealed for another site or client, with a key not in "
                      "BFFCryptoKey, or altered)",
                      "This sign-in response does not belong to this site. "
                      "Please sign in again.");
    }
    bff_pending_expire(r, name);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF03211: callback step take_pending: the pending login in cookie %s "
                  "matches the state (started %" APR_INT64_T_FMT " s ago); the cookie is "
                  "cleared",
                  name, bff_util_now() - (cb->t->expires - BFF_TXN_LIFETIME));
    return GO_ON;
}

/* Only the error code from the provider is echoed, and only if it looks
 * like one: the description is attacker-controllable text. */
static const char *safe_error_code(const char *e)
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

/* A silent login (prompt=none) that needs the user: the browser goes back
 * to the page that asked, with bff_error, so the SPA shows its sign-in
 * button instead of an error page. The target is the returnTo sealed in
 * this browser's pending login, which the state has just opened: nothing
 * in the callback's query decides where it goes. GO_ON for any other
 * answer. */
static const char *silent_error(const char *e)
{
    /* OIDC Core 3.1.2.6: the answers to prompt=none that need the user. */
    static const char *const silent[] = { "login_required", "consent_required",
                                          "interaction_required", "account_selection_required",
                                          NULL };
    const char *const *c;

    for (c = silent; *c; ++c) {
        if (!strcmp(*c, e)) {
            return *c;
        }
    }
    return NULL;
}

static int silent_answer(request_rec *r, const callback_t *cb, const char *e)
{
    const char *code, *url;

    if (!bff_oidc_prompt_is_none(cb->t->prompt) || !(code = silent_error(e))
        || !(url = bff_url_add_param(r->pool, cb->t->return_to, "bff_error", code))) {
        return GO_ON;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "BFF02007: silent login (prompt=none): the provider answered %s; the "
                  "browser goes back to its returnTo with bff_error",
                  code);
    bff_metrics_login_failed(bff_glue_metrics(), BFF_OUTCOME_PROVIDER_DENIED);
    return bff_respond_redirect(r, url);
}

/* The answer comes from our provider (RFC 9207 iss, mix-up defence), and
 * is not an error. */
static int check_answer(request_rec *r, const bff_site_t *site, callback_t *cb)
{
    const char *e;
    int answer;

    if (cb->iss ? strcmp(cb->iss, site->issuer) != 0 : cb->pv.meta->iss_parameter_supported) {
        return refuse(r, cb->iss ? BFF_M_CB_ISSUER_MISMATCH : BFF_M_CB_MISSING_ISS,
                      cb->iss ? "BFF00215: callback iss parameter "
                                "does not match the provider (mix-up attack?)"
                              : "BFF00216: callback without the iss parameter the provider "
                                "advertises",
                      "The sign-in response came from an unexpected identity provider.");
    }
    if (cb->error) {
        e = safe_error_code(cb->error);
        if (GO_ON != (answer = silent_answer(r, cb, e))) {
            return answer;
        }
        ap_log_rerror(APLOG_MARK, bff_respond_level(BFF_OUTCOME_PROVIDER_DENIED), 0, r,
                      "BFF00217: the provider returned error "
                      "'%s' to the login",
                      e);
        return signin_fails(r, BFF_OUTCOME_PROVIDER_DENIED,
                            apr_psprintf(r->pool,
                                         "The identity provider answered: %s. "
                                         "You can try to sign in again.",
                                         e));
    }
    if (!cb->code || !*cb->code) {
        return refuse(r, BFF_M_CB_NO_CODE, "BFF00218: callback without code", SIGN_IN_AGAIN);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF03213: callback step check_answer: an authorization code from %s "
                  "(iss parameter %s)",
                  site->issuer, cb->iss ? "matches" : "not sent, not advertised");
    return GO_ON;
}

/* A full store refuses sign-ins rather than evict: said at warning level at
 * most once a minute per process (with how many were refused meanwhile), so
 * a flood of callbacks cannot flood the log; the rest at debug. */
#define STORE_FULL_LOG_INTERVAL 60

static int store_full(request_rec *r)
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
    ap_log_rerror(APLOG_MARK, warn ? bff_respond_level(BFF_OUTCOME_STORE_FULL) : APLOG_DEBUG, 0, r,
                  "BFF00253: sign-in refused (503): the "
                  "session store is full of live entries and a login's single-use "
                  "marker never evicts one (%u refused in this process since the last "
                  "warning); raise BFFSessionStore shm:<size>",
                  n);
    return signin_fails(r, BFF_OUTCOME_STORE_FULL, NULL);
}

/* Single use across nodes: whoever adds the marker owns the login attempt.
 * Its key holds no key of the ring (nodes in a rotation agree on it). The
 * request is anonymous until the code exchange succeeds, so the marker
 * never evicts anything (a junk callback must not push a session out of a
 * full store): APR_ENOSPC when there is no room. */
static int claim_attempt(request_rec *r, bff_site_t *site, callback_t *cb)
{
    apr_status_t rv = bff_glue_mark_used(r, site, cb->state, cb->t->expires, &cb->used);
    if (rv == APR_EEXIST) {
        return refuse(r, BFF_M_CB_REPLAYED,
                      "BFF00254: callback with a state that "
                      "was already used (a replayed or twice-delivered callback)",
                      EXPIRED_OR_USED);
    }
    if (rv == APR_ENOSPC) {
        return store_full(r);
    }
    if (rv != APR_SUCCESS) {
        BFF_RLOG_AT(bff_respond_level(BFF_OUTCOME_STORE_DOWN), rv, r,
                    "BFF00213: session "
                    "store unavailable during callback");
        return signin_fails(r, BFF_OUTCOME_STORE_DOWN, NULL);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF03214: callback step claim_attempt: this login's single-use marker "
                  "is taken (store %s)",
                  site->store->name);
    return GO_ON;
}

static int exchange_code(request_rec *r, const bff_site_t *site, callback_t *cb)
{
    const char *err = NULL;
    apr_status_t rv;

    rv = bff_oidc_exchange_code(r->pool, bff_provider_http(site->provider), cb->pv.meta,
                                &site->client, cb->code, cb->t->code_verifier, site->redirect_uri,
                                &cb->tok, &err);
    if (rv != APR_SUCCESS || cb->tok->error) {
        /* No session came of it: the marker goes at once, so junk callbacks
         * leave nothing live in the store. A real code the provider refused
         * cannot be replayed into a session either. */
        bff_store_remove(site->store, r->pool, cb->used);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "BFF00219: code exchange at %s %s: %s",
                      cb->pv.meta->token_endpoint, rv == APR_TIMEUP ? "timed out" : "failed",
                      err ? err : "error");
        return provider_unavailable(r, rv);
    }
    if (cb->tok->error) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF00220: the token endpoint refused the "
                      "code: %s",
                      safe_error_code(cb->tok->error));
        return signin_fails(r, BFF_OUTCOME_PROVIDER_INVALID,
                            "The identity provider refused to complete the sign-in. "
                            "Please sign in again.");
    }
    if (!cb->tok->id_token) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF00221: the token response has no "
                      "id_token (is 'openid' in the scope?)");
        return signin_fails(r, BFF_OUTCOME_PROVIDER_INVALID,
                            "The identity provider's answer was incomplete.");
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF03215: callback step exchange_code: %s answered with tokens: type %s, "
                  "access token expires in %" APR_INT64_T_FMT " s, refresh token %s, "
                  "ID token present",
                  cb->pv.meta->token_endpoint,
                  cb->tok->token_type ? ap_escape_logitem(r->pool, cb->tok->token_type) : "-",
                  cb->tok->expires_in, cb->tok->refresh_token ? "present" : "absent");
    return GO_ON;
}

static int verify_id_token(request_rec *r, const bff_site_t *site, callback_t *cb)
{
    bff_idtoken_expect_t ex;
    const char *err = NULL, *tok = cb->tok->id_token;
    apr_status_t rv;

    memset(&ex, 0, sizeof(ex));
    ex.issuer = site->issuer;
    ex.client_id = site->client_id;
    ex.trusted_audiences = site->trusted_audiences;
    ex.nonce = cb->t->nonce;
    ex.now = bff_util_now();
    ex.leeway = ID_TOKEN_LEEWAY;
    ex.max_age = ID_TOKEN_MAX_AGE;
    if (cb->t->max_age) {
        /* Sealed by us: digits (bff_oidc_login_param_check), at most 9. */
        ex.check_auth_time = 1;
        ex.auth_max_age = apr_atoi64(cb->t->max_age);
    }
    rv = bff_idtoken_verify(r->pool, tok, cb->pv.jwks, cb->pv.meta->id_token_algs, &ex, &cb->claims,
                            &err);
    /* An unknown kid: the provider may have rotated its keys. */
    if (rv == APR_NOTFOUND
        && APR_SUCCESS == bff_provider_refresh_jwks_wait(site->provider, r, &cb->pv)) {
        rv = bff_idtoken_verify(r->pool, tok, cb->pv.jwks, cb->pv.meta->id_token_algs, &ex,
                                &cb->claims, &err);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "BFF00222: ID token rejected: %s",
                      err ? err : "invalid");
        return signin_fails(r, BFF_OUTCOME_PROVIDER_INVALID, NULL);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF03216: callback step verify_id_token: signature, issuer, audience, "
                  "times and nonce verified%s, sub %s",
                  ex.check_auth_time ? ", auth_time within max_age" : "",
                  ap_escape_logitem(r->pool,
                                    json_string_value(json_object_get(cb->claims, "sub"))));
    return GO_ON;
}

/* The userinfo answer's outcome: a provider that is down or slow is a
 * 502/504 like a failed code exchange; an answer we must not use (another
 * sub, signed or encrypted, not JSON) is an invalid provider answer. */
static bff_outcome_e userinfo_outcome(apr_status_t rv)
{
    if (rv == APR_TIMEUP) {
        return BFF_OUTCOME_PROVIDER_TIMEOUT;
    }
    if (rv == APR_EINVAL || rv == APR_ENOTIMPL) {
        return BFF_OUTCOME_PROVIDER_INVALID;
    }
    return BFF_OUTCOME_PROVIDER_DOWN;
}

/* BFFUserInfo: the userinfo claims, under the ID token's (OIDC Core 5.3).
 * Any failure ends the login before a session exists; the single-use
 * marker goes as after a failed code exchange (the code is spent at the
 * provider, so it cannot be replayed into a session either). */
static int fetch_userinfo(request_rec *r, const bff_site_t *site, callback_t *cb)
{
    const char *endpoint = cb->pv.meta->userinfo_endpoint, *err = NULL;
    json_t *ui = NULL, *merged = NULL;
    apr_status_t rv;
    bff_outcome_e o;

    if (!site->userinfo || !endpoint) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BFF03217: callback step fetch_userinfo: skipped (%s)",
                      site->userinfo ? "the provider has no userinfo endpoint" : "BFFUserInfo Off");
        return GO_ON;
    }
    rv = bff_userinfo_fetch(r->pool, bff_provider_http(site->provider), endpoint,
                            cb->tok->access_token, &ui, &err);
    if (rv == APR_SUCCESS) {
        rv = bff_userinfo_merge(r->pool, cb->claims, ui, &merged, &err);
    }
    if (rv == APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BFF03218: callback step fetch_userinfo: %s answered; %d claims in "
                      "the session (ID token's first)",
                      endpoint, (int)json_object_size(merged));
        cb->claims = merged;
        return GO_ON;
    }
    bff_store_remove(site->store, r->pool, cb->used);
    o = userinfo_outcome(rv);
    if (rv == APR_ENOTIMPL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF01910: login refused: the userinfo answer from %s is signed or "
                      "encrypted: %s",
                      endpoint, err ? err : "application/jwt");
    }
    else if (rv == APR_EINVAL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF01911: login refused: the userinfo answer from %s cannot be used: %s",
                      endpoint, err ? err : "invalid");
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "BFF01912: login failed: the userinfo call to %s %s: %s", endpoint,
                      rv == APR_TIMEUP ? "timed out" : "failed", err ? err : "error");
    }
    return signin_fails(r, o, NULL);
}

static void fill_session(request_rec *r, const bff_site_t *site, callback_t *cb)
{
    bff_session_t *s = &cb->s;
    apr_int64_t now = bff_util_now();
    char *claims_txt = json_dumps(cb->claims, JSON_COMPACT);

    memset(s, 0, sizeof(*s));
    s->iss = site->issuer;
    s->sub = json_string_value(json_object_get(cb->claims, "sub"));
    s->sid = json_string_value(json_object_get(cb->claims, "sid"));
    s->access_token = cb->tok->access_token;
    s->token_type = cb->tok->token_type;
    s->refresh_token = cb->tok->refresh_token;
    s->id_token = cb->tok->id_token;
    s->claims = claims_txt ? apr_pstrdup(r->pool, claims_txt) : "{}";
    free(claims_txt);
    s->logout_id = bff_util_random_token(r->pool, 16);
    s->at_expires = cb->tok->expires_in > 0 ? now + cb->tok->expires_in : 0;
    s->at_issued = now;
    s->created = now;
    s->last_access = now;
    s->expires = now + site->max_lifetime;
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF03219: callback step fill_session: sub %s, sid %s, refresh token %s, "
                  "access token expires in %" APR_INT64_T_FMT
                  " s, session ends in %" APR_INT64_T_FMT " s at the latest",
                  ap_escape_logitem(r->pool, s->sub ? s->sub : "-"), s->sid ? "present" : "absent",
                  s->refresh_token ? "kept" : "none", s->at_expires ? s->at_expires - now : 0,
                  s->expires - now);
}

/* A fresh identifier at every login: a cookie planted before the login
 * (session fixation) names nothing afterwards. */
static int store_session(request_rec *r, bff_site_t *site, callback_t *cb)
{
    const char *hdr = apr_table_get(r->headers_in, "Cookie");
    const char *old = hdr ? bff_cookie_get(r->pool, hdr, site->cookie_name) : NULL;
    bff_session_t *s = &cb->s;
    apr_status_t rv;

    if (old && bff_session_id_ok(old)) {
        bff_glue_session_remove(r, site, old);
    }
    memset(&cb->rs, 0, sizeof(cb->rs));
    cb->rs.id = bff_session_new_id(r->pool);
    cb->rs.s = s;
    if (!cb->rs.id || !s->logout_id) {
        return signin_fails(r, BFF_OUTCOME_INTERNAL, "A random value could not be generated.");
    }
    rv = bff_glue_session_save(r, site, &cb->rs, 1);
    if (rv == APR_ENOSPC) {
        return signin_fails(r, BFF_OUTCOME_INTERNAL, "The session is too large to store.");
    }
    if (rv != APR_SUCCESS) {
        return signin_fails(r, BFF_OUTCOME_STORE_DOWN, NULL);
    }
    /* So a back-channel logout can find the session by sid or sub. */
    if (s->sid && *s->sid) {
        bff_glue_index_add(r, site, BFF_INDEX_SID, s->sid, cb->rs.handle, s->expires);
    }
    bff_glue_index_add(r, site, BFF_INDEX_SUB, s->sub, cb->rs.handle, s->expires);
    /* The handle is a hash of the id; its first 8 digits tell lines apart. */
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF03221: callback step store_session: new session %.8s... stored in %s "
                  "and indexed by %s; %s",
                  cb->rs.handle ? cb->rs.handle : "-", site->store->name,
                  s->sid && *s->sid ? "sid and sub" : "sub",
                  old ? "the session cookie the browser sent is replaced (and its session "
                        "removed)"
                      : "a new session cookie is set");
    return GO_ON;
}

/* A same-site refresh instead of a 302: the provider's redirect is a
 * cross-site navigation, on which SameSite=Strict cookies are withheld from
 * every request of the redirect chain. The refresh starts a new, same-site
 * navigation that carries the fresh session cookie. */
static int signed_in_page(request_rec *r, const char *return_to)
{
    const char *esc = ap_escape_html(r->pool, return_to);
    const char *body = apr_psprintf(
        r->pool,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"refresh\" content=\"0;url=%s\"><title>Signed in</title></head>\n"
        "<body><p>Signed in. <a href=\"%s\">Continue</a></p></body></html>\n",
        esc, esc);

    apr_table_setn(r->headers_out, "Content-Security-Policy", "default-src 'none'");
    apr_table_setn(r->headers_out, "Referrer-Policy", "no-referrer");
    return bff_respond_body(r, HTTP_OK, "text/html; charset=utf-8", body);
}

int bff_login_callback(request_rec *r, bff_site_t *site)
{
    callback_t cb;
    apr_status_t rv;
    int answer;

    memset(&cb, 0, sizeof(cb));
    if (GO_ON != (answer = read_query(r, &cb)) || GO_ON != (answer = take_pending(r, site, &cb))) {
        return answer;
    }
    if (APR_SUCCESS != (rv = bff_provider_get(site->provider, r, &cb.pv))) {
        return provider_unavailable(r, rv);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF03212: callback step provider: metadata and keys of %s at hand",
                  site->issuer);
    if (GO_ON != (answer = check_answer(r, site, &cb))
        || GO_ON != (answer = claim_attempt(r, site, &cb))
        || GO_ON != (answer = exchange_code(r, site, &cb))
        || GO_ON != (answer = verify_id_token(r, site, &cb))
        || GO_ON != (answer = fetch_userinfo(r, site, &cb))) {
        return answer;
    }
    fill_session(r, site, &cb);
    if (GO_ON != (answer = store_session(r, site, &cb))) {
        return answer;
    }
    bff_respond_cookie(r, site->cookie_name, cb.rs.id, -1, (bff_samesite_e)site->samesite);
    bff_metrics_login_completed(bff_glue_metrics());
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "BFF00223: login completed for sub %s",
                  ap_escape_logitem(r->pool, cb.s.sub));
    return signed_in_page(r, cb.t->return_to);
}
