/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the client's own access token (BFFTokenRelay client, user-or-client) for a request.
 */
#ifndef MOD_BFF_CLIENTTOKEN_H
#define MOD_BFF_CLIENTTOKEN_H

#include <httpd.h>

#include "mod_bff_site.h"
#include "bff_outcome.h"

/* The site's client-credentials token for scope (BFFTokenScope; NULL:
 * none), from the store or, single flight across threads, processes and
 * nodes, from the token endpoint. BFF_OUTCOME_OK with *token set (in
 * r->pool), or the outcome to answer with (PROVIDER_DOWN, PROVIDER_TIMEOUT,
 * STORE_DOWN). */
bff_outcome_e bff_glue_client_token(request_rec *r, bff_site_t *site, const char *scope,
                                    const char **token);

#endif /* MOD_BFF_CLIENTTOKEN_H */
