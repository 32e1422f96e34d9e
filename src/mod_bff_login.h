/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the login flow: GET login (start: pending login, redirect to the provider) and GET
 * callback (finish: code exchange, ID token, new session).
 */
#ifndef MOD_BFF_LOGIN_H
#define MOD_BFF_LOGIN_H

#include <httpd.h>

#include "mod_bff_config.h"
#include "mod_bff_site.h"

int bff_login_start(request_rec *r, bff_site_t *site);
int bff_login_callback(request_rec *r, bff_site_t *site);

#endif /* MOD_BFF_LOGIN_H */
