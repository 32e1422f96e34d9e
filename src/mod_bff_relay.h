/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the handler hook that runs before mod_proxy's, the CSRF check every session request
 * passes, and the token refresh it triggers.
 */
#ifndef MOD_BFF_RELAY_H
#define MOD_BFF_RELAY_H

#include <httpd.h>

#include "mod_bff_config.h"
#include "mod_bff_session.h"

/* CSRF defence for requests that use the session: the custom header (not
 * for WebSocket upgrades, which cannot carry one), an Origin of our own or
 * a trusted one (mandatory for WebSocket), and no cross-site
 * Sec-Fetch-Site. NULL when fine, else why (for the log). */
const char *bff_glue_csrf_check(request_rec *r, bff_srv_conf_t *sc, const bff_dir_conf_t *dc);

/* Runs first in the handler phase: for a BFFTokenRelay location, checks
 * CSRF and the session, refreshes the access token when due, and puts
 * Authorization: Bearer on the request mod_proxy forwards (DECLINED lets
 * the proxy go on); answers 401/403/502/503/504 JSON itself otherwise. */
int bff_relay_handler(request_rec *r);

/* The session's access token is due (or past due) for a refresh: get a new
 * one, once per session across threads, processes and nodes. Returns OK
 * with rs updated, or an HTTP status to answer. */
int bff_glue_refresh(request_rec *r, bff_srv_conf_t *sc, bff_req_session_t *rs);

#endif /* MOD_BFF_RELAY_H */
