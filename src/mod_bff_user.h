/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the user endpoint: who is signed in, for the SPA.
 */
#ifndef MOD_BFF_USER_H
#define MOD_BFF_USER_H

#include <httpd.h>

#include "mod_bff_config.h"
#include "mod_bff_site.h"

/* GET user: the session's claims and lifetimes as JSON (CSRF-checked). */
int bff_user_handle(request_rec *r, bff_site_t *site);

#endif /* MOD_BFF_USER_H */
