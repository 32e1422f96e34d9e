/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: mod_bff inside httpd's authentication and authorization: AuthType bff (the session
 * authenticates the request: r->user, claims for the rest of httpd), Require bff-claim, and
 * what an unauthenticated or unauthorized request gets.
 */
#ifndef MOD_BFF_AUTH_H
#define MOD_BFF_AUTH_H

#include <httpd.h>

/* post_read_request: X-BFF-Claim-* request headers never come from the
 * client, on any request. */
int bff_auth_strip_claim_headers(request_rec *r);

/* check_authn (per configuration): AuthType bff. */
int bff_auth_check_authn(request_rec *r);

/* note_auth_failure for AuthType bff: a signed-in user mod_authz_core
 * refused gets 403 (not its 401), in mod_bff's form. */
int bff_auth_note_failure(request_rec *r, const char *auth_type);

/* Registers the bff-claim authorization provider. */
void bff_auth_register(apr_pool_t *p);

#endif /* MOD_BFF_AUTH_H */
