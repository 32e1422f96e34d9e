/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the SetHandler bff entry point: dispatch by the last path segment and method to the
 * flows (login, callback, user, logout, back-channel logout).
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
    return bff_respond_outcome(r, BFF_OUTCOME_NOT_FOUND, BFF_AS_API, NULL);
}
