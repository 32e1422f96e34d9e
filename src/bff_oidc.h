/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: OpenID Connect and OAuth messages: provider metadata, authorization request, token
 * responses and the token, revocation and end-session endpoints.
 */
#ifndef BFF_OIDC_H
#define BFF_OIDC_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_tables.h>

#include "bff_http.h"

/* Provider metadata (OpenID Connect Discovery 1.0), parsed once. */
typedef struct {
    const char *issuer;
    const char *authorization_endpoint;
    const char *token_endpoint;
    const char *jwks_uri;
    const char *userinfo_endpoint;    /* NULL when absent */
    const char *end_session_endpoint; /* NULL when absent */
    const char *revocation_endpoint;  /* NULL when absent */
    int iss_parameter_supported;      /* authorization_response_iss_parameter_supported */
    int backchannel_logout_supported;
    int backchannel_logout_session_supported;
    const char **id_token_algs; /* NULL-terminated, only algs we support */
    int pkce_s256;              /* S256 listed (or the list absent) */
} bff_oidc_meta_t;

/* Parse the discovery document. Refused (APR_EINVAL, *err says why): not a
 * JSON object, issuer not exactly equal to expected_issuer, a missing or
 * non-https endpoint (http only when allow_http and the host is loopback),
 * no usable ID-token algorithm, PKCE advertised without S256. */
apr_status_t bff_oidc_meta_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                 const char *expected_issuer, int allow_http,
                                 bff_oidc_meta_t **meta, const char **err);

/* "<issuer without trailing slash>/.well-known/openid-configuration". */
char *bff_oidc_discovery_url(apr_pool_t *p, const char *issuer);

/* RFC 7636: a 43-character verifier and its S256 challenge. */
char *bff_oidc_pkce_verifier(apr_pool_t *p);
char *bff_oidc_pkce_challenge(apr_pool_t *p, const char *verifier);

typedef struct {
    const char *client_id;
    const char *redirect_uri;
    const char *scope;
    const char *state;
    const char *nonce;
    const char *code_challenge;
    const apr_array_header_t *extra; /* of const char* "k=v" (raw, encoded here); may be NULL */
} bff_oidc_authz_t;

/* authorization_endpoint + response_type=code, client_id, redirect_uri,
 * scope, state, nonce, code_challenge, code_challenge_method=S256, then the
 * extra parameters (which cannot override any of those). */
char *bff_oidc_authz_url(apr_pool_t *p, const bff_oidc_meta_t *meta, const bff_oidc_authz_t *req);

typedef struct {
    const char *access_token;
    const char *token_type;
    const char *refresh_token; /* NULL when absent */
    const char *id_token;      /* NULL when absent */
    const char *scope;         /* NULL when absent */
    apr_int64_t expires_in;    /* 0 when absent */
    const char *error;         /* set for an OAuth error response */
    const char *error_description;
} bff_oidc_tokens_t;

/* Parse a token endpoint response. 200 with JSON: access_token and
 * token_type (Bearer, case-insensitive) required. 4xx with an OAuth error
 * JSON: APR_SUCCESS with tokens->error set. Anything else APR_EGENERAL. */
apr_status_t bff_oidc_token_response_parse(apr_pool_t *p, const bff_http_resp_t *resp,
                                           bff_oidc_tokens_t **tokens, const char **err);

typedef enum { BFF_CLIENT_AUTH_BASIC = 0, BFF_CLIENT_AUTH_POST = 1 } bff_client_auth_e;

typedef struct {
    const char *client_id;
    const char *client_secret;
    bff_client_auth_e auth;
} bff_oidc_client_t;

/* Exchange an authorization code (grant_type=authorization_code with
 * code_verifier and redirect_uri) at the token endpoint. */
apr_status_t bff_oidc_exchange_code(apr_pool_t *p, const bff_http_opts_t *http,
                                    const bff_oidc_meta_t *meta, const bff_oidc_client_t *client,
                                    const char *code, const char *code_verifier,
                                    const char *redirect_uri, bff_oidc_tokens_t **tokens,
                                    const char **err);

/* grant_type=refresh_token: a new access token, perhaps with a rotated
 * refresh token and a new ID token. */
apr_status_t bff_oidc_refresh(apr_pool_t *p, const bff_http_opts_t *http,
                              const bff_oidc_meta_t *meta, const bff_oidc_client_t *client,
                              const char *refresh_token, bff_oidc_tokens_t **tokens,
                              const char **err);

/* grant_type=client_credentials (RFC 6749 4.4): an access token for the
 * client itself (no refresh token), with scope when non-NULL and non-empty.
 * Errors as for bff_oidc_refresh. */
apr_status_t bff_oidc_client_credentials(apr_pool_t *p, const bff_http_opts_t *http,
                                         const bff_oidc_meta_t *meta,
                                         const bff_oidc_client_t *client, const char *scope,
                                         bff_oidc_tokens_t **tokens, const char **err);

/* RFC 7009: POST token (and token_type_hint, when set) to the revocation
 * endpoint, with client authentication as for the token endpoint (Basic
 * or client_secret_post; client_id always in the body). APR_ENOTIMPL when
 * the provider has no revocation_endpoint; APR_EINVAL for missing client
 * credentials or token; transport errors as bff_http (*err names the
 * endpoint); HTTP 200 is APR_SUCCESS, any other status APR_EGENERAL with
 * *err "revocation endpoint answered HTTP N". */
apr_status_t bff_oidc_revoke(apr_pool_t *p, const bff_http_opts_t *http,
                             const bff_oidc_meta_t *meta, const bff_oidc_client_t *client,
                             const char *token, const char *token_type_hint, const char **err);

/* OpenID Connect RP-Initiated Logout 1.0: end_session_endpoint with
 * id_token_hint, client_id and post_logout_redirect_uri added (each only
 * when non-NULL), kept after any query the endpoint already has. NULL when
 * the provider has no end_session_endpoint. */
char *bff_oidc_end_session_url(apr_pool_t *p, const bff_oidc_meta_t *meta,
                               const char *id_token_hint, const char *client_id,
                               const char *post_logout_redirect_uri);

#endif /* BFF_OIDC_H */
