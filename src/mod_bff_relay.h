/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the handler hook that runs before mod_proxy's.
 */
#ifndef MOD_BFF_RELAY_H
#define MOD_BFF_RELAY_H

#include <httpd.h>

/* Runs first in the handler phase: for a BFFTokenRelay location, checks
 * CSRF and the session, refreshes the access token when due, and puts
 * Authorization: Bearer on the request mod_proxy forwards (DECLINED lets
 * the proxy go on); answers 401/403/502/503/504 JSON itself otherwise. */
int bff_relay_handler(request_rec *r);

#endif /* MOD_BFF_RELAY_H */
