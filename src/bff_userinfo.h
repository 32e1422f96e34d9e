/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the OpenID Connect userinfo endpoint (OIDC Core 5.3): the call with the access token,
 * the checks on its answer, and the merge of its claims under the ID token's.
 */
#ifndef BFF_USERINFO_H
#define BFF_USERINFO_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <jansson.h>

#include "bff_http.h"

/* The largest userinfo answer taken: its claims go into the session record
 * (bff_session.h, BFF_SESSION_MAX_RECORD) beside the tokens. */
#define BFF_USERINFO_MAX_BODY (64 * 1024)

/* Checks one userinfo answer. APR_SUCCESS: *claims is the JSON object
 * (released with p), with a non-empty string sub. APR_ENOTIMPL: a signed or
 * encrypted answer (Content-Type application/jwt, OIDC Core 5.3.2), which
 * is not verified here and so never used. APR_EGENERAL: a status other than
 * 200. APR_EINVAL: not a JSON object, or no string sub. *err in words fit
 * for a log line (no claim values). */
apr_status_t bff_userinfo_parse(apr_pool_t *p, const bff_http_resp_t *resp, json_t **claims,
                                const char **err);

/* GET endpoint with the access token as Bearer (bounded as every provider
 * call, TLS verified, the body at most BFF_USERINFO_MAX_BODY), then
 * bff_userinfo_parse. Transport failures pass bff_http's status through
 * (APR_TIMEUP for a timeout), *err names the endpoint. */
apr_status_t bff_userinfo_fetch(apr_pool_t *p, const bff_http_opts_t *http, const char *endpoint,
                                const char *access_token, json_t **claims, const char **err);

/* OIDC Core 5.3.4: the userinfo sub must equal the ID token's exactly, or
 * the answer must not be used (APR_EINVAL). Then *merged (released with p)
 * is a new object: every ID token claim, and each userinfo claim the ID
 * token does not have (the ID token wins a conflict: it is signed, the
 * userinfo answer is not). */
apr_status_t bff_userinfo_merge(apr_pool_t *p, json_t *id_claims, json_t *userinfo, json_t **merged,
                                const char **err);

/* After a refresh with a new ID token (OIDC Core 12.2) the session's claims
 * become that token's; those that came from userinfo at login stay. They
 * are the session's claims (session_claims, JSON text) that the ID token
 * the session held until now (old_id_token, verified when it was stored)
 * did not carry; each is kept unless the new ID token has it. *out
 * (released with p) is new_id_claims itself when there is nothing to keep
 * or either input cannot be read. */
apr_status_t bff_userinfo_carry(apr_pool_t *p, const char *session_claims, const char *old_id_token,
                                json_t *new_id_claims, json_t **out);

#endif /* BFF_USERINFO_H */
