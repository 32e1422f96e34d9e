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
#include "bff_jws_sign.h"

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
    /* token_endpoint_auth_signing_alg_values_supported as listed
     * (NULL-terminated), NULL when absent */
    const char *const *token_auth_algs;
    /* RFC 9126 (PAR) */
    const char *par_endpoint; /* pushed_authorization_request_endpoint, NULL when absent */
    int require_par;          /* require_pushed_authorization_requests */
} bff_oidc_meta_t;

/* Parse the discovery document. Refused (APR_EINVAL, *err says why): not a
 * JSON object, issuer not exactly equal to expected_issuer, a missing or
 * non-https endpoint (http only when allow_http and the host is loopback),
 * no usable ID-token algorithm, PKCE advertised without S256. */
apr_status_t bff_oidc_meta_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                 const char *expected_issuer, int allow_http,
                                 bff_oidc_meta_t **meta, const char **err);

/* The issuer a discovery document names, made fit for a log line
 * (printable ASCII, at most 256 bytes), or NULL when it names none. */
const char *bff_oidc_meta_issuer(apr_pool_t *p, const char *json, apr_size_t len);

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
    const apr_array_header_t *login; /* of const char* "k=v" from the SPA (checked by
                                      * bff_oidc_login_param_check); may be NULL */
} bff_oidc_authz_t;

/* authorization_endpoint + response_type=code, client_id, redirect_uri,
 * scope, state, nonce, code_challenge, code_challenge_method=S256, then the
 * extra parameters (which cannot override any of those), then the login
 * parameters (which override neither those nor an extra one of the same
 * name: such a login parameter is left out). */
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

typedef enum {
    BFF_CLIENT_AUTH_BASIC = 0,
    BFF_CLIENT_AUTH_POST = 1,
    BFF_CLIENT_AUTH_PRIVATE_KEY_JWT = 2
} bff_client_auth_e;

typedef struct {
    const char *client_id;
    const char *client_secret; /* client_secret_basic/_post */
    bff_client_auth_e auth;
    const bff_jws_sign_key_t *key; /* private_key_jwt */
} bff_oidc_client_t;

/* Lifetime of a client assertion: RFC 7523 wants it short; the provider
 * gets it within the HTTP timeout. */
#define BFF_OIDC_ASSERTION_TTL 60

/* RFC 7523 / OIDC Core 9 private_key_jwt: a JWT signed with client->key,
 * header {alg, kid, typ "JWT"}, claims iss = sub = the client id, aud = the
 * provider's issuer, a fresh random jti, iat = now, exp = now + 60 s. The
 * algorithm is the one bff_jws_sign_choose_alg picks from the provider's
 * token_endpoint_auth_signing_alg_values_supported: none there the key can
 * do is APR_EINVAL, *err naming the list's problem. */
apr_status_t bff_oidc_client_assertion(apr_pool_t *p, const bff_oidc_meta_t *meta,
                                       const bff_oidc_client_t *client, apr_int64_t now, char **jwt,
                                       const char **err);

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

/* bff_oidc_refresh for a narrower token: with resource (RFC 8707, when
 * non-NULL) and scope (RFC 6749 6, a subset of the granted one, when
 * non-NULL). */
apr_status_t bff_oidc_refresh_narrow(apr_pool_t *p, const bff_http_opts_t *http,
                                     const bff_oidc_meta_t *meta, const bff_oidc_client_t *client,
                                     const char *refresh_token, const char *resource,
                                     const char *scope, bff_oidc_tokens_t **tokens,
                                     const char **err);

/* grant_type=client_credentials (RFC 6749 4.4): an access token for the
 * client itself (no refresh token), with scope when non-NULL and non-empty.
 * Errors as for bff_oidc_refresh. */
apr_status_t bff_oidc_client_credentials(apr_pool_t *p, const bff_http_opts_t *http,
                                         const bff_oidc_meta_t *meta,
                                         const bff_oidc_client_t *client, const char *scope,
                                         bff_oidc_tokens_t **tokens, const char **err);

/* RFC 7009: POST token (and token_type_hint, when set) to the revocation
 * endpoint, with client authentication as for the token endpoint (Basic,
 * client_secret_post or private_key_jwt; client_id always in the body). APR_ENOTIMPL when
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

/* ---- login parameters from the SPA (OIDC Core 3.1.2.1) ---------------- */

/* The parameters /bff/login may pass on, as bits (BFFLoginParams). */
#define BFF_LOGIN_PROMPT 0x01
#define BFF_LOGIN_LOGIN_HINT 0x02
#define BFF_LOGIN_ACR_VALUES 0x04
#define BFF_LOGIN_UI_LOCALES 0x08
#define BFF_LOGIN_MAX_AGE 0x10
#define BFF_LOGIN_ALL 0x1f
#define BFF_LOGIN_DEFAULT (BFF_LOGIN_PROMPT | BFF_LOGIN_LOGIN_HINT | BFF_LOGIN_UI_LOCALES)

/* Longest value accepted for any of them; max_age has at most 9 digits. */
#define BFF_LOGIN_PARAM_MAX 256
#define BFF_LOGIN_MAX_AGE_DIGITS 9

/* The bit of a parameter name (exact, case-sensitive), 0 for any other. */
int bff_oidc_login_param_bit(const char *name);
/* The name of one bit, NULL for anything else. */
const char *bff_oidc_login_param_name(int bit);

/* Whether value is acceptable for the parameter (bit): at most
 * BFF_LOGIN_PARAM_MAX bytes, non-empty; prompt: one or more of none,
 * login, consent, select_account separated by single spaces, none alone,
 * no repeats; max_age: 1 to 9 ASCII digits; ui_locales: language tags
 * ([A-Za-z0-9-], at most 35 each) separated by single spaces; acr_values:
 * tokens of visible ASCII without '"' and '\' separated by single spaces;
 * login_hint: printable ASCII (%x20-7E) without '"', '\', '<', '>',
 * neither starting nor ending with a space. APR_EINVAL with *why (a
 * phrase for a log line, never the value) otherwise. */
apr_status_t bff_oidc_login_param_check(int bit, const char *value, const char **why);

/* Whether a prompt value holds "none" (a silent login). */
int bff_oidc_prompt_is_none(const char *prompt);

/* ---- pushed authorization requests (RFC 9126) ---------------------------- */

typedef struct {
    const char *request_uri; /* set on success */
    apr_int64_t expires_in;  /* 0 when absent */
    const char *error;       /* set for an OAuth error response */
    const char *error_description;
} bff_oidc_par_t;

/* Parse a PAR endpoint response. 201 (or 200) with a JSON object holding a
 * non-empty request_uri of at most 2048 visible ASCII characters and, if
 * present, a positive integer expires_in: APR_SUCCESS. 4xx with an OAuth
 * error JSON: APR_SUCCESS with par->error set. Anything else APR_EGENERAL
 * with *err. */
apr_status_t bff_oidc_par_response_parse(apr_pool_t *p, const bff_http_resp_t *resp,
                                         bff_oidc_par_t **par, const char **err);

/* POST the authorization request (the parameters bff_oidc_authz_url would
 * put in the URL, client_id once) to the PAR endpoint, with client
 * authentication as for the token endpoint. APR_ENOTIMPL when the provider
 * has no PAR endpoint; APR_EINVAL for a missing part of the request;
 * transport errors as bff_http; else the parse's result. */
apr_status_t bff_oidc_par_push(apr_pool_t *p, const bff_http_opts_t *http,
                               const bff_oidc_meta_t *meta, const bff_oidc_client_t *client,
                               const bff_oidc_authz_t *req, bff_oidc_par_t **par, const char **err);

/* authorization_endpoint with only client_id and request_uri (RFC 9126 4). */
char *bff_oidc_par_authz_url(apr_pool_t *p, const bff_oidc_meta_t *meta, const char *client_id,
                             const char *request_uri);

#endif /* BFF_OIDC_H */
