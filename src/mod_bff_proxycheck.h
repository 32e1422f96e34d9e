/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the start-up warning about a ProxyPass that hides the bff handler.
 */
#ifndef MOD_BFF_PROXYCHECK_H
#define MOD_BFF_PROXYCHECK_H

#include <httpd.h>

/* For every server with BFFRedirectURI: warn (BFF03201) when mod_proxy is
 * loaded and a ProxyPass, ProxyPassMatch or <Location> ProxyPass maps the
 * callback's path and no earlier "ProxyPass <path> !" excludes it. */
void bff_proxycheck_run(apr_pool_t *p, server_rec *s);

#endif /* MOD_BFF_PROXYCHECK_H */
