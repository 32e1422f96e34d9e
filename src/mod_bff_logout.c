/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: logout (sid check, refresh-token revocation, session removal, end-session redirect) and
 * back-channel logout (logout token, jti replay marker, ending the sessions listed under a sid
 * or sub).
 */
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
#include "mod_bff_logout.h"
#include "mod_bff_provider.h"
#include "mod_bff_respond.h"
#include "mod_bff_session.h"
#include "mod_bff_status.h"
#include "bff_cookie.h"
#include "bff_idtoken.h"
#include "bff_log.h"
#include "bff_ns.h"
#include "bff_oidc.h"
#include "bff_url.h"
#include "bff_util.h"

#define LOGOUT_TOKEN_MAX_AGE 300
#define LOGOUT_TOKEN_LEEWAY 60
#define FORM_MAX (64 * 1024)
#define LOGOUT_LOCK_TTL 30        /* a reload, a remove and an unlock */
#define LOGOUT_LOCK_WAIT_MS 12000 /* as long as refresh waiters wait */
#define LOGOUT_LOCK_POLL_MS 50

static void expire_cookie(request_rec *r, bff_site_t *site)
{
    bff_respond_cookie(r, site->cookie_name, "", 0, (bff_samesite_e)site->samesite);
}

static int cookie_sent(request_rec *r, bff_site_t *site)
{
    const char *hdr = apr_table_get(r->headers_in, "Cookie");

    return hdr && bff_cookie_get(r->pool, hdr, site->cookie_name) != NULL;
}

static void revoke_refresh_token(request_rec *r, bff_site_t *site, const bff_provider_view_t *pv,
                                 const char *rt)
{
    const char *err = NULL;
    apr_status_t rv;

    if (!rt || !pv->meta->revocation_endpoint) {
        return;
    }
    rv = bff_oidc_revoke(r->pool, bff_provider_http(site->provider), pv->meta, &site->client, rt,
                         "refresh_token", &err);
    if (rv != APR_SUCCESS) {
        /* The session is deleted all the same; the token dies with its grant. */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r,
                      "BFF01501: refresh token revocation "
                      "at %s failed: %s",
                      pv->meta->revocation_endpoint, err ? err : "error");
    }
}

/* End the session for good and return the refresh token to revoke. A
 * refresh in flight holds the session lock: wait for it (bounded), so the
 * record read under the lock holds the token that refresh got, not the one
 * it consumed. Without the lock (the wait ran out) the record is removed
 * all the same, and a refresh that writes afterwards finds it gone and
 * revokes what it got itself (BFF01420). */
static const char *end_for_good(request_rec *r, bff_site_t *site, bff_req_session_t *rs)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_msec(LOGOUT_LOCK_WAIT_MS);
    const char *rt = rs->s->refresh_token;
    bff_session_t *fresh;
    apr_status_t rv;

    while (APR_EEXIST == (rv = bff_glue_lock(r, site, rs->handle, LOGOUT_LOCK_TTL))
           && apr_time_now() < deadline) {
        apr_sleep(apr_time_from_msec(LOGOUT_LOCK_POLL_MS));
    }
    if (APR_SUCCESS == bff_glue_session_reload(r, site, rs, &fresh)) {
        rt = fresh->refresh_token;
    }
    bff_glue_session_remove(r, site, rs->id);
    if (rv == APR_SUCCESS) {
        bff_glue_unlock(r, site, rs->handle);
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                      "BFF01541: logout went ahead without "
                      "the session lock (a refresh held it too long)");
    }
    bff_glue_session_forget(r);
    return rt;
}

int bff_logout_handle(request_rec *r, bff_site_t *site)
{
    apr_table_t *q = NULL;
    bff_req_session_t *rs = NULL;
    bff_provider_view_t pv;
    const char *sid, *url = NULL, *rt;
    apr_status_t rv;

    if (r->args && APR_SUCCESS != bff_url_parse_query(r->pool, r->args, &q)) {
        q = NULL;
    }
    sid = q ? apr_table_get(q, "sid") : NULL;
    rv = bff_glue_session_load(r, site, &rs);
    if (rv == APR_NOTFOUND) {
        /* Nothing to end: just leave, and drop a stale cookie - only one
         * that was sent. A cross-site navigation carries no Strict cookie
         * and must not delete the one the browser has (issue 9, 4.6). */
        if (cookie_sent(r, site)) {
            expire_cookie(r, site);
        }
        return bff_respond_redirect(r, site->post_logout_uri);
    }
    if (rv != APR_SUCCESS) {
        return bff_respond_outcome(r, BFF_OUTCOME_STORE_DOWN, BFF_AS_SIGNOUT, NULL);
    }
    if (!sid || !bff_util_ct_streq(sid, rs->s->logout_id)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF01502: logout refused: %s sid "
                      "parameter",
                      sid ? "wrong" : "missing");
        return bff_respond_outcome(r, BFF_OUTCOME_BAD_REQUEST, BFF_AS_SIGNOUT,
                                   "The sign-out link is not valid. Use the sign-out button of "
                                   "the application.");
    }
    /* Removed first, under every key of the ring: the session is over
     * before the provider is asked to revoke anything. */
    rt = end_for_good(r, site, rs);
    if (APR_SUCCESS == bff_provider_get(site->provider, r, &pv)) {
        revoke_refresh_token(r, site, &pv, rt);
        url = bff_oidc_end_session_url(r->pool, pv.meta, rs->s->id_token, site->client_id,
                                       site->post_logout_uri);
    }
    expire_cookie(r, site);
    bff_metrics_logout(bff_glue_metrics());
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "BFF01503: logout of sub %s",
                  ap_escape_logitem(r->pool, rs->s->sub));
    return bff_respond_redirect(r, url ? url : site->post_logout_uri);
}

/* ---- back-channel logout ------------------------------------------- */

/* Why a back-channel logout was refused: each reason has its own log rate. */
typedef enum {
    BC_NOT_FORM, /* not a form POST */
    BC_NO_TOKEN, /* no logout_token */
    BC_REJECTED, /* the token did not verify */
    BC_REPLAYED, /* its jti was seen */
    BC_REASON_COUNT
} bc_reason_e;

/* Anyone can POST to the endpoint: a refusal is what an outsider causes, so
 * it logs at the outcome's level (info, not warn: docs/security.md), at
 * most once per BC_LOG_INTERVAL seconds per process and reason, debug
 * otherwise. A provider misconfigured still shows within that time. */
#define BC_LOG_INTERVAL 10

static int bc_error(request_rec *r, bc_reason_e why, const char *msg)
{
    static bff_log_rate_t rate[BC_REASON_COUNT];

    bff_metrics_backchannel_refused(bff_glue_metrics(), BFF_OUTCOME_BAD_REQUEST);
    BFF_RLOG_AT(bff_log_rate_level(&rate[why], BC_LOG_INTERVAL, bff_util_now(),
                                   bff_respond_level(BFF_OUTCOME_BAD_REQUEST)),
                0, r, "BFF01510: back-channel logout refused: %s", msg);
    return bff_respond_outcome(r, BFF_OUTCOME_BAD_REQUEST, BFF_AS_PROVIDER, msg);
}

static apr_status_t read_body(request_rec *r, char **body, apr_size_t *len)
{
    apr_size_t cap = FORM_MAX, n = 0;
    char *buf;
    long got;

    if (ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK) != OK) {
        return APR_EGENERAL;
    }
    buf = apr_palloc(r->pool, cap + 1);
    if (ap_should_client_block(r)) {
        while ((got = ap_get_client_block(r, buf + n, cap - n)) > 0) {
            n += (apr_size_t)got;
            if (n >= cap) {
                return APR_ENOSPC;
            }
        }
        if (got < 0) {
            return APR_EGENERAL;
        }
    }
    buf[n] = '\0';
    *body = buf;
    *len = n;
    return APR_SUCCESS;
}

static int verify_logout_token(request_rec *r, bff_site_t *site, const char *token, json_t **claims,
                               const char **err)
{
    bff_provider_view_t pv;
    bff_idtoken_expect_t ex;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = bff_provider_get(site->provider, r, &pv))) {
        *err = "the provider's keys are not available";
        return HTTP_BAD_GATEWAY;
    }
    memset(&ex, 0, sizeof(ex));
    ex.issuer = site->issuer;
    ex.client_id = site->client_id;
    ex.trusted_audiences = site->trusted_audiences;
    ex.now = bff_util_now();
    ex.leeway = LOGOUT_TOKEN_LEEWAY;
    ex.max_age = LOGOUT_TOKEN_MAX_AGE;
    rv = bff_idtoken_verify_logout(r->pool, token, pv.jwks, pv.meta->id_token_algs, &ex, claims,
                                   err);
    if (rv == APR_NOTFOUND && APR_SUCCESS == bff_provider_refresh_jwks(site->provider, r, &pv)) {
        rv = bff_idtoken_verify_logout(r->pool, token, pv.jwks, pv.meta->id_token_algs, &ex, claims,
                                       err);
    }
    return rv == APR_SUCCESS ? OK : HTTP_BAD_REQUEST;
}

int bff_logout_backchannel(request_rec *r, bff_site_t *site)
{
    const char *ctype = apr_table_get(r->headers_in, "Content-Type");
    const char *token, *err = NULL, *sid, *sub, *jti;
    apr_table_t *form;
    json_t *claims = NULL;
    char *body;
    apr_size_t len;
    apr_status_t rv;
    int status, n;

    if (!ctype || strncasecmp(ctype, "application/x-www-form-urlencoded", 33)) {
        return bc_error(r, BC_NOT_FORM,
                        "expected an application/x-www-form-urlencoded "
                        "POST");
    }
    if (APR_SUCCESS != read_body(r, &body, &len)
        || APR_SUCCESS != bff_url_parse_query(r->pool, body, &form)
        || !(token = apr_table_get(form, "logout_token")) || !*token) {
        return bc_error(r, BC_NO_TOKEN, "no logout_token in the request body");
    }
    status = verify_logout_token(r, site, token, &claims, &err);
    if (status != OK && status != HTTP_BAD_REQUEST) {
        bff_metrics_backchannel_refused(bff_glue_metrics(), BFF_OUTCOME_PROVIDER_DOWN);
    }
    if (status != OK) {
        return status == HTTP_BAD_REQUEST
                   ? bc_error(r, BC_REJECTED,
                              apr_psprintf(r->pool, "logout token rejected: %s",
                                           err ? err : "invalid"))
                   : bff_respond_outcome(r, BFF_OUTCOME_PROVIDER_DOWN, BFF_AS_PROVIDER,
                                         "The provider's keys are not available.");
    }
    jti = json_string_value(json_object_get(claims, "jti"));
    /* Replay defence: remember each jti for as long as a token could be fresh. */
    /* A key without the ring: every node adds the same entry even while a
     * rolling key rotation leaves them with different first keys. */
    rv = bff_glue_replay_add(r, site, jti, LOGOUT_TOKEN_MAX_AGE + 2 * LOGOUT_TOKEN_LEEWAY);
    if (rv == APR_EEXIST) {
        return bc_error(r, BC_REPLAYED, "logout token replayed (jti already seen)");
    }
    if (rv != APR_SUCCESS) {
        BFF_RLOG_AT(bff_respond_level(BFF_OUTCOME_STORE_DOWN), rv, r,
                    "BFF01512: back-channel logout: the session store is unavailable");
        bff_metrics_backchannel_refused(bff_glue_metrics(), BFF_OUTCOME_STORE_DOWN);
        return bff_respond_outcome(r, BFF_OUTCOME_STORE_DOWN, BFF_AS_PROVIDER, NULL);
    }
    sid = json_string_value(json_object_get(claims, "sid"));
    sub = json_string_value(json_object_get(claims, "sub"));
    n = sid && *sid ? bff_glue_index_end_sessions(r, site, BFF_INDEX_SID, sid)
                    : bff_glue_index_end_sessions(r, site, BFF_INDEX_SUB, sub);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "BFF01511: back-channel logout by %s "
                  "(sub %s) ended %d session(s)",
                  sid && *sid ? "sid" : "sub", sub ? ap_escape_logitem(r->pool, sub) : "-", n);
    bff_metrics_backchannel_ended(bff_glue_metrics(), n);
    bff_respond_no_store(r);
    r->status = HTTP_OK;
    ap_set_content_length(r, 0);
    return OK;
}
