/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the relay: in BFFTokenRelay locations the session, CSRF and refresh checks and the
 * bearer header (the session's access token, or the client's own: BFFTokenRelay client and
 * user-or-client); elsewhere mod_bff's cookies kept from proxied requests and a relayed token
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
#include "mod_bff_site.h"
#include "mod_bff_clienttoken.h"
#include "mod_bff_csrf.h"
#include "mod_bff_refresh.h"
#include "mod_bff_relay.h"
#include "mod_bff_respond.h"
#include "mod_bff_session.h"
#include "mod_bff_status.h"
#include "bff_cookie.h"
#include "bff_refresh.h"
#include "bff_util.h"

static void strip_own_cookies(request_rec *r, bff_site_t *site)
{
    const char *hdr = apr_table_get(r->headers_in, "Cookie");
    const char *names[3];
    char *rest;

    if (!hdr) {
        return;
    }
    names[0] = site->cookie_name;
    names[1] = site->txn_cookie_name;
    names[2] = NULL;
    rest = bff_cookie_strip_prefix(r->pool, hdr, names, site->txn_cookie_prefix);
    if (rest) {
        apr_table_setn(r->headers_in, "Cookie", rest);
    }
    else {
        apr_table_unset(r->headers_in, "Cookie");
    }
}

static int answer(request_rec *r, bff_outcome_e o)
{
    return bff_respond_outcome(r, o, BFF_AS_API, NULL);
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
    bff_site_t *site = bff_site_get(r->server);

    drop_inherited_token(r);
    if (site && is_proxied(r) && !bff_dir_pass_cookie(dc)) {
        strip_own_cookies(r, site);
    }
    return DECLINED;
}

/* Authorization: Bearer <token> on the forwarded request. The value is
 * remembered in the pool that outlives the redirects and subrequests, so
 * that requests derived from this one can tell our value from a client's. */
static int relay_bearer(request_rec *r, const char *token, bff_m_relay_e kind)
{
    const char *bearer = apr_pstrcat(r->pool, "Bearer ", token, NULL);
    request_rec *first = initial_req(r);

    bff_metrics_relay(bff_glue_metrics(), kind);

    apr_table_setn(r->headers_in, "Authorization", bearer);
    apr_pool_userdata_set(apr_pstrdup(first->pool, bearer), RELAYED_KEY, NULL, first->pool);
    return DECLINED;
}

/* Whether the request carries the session cookie (whatever its value), read
 * before strip_own_cookies. */
static int session_cookie_sent(request_rec *r, const bff_site_t *site)
{
    const char *hdr = apr_table_get(r->headers_in, "Cookie");

    return hdr && bff_cookie_get(r->pool, hdr, site->cookie_name) != NULL;
}

/* BFFTokenRelay client, and user-or-client without a session: the client's
 * own token (client credentials), which needs no session. A request that
 * carries the session cookie passes the CSRF check all the same: the rules
 * for a browser with a session do not change with the token relayed. */
static int relay_client(request_rec *r, bff_site_t *site, const bff_dir_conf_t *dc, int had_cookie)
{
    const char *token = NULL, *why;
    bff_outcome_e o;

    if (had_cookie && (why = bff_csrf_check(r, site, dc))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF02220: request for the client token refused: %s", why);
        return bff_csrf_refuse(r, dc);
    }
    if (BFF_OUTCOME_OK != (o = bff_glue_client_token(r, site, bff_dir_token_scope(dc), &token))) {
        return answer(r, o);
    }
    return relay_bearer(r, token, BFF_M_RELAY_CLIENT);
}

/* BFFTokenResource and/or BFFTokenScope in a user-token location: the
 * session's narrower token for them, obtained with its refresh token when
 * missing or due (single flight, under the session's lock). The default
 * token is neither used nor refreshed here. */
static int relay_narrow(request_rec *r, bff_site_t *site, bff_req_session_t *rs,
                        const char *resource, const char *scope)
{
    const bff_session_token_t *t;
    bff_outcome_e o;

    if (bff_refresh_token_needed(site->refresh_before, rs->s, resource, scope, bff_util_now())) {
        if (BFF_OUTCOME_OK != (o = bff_glue_refresh_narrow(r, site, rs, resource, scope))) {
            return answer(r, o);
        }
    }
    else if (bff_glue_session_touch(r, site, rs) == APR_NOTFOUND) {
        return answer(r, BFF_OUTCOME_SESSION_ENDED);
    }
    t = bff_session_token_find(rs->s, resource, scope);
    if (!t || !t->access_token) {
        /* Not obtained, and nothing valid to fall back on (the refresh
         * logged why). Never the default token in its place. */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "BFF02301: no token for resource %s, scope %s",
                      resource ? resource : "(none)", scope ? scope : "(none)");
        return answer(r, BFF_OUTCOME_PROVIDER_DOWN);
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                  "BFF02302: relaying the session's token for resource %s, scope %s",
                  resource ? resource : "(none)", scope ? scope : "(none)");
    return relay_bearer(r, t->access_token, BFF_M_RELAY_USER);
}

int bff_relay_handler(request_rec *r)
{
    bff_dir_conf_t *dc = bff_dir_conf(r);
    int mode = bff_dir_relay(dc);
    bff_site_t *site;
    bff_req_session_t *rs = NULL;
    const char *why;
    apr_status_t rv;
    bff_outcome_e o;
    int had_cookie;

    if (mode == BFF_RELAY_OFF) {
        return not_relayed(r, dc);
    }
    site = bff_site_get(r->server);
    if (!site) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF01410: BFFTokenRelay is on in a server "
                      "without BFFProvider");
        return bff_respond_outcome(r, BFF_OUTCOME_NOT_CONFIGURED, BFF_AS_API,
                                   "The token relay is not configured.");
    }
    /* Nothing the client sends may pass as our credential. */
    apr_table_unset(r->headers_in, "Authorization");
    had_cookie = (mode == BFF_RELAY_CLIENT || mode == BFF_RELAY_USER_OR_CLIENT)
                 && session_cookie_sent(r, site);
    if (mode == BFF_RELAY_CLIENT) {
        strip_own_cookies(r, site);
        return relay_client(r, site, dc, had_cookie);
    }
    rv = bff_glue_session_load(r, site, &rs);
    strip_own_cookies(r, site);
    if (rv == APR_NOTFOUND) {
        if (mode == BFF_RELAY_OPTIONAL) {
            bff_metrics_relay(bff_glue_metrics(), BFF_M_RELAY_NONE);
            return DECLINED;
        }
        if (mode == BFF_RELAY_USER_OR_CLIENT) {
            return relay_client(r, site, dc, had_cookie);
        }
        return answer(r, BFF_OUTCOME_NO_SESSION);
    }
    if (rv != APR_SUCCESS) {
        return answer(r, BFF_OUTCOME_STORE_DOWN);
    }
    if ((why = bff_csrf_check(r, site, dc))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "BFF01411: relayed request refused: %s", why);
        return bff_csrf_refuse(r, dc);
    }
    if (bff_dir_token_resource(dc) || bff_dir_token_scope(dc)) {
        return relay_narrow(r, site, rs, bff_dir_token_resource(dc), bff_dir_token_scope(dc));
    }
    if (bff_refresh_needed(site->refresh_before, rs->s, bff_util_now())) {
        if (BFF_OUTCOME_OK != (o = bff_glue_refresh(r, site, rs))) {
            return answer(r, o);
        }
    }
    else if (bff_glue_session_touch(r, site, rs) == APR_NOTFOUND) {
        return answer(r, BFF_OUTCOME_SESSION_ENDED);
    }
    if (!rs->s->access_token) {
        return answer(r, BFF_OUTCOME_SESSION_ENDED);
    }
    return relay_bearer(r, rs->s->access_token, BFF_M_RELAY_USER);
}
