/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the CSRF check that every request using the session passes (the relay and /user).
 */
#ifndef MOD_BFF_CSRF_H
#define MOD_BFF_CSRF_H

#include <httpd.h>

#include "mod_bff_config.h"
#include "mod_bff_site.h"

/* The custom header (not for WebSocket upgrades, which cannot carry one),
 * an Origin of our own or a trusted one (mandatory for WebSocket), and no
 * cross-site Sec-Fetch-Site. NULL when fine, else why (for the log). */
const char *bff_csrf_check(request_rec *r, const bff_site_t *site, const bff_dir_conf_t *dc);

/* For AuthType bff locations that do not relay tokens: an unsafe method
 * (anything but GET, HEAD, OPTIONS, TRACE) needs an Origin of this site or a
 * BFFTrustedOrigin, or, without Origin, Sec-Fetch-Site: same-origin. NULL
 * when fine, else why (for the log). */
const char *bff_csrf_check_unsafe(request_rec *r, const bff_site_t *site, const bff_dir_conf_t *dc);

/* The 403 JSON answer to a request that failed it, naming the header. */
int bff_csrf_refuse(request_rec *r, const bff_dir_conf_t *dc);

#endif /* MOD_BFF_CSRF_H */
