/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the login flow: GET login (start: pending login, redirect to the provider) and GET
 * callback (finish: code exchange, ID token, new session).
 */
#ifndef MOD_BFF_LOGIN_H
#define MOD_BFF_LOGIN_H

#include <httpd.h>

#include "mod_bff_config.h"

int bff_login_start(request_rec *r, bff_srv_conf_t *sc);
int bff_login_callback(request_rec *r, bff_srv_conf_t *sc);

#endif /* MOD_BFF_LOGIN_H */
