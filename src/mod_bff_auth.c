/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: AuthType bff and Require bff-claim. check_authn reads the session (the request cache
 * the relay uses too: one store read per request, subrequests and internal redirects
 * included), sets r->user from BFFRemoteUserClaim and passes the claims on (BFFPassClaims);
 * without a session it does what BFFUnauthAction says. The bff-claim provider matches the
 * session's claims. A signed-in user that authorization refuses gets 403 in mod_bff's form.
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
#include <mod_auth.h>

#include "mod_bff.h"
#include "mod_bff_auth.h"
#include "mod_bff_config.h"
#include "mod_bff_csrf.h"
#include "mod_bff_respond.h"
#include "mod_bff_session.h"
#include "mod_bff_site.h"
#include "mod_bff_status.h"
#include "bff_claims.h"
#include "bff_session.h"
#include "bff_url.h"
#include "bff_util.h"

#define AUTH_KEY "mod_bff:auth"

/* What authentication found, kept for the whole request (subrequests and
 * internal redirects use the initial request's). */
typedef struct {
    json_t *claims; /* the session's claims, parsed once; NULL: no session */
} auth_ctx_t;

static request_rec *initial_req(request_rec *r)
{
    while (r->main) {
        r = r->main;
    }
    while (r->prev) {
        r = r->prev;
    }
    return r;
}

static apr_status_t claims_free(void *data)
{
    json_decref(data);
    return APR_SUCCESS;
}

static auth_ctx_t *auth_ctx(request_rec *r, int create)
{
    request_rec *first = initial_req(r);
    void *c = NULL;

    apr_pool_userdata_get(&c, AUTH_KEY, first->pool);
    if (!c && create) {
        c = apr_pcalloc(first->pool, sizeof(auth_ctx_t));
        apr_pool_userdata_setn(c, AUTH_KEY, NULL, first->pool);
    }
    return c;
}

/* The session's claims as a JSON object (parsed once per request). */
static json_t *session_claims(request_rec *r, const bff_session_t *s)
{
    auth_ctx_t *c = auth_ctx(r, 1);
    json_t *o;

    if (!c->claims) {
        o = json_loads(s->claims ? s->claims : "{}", 0, NULL);
        if (!json_is_object(o)) {
            json_decref(o);
            o = json_object();
        }
        c->claims = o;
        apr_pool_cleanup_register(initial_req(r)->pool, o, claims_free, apr_pool_cleanup_null);
    }
    return c->claims;
}

/* JSON where a script reads the answer (token-relaying and 401 locations),
 * a page where a person navigates. */
static bff_as_e answer_form(const bff_dir_conf_t *dc)
{
    return bff_dir_relay(dc) != BFF_RELAY_OFF || bff_dir_unauth(dc) == BFF_UNAUTH_401 ? BFF_AS_API
                                                                                      : BFF_AS_PAGE;
}

/* An answer from the authentication phase: written here, DONE tells httpd
 * the response is complete. A subrequest (an SSI include, a lookup) gets
 * only the status: its caller decides what to show. */
static int answer(request_rec *r, bff_outcome_e o, bff_as_e as, const char *text)
{
    if (r->main) {
        return bff_respond_status(o);
    }
    bff_respond_outcome(r, o, as, text);
    return DONE;
}

/* login?returnTo=<the page asked for>, next to BFFRedirectURI's callback. */
static int redirect_to_login(request_rec *r, const bff_site_t *site)
{
    const char *want = initial_req(r)->unparsed_uri;

    if (!want || !bff_url_return_to_ok(want) || strlen(want) > BFF_TXN_MAX_RETURN_TO) {
        want = "/";
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BFF00181: no session: redirecting to "
                  "the login (BFFUnauthAction login)");
    return bff_respond_redirect(r, bff_url_add_param(r->pool, site->login_url, "returnTo", want));
}

static int unauthenticated(request_rec *r, const bff_site_t *site, const bff_dir_conf_t *dc)
{
    switch (bff_dir_unauth(dc)) {
    case BFF_UNAUTH_PASS:
        /* Require valid-user lets it through; bff-claim never matches it. */
        r->user = apr_pstrdup(r->pool, "");
        r->ap_auth_type = apr_pstrdup(r->pool, BFF_AUTH_TYPE);
        return OK;
    case BFF_UNAUTH_LOGIN:
        if (r->method_number == M_GET && !r->main) {
            return redirect_to_login(r, site);
        }
        return answer(r, BFF_OUTCOME_NO_SESSION, answer_form(dc), NULL);
    case BFF_UNAUTH_401:
    default:
        return answer(r, BFF_OUTCOME_NO_SESSION, BFF_AS_API, NULL);
    }
}

/* The user name: the claim BFFRemoteUserClaim names, rewritten by its
 * expression when one is given (no match: the claim as it is). NULL when
 * the session has no such claim, or it is not text. */
static const char *remote_user(request_rec *r, const bff_dir_conf_t *dc, json_t *claims)
{
    const char *v;
    ap_regmatch_t m[AP_MAX_REG_MATCH];

    if (APR_SUCCESS
            != bff_claims_text(r->pool, bff_claims_get(claims, bff_dir_user_claim(dc)), 0, &v)
        || !*v) {
        return NULL;
    }
    if (dc->user_regex && !ap_regexec(dc->user_regex, v, AP_MAX_REG_MATCH, m, 0)) {
        v = ap_pregsub(r->pool, dc->user_repl, v, AP_MAX_REG_MATCH, m);
    }
    return v && *v ? v : NULL;
}

static void pass_claims(request_rec *r, const bff_dir_conf_t *dc, const bff_session_t *s,
                        json_t *claims)
{
    int how = bff_dir_pass_claims(dc);
    const char *name, *text;
    json_t *v;

    json_object_foreach(claims, name, v)
    {
        if ((how & BFF_PASS_CLAIMS_ENV) && APR_SUCCESS == bff_claims_text(r->pool, v, 0, &text)) {
            apr_table_setn(r->subprocess_env, bff_claims_env_name(r->pool, name), text);
        }
        if ((how & BFF_PASS_CLAIMS_HEADERS)
            && APR_SUCCESS == bff_claims_text(r->pool, v, 1, &text)) {
            apr_table_setn(r->headers_in, bff_claims_header_name(r->pool, name), text);
        }
    }
    if (how & BFF_PASS_CLAIMS_ENV) {
        apr_table_setn(r->subprocess_env, "BFF_SESSION_EXPIRES_IN",
                       apr_psprintf(r->pool, "%" APR_INT64_T_FMT, s->expires - bff_util_now()));
    }
}

int bff_auth_check_authn(request_rec *r)
{
    const char *type = ap_auth_type(r), *why, *user;
    const bff_dir_conf_t *dc;
    bff_req_session_t *rs = NULL;
    bff_site_t *site;
    apr_status_t rv;
    json_t *claims;

    if (!type || strcasecmp(type, BFF_AUTH_TYPE)) {
        return DECLINED;
    }
    dc = bff_dir_conf(r);
    if (!(site = bff_site_get(r->server))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF00180: AuthType bff in a server "
                      "without BFFProvider");
        return answer(r, BFF_OUTCOME_NOT_CONFIGURED, answer_form(dc), NULL);
    }
    if (bff_dir_relay(dc) == BFF_RELAY_OFF && (why = bff_csrf_check_unsafe(r, site, dc))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "BFF00182: request refused: %s", why);
        bff_metrics_csrf_refused(bff_glue_metrics());
        return answer(r, BFF_OUTCOME_CSRF, answer_form(dc),
                      "The request must come from this site.");
    }
    rv = bff_glue_session_load(r, site, &rs);
    /* A relay that uses the session slides the idle timeout itself, after
     * its checks (BFFTokenRelay client does not look at the session). */
    if (rv == APR_SUCCESS && !bff_dir_relay_user(dc)
        && bff_glue_session_touch(r, site, rs) == APR_NOTFOUND) {
        rv = APR_NOTFOUND;
    }
    if (rv == APR_NOTFOUND) {
        return unauthenticated(r, site, dc);
    }
    if (rv != APR_SUCCESS) {
        return answer(r, BFF_OUTCOME_STORE_DOWN, answer_form(dc), NULL);
    }
    claims = session_claims(r, rs->s);
    if (!(user = remote_user(r, dc, claims))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF00183: the session has no usable "
                      "claim %s for the user name (BFFRemoteUserClaim)",
                      bff_dir_user_claim(dc));
        return answer(r, BFF_OUTCOME_NO_SESSION, answer_form(dc), NULL);
    }
    r->user = apr_pstrdup(r->pool, user);
    r->ap_auth_type = apr_pstrdup(r->pool, BFF_AUTH_TYPE);
    pass_claims(r, dc, rs->s, claims);
    return OK;
}

int bff_auth_note_failure(request_rec *r, const char *auth_type)
{
    const bff_dir_conf_t *dc = bff_dir_conf(r);

    if (strcasecmp(auth_type, BFF_AUTH_TYPE)) {
        return DECLINED;
    }
    if (r->user && *r->user) {
        ap_log_rerror(APLOG_MARK, bff_respond_level(BFF_OUTCOME_FORBIDDEN), 0, r,
                      "BFF00184: user %s is signed in but "
                      "not authorized here (403)",
                      ap_escape_logitem(r->pool, r->user));
        bff_respond_outcome_for_error(r, BFF_OUTCOME_FORBIDDEN, answer_form(dc));
    }
    else {
        bff_respond_outcome_for_error(r, BFF_OUTCOME_NO_SESSION, answer_form(dc));
    }
    return OK;
}

/* ---- X-BFF-Claim-* headers ------------------------------------------ */

/* X-BFF-Claim-* in any case, "_" for "-" included: upstreams (and CGI's
 * HTTP_* names) that fold the two must not see a client's spelling. */
static int is_claim_header(const char *key)
{
    const char *want = BFF_CLAIMS_HEADER_PREFIX;

    for (; *want; ++want, ++key) {
        if (*want == '-' ? (*key != '-' && *key != '_') : apr_tolower(*key) != apr_tolower(*want)) {
            return 0;
        }
    }
    return 1;
}

static int collect_claim_header(void *rec, const char *key, const char *value)
{
    if (is_claim_header(key)) {
        APR_ARRAY_PUSH((apr_array_header_t *)rec, const char *) = key;
    }
    return 1;
}

int bff_auth_strip_claim_headers(request_rec *r)
{
    apr_array_header_t *forged = apr_array_make(r->pool, 0, sizeof(const char *));
    int i;

    apr_table_do(collect_claim_header, forged, r->headers_in, NULL);
    for (i = 0; i < forged->nelts; ++i) {
        apr_table_unset(r->headers_in, APR_ARRAY_IDX(forged, i, const char *));
    }
    if (forged->nelts) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BFF00185: %d " BFF_CLAIMS_HEADER_PREFIX "* request "
                      "header(s) from the client removed",
                      forged->nelts);
    }
    return DECLINED;
}

/* ---- Require bff-claim ---------------------------------------------- */

typedef struct {
    const char *name;
    apr_array_header_t *values; /* const char * */
} claim_req_t;

static const char *claim_parse(cmd_parms *cmd, const char *line, const void **parsed)
{
    claim_req_t *c = apr_pcalloc(cmd->pool, sizeof(*c));
    const char *w;

    c->name = ap_getword_conf(cmd->pool, &line);
    c->values = apr_array_make(cmd->pool, 4, sizeof(const char *));
    while (*(w = ap_getword_conf(cmd->pool, &line))) {
        APR_ARRAY_PUSH(c->values, const char *) = w;
    }
    if (!*c->name || !c->values->nelts) {
        return "Require bff-claim takes a claim name (dotted for a nested claim) and one or "
               "more values";
    }
    if (strlen(c->name) > BFF_CLAIMS_MAX_PATH) {
        return "Require bff-claim: the claim name is too long";
    }
    *parsed = c;
    return NULL;
}

static authz_status claim_check(request_rec *r, const char *line, const void *parsed)
{
    const claim_req_t *c = parsed;
    auth_ctx_t *ctx;

    if (!r->user) {
        return AUTHZ_DENIED_NO_USER;
    }
    ctx = auth_ctx(r, 0);
    if (!ctx || !ctx->claims) {
        if (*r->user) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "BFF00186: Require bff-claim where "
                          "the user was not authenticated by AuthType bff");
            return AUTHZ_DENIED;
        }
        return AUTHZ_DENIED_NO_USER; /* BFFUnauthAction pass, no session */
    }
    return bff_claims_match(bff_claims_get(ctx->claims, c->name), c->values) ? AUTHZ_GRANTED
                                                                             : AUTHZ_DENIED;
}

static const authz_provider claim_provider = { claim_check, claim_parse };

void bff_auth_register(apr_pool_t *p)
{
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "bff-claim", AUTHZ_PROVIDER_VERSION,
                              &claim_provider, AP_AUTH_INTERNAL_PER_CONF);
}
