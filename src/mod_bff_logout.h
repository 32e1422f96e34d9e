/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the logout endpoint (front channel, from the SPA) and the back-channel logout endpoint
 * (from the provider).
 */
#ifndef MOD_BFF_LOGOUT_H
#define MOD_BFF_LOGOUT_H

#include <httpd.h>

#include "mod_bff_config.h"
#include "mod_bff_site.h"

/* GET/POST logout?sid=...: revoke, delete the session, expire the cookie,
 * send the browser to the provider's end-session endpoint. */
int bff_logout_handle(request_rec *r, bff_site_t *site);

/* POST backchannel-logout with a logout_token from the provider. */
int bff_logout_backchannel(request_rec *r, bff_site_t *site);

#endif /* MOD_BFF_LOGOUT_H */
