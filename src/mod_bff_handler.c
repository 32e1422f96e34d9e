/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the SetHandler bff entry point: dispatch by the last path segment and method to the
 * flows (login, callback, user, logout, back-channel logout), and the client's public JWKS.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include "mod_bff.h"
#include "mod_bff_config.h"
#include "mod_bff_site.h"
#include "mod_bff_handler.h"
#include "mod_bff_login.h"
#include "mod_bff_logout.h"
#include "mod_bff_respond.h"
#include "mod_bff_user.h"

/* How long the provider (or a cache between) may keep the JWKS: a new
 * BFFClientKey shows within five minutes of the restart. */
#define JWKS_MAX_AGE "300"

/* GET <handler>/jwks: the public key of BFFClientKey, for the provider's
 * jwks_uri (private_key_jwt). The same document for everyone and no
 * secret: no session, no CSRF check, cacheable. */
static int jwks_handle(request_rec *r, const bff_site_t *site)
{
    if (!site->client_jwks) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BFF02102: %s asked for, but no %s is configured", r->uri, BFF_D_CLIENT_KEY);
        return bff_respond_outcome(r, BFF_OUTCOME_NOT_FOUND, BFF_AS_API, NULL);
    }
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "public, max-age=" JWKS_MAX_AGE);
    ap_set_content_length(r, (apr_off_t)strlen(site->client_jwks));
    if (!r->header_only) {
        ap_rputs(site->client_jwks, r);
    }
    return OK;
}

int bff_handler(request_rec *r)
{
    bff_site_t *site;
    const char *ep;

    if (!r->handler || strcmp(r->handler, BFF_HANDLER_NAME)) {
        return DECLINED;
    }
    site = bff_site_get(r->server);
    if (!site) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BFF00240: SetHandler bff is used in a "
                      "server without BFFProvider, BFFClientID, BFFClientSecret and "
                      "BFFRedirectURI");
        return bff_respond_outcome(r, BFF_OUTCOME_NOT_CONFIGURED, BFF_AS_API, NULL);
    }
    ep = strrchr(r->uri, '/');
    ep = ep ? ep + 1 : r->uri;
    if (!strcmp(ep, "logout")) {
        if (r->method_number == M_GET || r->method_number == M_POST) {
            return bff_logout_handle(r, site);
        }
        return bff_respond_method_not_allowed(r, "GET, HEAD, POST");
    }
    if (!strcmp(ep, "backchannel-logout")) {
        if (r->method_number == M_POST) {
            return bff_logout_backchannel(r, site);
        }
        return bff_respond_method_not_allowed(r, "POST");
    }
    if (!strcmp(ep, "login") || !strcmp(ep, "callback")) {
        /* HEAD would start or end a login without anyone to follow it. */
        if (r->method_number != M_GET || r->header_only) {
            return bff_respond_method_not_allowed(r, "GET");
        }
        return !strcmp(ep, "login") ? bff_login_start(r, site) : bff_login_callback(r, site);
    }
    if (!strcmp(ep, "user")) {
        if (r->method_number != M_GET) {
            return bff_respond_method_not_allowed(r, "GET, HEAD");
        }
        return bff_user_handle(r, site);
    }
    if (!strcmp(ep, "jwks")) {
        if (r->method_number != M_GET) {
            return bff_respond_method_not_allowed(r, "GET, HEAD");
        }
        return jwks_handle(r, site);
    }
    return bff_respond_outcome(r, BFF_OUTCOME_NOT_FOUND, BFF_AS_API, NULL);
}
