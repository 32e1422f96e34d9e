/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the token refresh a relayed request triggers.
 */
#ifndef MOD_BFF_REFRESH_H
#define MOD_BFF_REFRESH_H

#include <httpd.h>

#include "mod_bff_config.h"
#include "mod_bff_site.h"
#include "mod_bff_session.h"
#include "bff_outcome.h"

/* The session's access token is due (or past due) for a refresh: get a new
 * one, once per session across threads, processes and nodes.
 * BFF_OUTCOME_OK with rs updated, or the outcome to answer with
 * (SESSION_ENDED: the request's view of the session is forgotten). */
bff_outcome_e bff_glue_refresh(request_rec *r, bff_site_t *site, bff_req_session_t *rs);

/* The same for the session's narrower token of (resource, scope)
 * (BFFTokenResource, BFFTokenScope): obtained with the refresh token when
 * missing or due, under the session's lock; rs->s then holds it
 * (bff_session_token_find). */
bff_outcome_e bff_glue_refresh_narrow(request_rec *r, bff_site_t *site, bff_req_session_t *rs,
                                      const char *resource, const char *scope);

#endif /* MOD_BFF_REFRESH_H */
