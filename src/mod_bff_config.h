/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: directive names and defaults, the per-server and per-directory configuration structs,
 * their getters, and the directive handlers' prototypes.
 */
#ifndef MOD_BFF_CONFIG_H
#define MOD_BFF_CONFIG_H

#include <httpd.h>
#include <http_config.h>
#include <ap_regex.h>

#include "bff_cookie.h"
#include "bff_crypto.h"
#include "bff_oidc.h"
#include "bff_store.h"

/* Directive names live here and nowhere else. */
#define BFF_D_PROVIDER "BFFProvider"
#define BFF_D_PROVIDER_CA "BFFProviderCAFile"
#define BFF_D_CLIENT_ID "BFFClientID"
#define BFF_D_CLIENT_SECRET "BFFClientSecret"
#define BFF_D_CLIENT_AUTH "BFFClientAuth"
#define BFF_D_CLIENT_KEY "BFFClientKey"
#define BFF_D_REDIRECT_URI "BFFRedirectURI"
#define BFF_D_SCOPE "BFFScope"
#define BFF_D_AUTH_PARAMS "BFFAuthParams"
#define BFF_D_SESSION_STORE "BFFSessionStore"
#define BFF_D_CRYPTO_KEY "BFFCryptoKey"
#define BFF_D_COOKIE_NAME "BFFCookieName"
#define BFF_D_COOKIE_SAMESITE "BFFCookieSameSite"
#define BFF_D_IDLE_TIMEOUT "BFFSessionIdleTimeout"
#define BFF_D_MAX_LIFETIME "BFFSessionMaxLifetime"
#define BFF_D_TOKEN_RELAY "BFFTokenRelay"
#define BFF_D_CSRF_HEADER "BFFCSRFHeader"
#define BFF_D_TRUSTED_ORIGIN "BFFTrustedOrigin"
#define BFF_D_REFRESH_BEFORE "BFFRefreshBeforeExpiry"
#define BFF_D_POST_LOGOUT_URI "BFFPostLogoutRedirectURI"
#define BFF_D_TRUSTED_AUDIENCE "BFFTrustedAudience"
#define BFF_D_PASS_COOKIE "BFFPassCookie"
#define BFF_D_REMOTE_USER_CLAIM "BFFRemoteUserClaim"
#define BFF_D_UNAUTH_ACTION "BFFUnauthAction"
#define BFF_D_PASS_CLAIMS "BFFPassClaims"
#define BFF_D_LOGIN_PARAMS "BFFLoginParams"
#define BFF_D_PUSHED_AUTHZ "BFFPushedAuthorization"
#define BFF_D_PROVIDER_METADATA_URL "BFFProviderMetadataURL"
#define BFF_D_USERINFO "BFFUserInfo"
#define BFF_D_USER_CLAIMS "BFFUserClaims"
#define BFF_D_TOKEN_SCOPE "BFFTokenScope"
#define BFF_D_TOKEN_RESOURCE "BFFTokenResource"

/* The AuthType name. */
#define BFF_AUTH_TYPE "bff"
#define BFF_DEFAULT_REMOTE_USER_CLAIM "sub"

#define BFF_DEFAULT_SCOPE "openid profile email"
#define BFF_DEFAULT_COOKIE_NAME "__Host-Http-bff"
#define BFF_DEFAULT_IDLE (30 * 60)
#define BFF_DEFAULT_LIFETIME (8 * 60 * 60)
#define BFF_TXN_LIFETIME 600
#define BFF_TXN_MAX_PENDING 4 /* pending-login cookies per browser */
#define BFF_DEFAULT_CSRF_HEADER "X-CSRF"
#define BFF_DEFAULT_CSRF_VALUE "1"
#define BFF_DEFAULT_REFRESH_BEFORE 60

typedef enum {
    BFF_RELAY_UNSET = -1,
    BFF_RELAY_OFF = 0,
    BFF_RELAY_ON = 1,
    BFF_RELAY_OPTIONAL = 2,
    BFF_RELAY_CLIENT = 3,        /* the client's own token (client credentials) */
    BFF_RELAY_USER_OR_CLIENT = 4 /* the user's with a session, else the client's */
} bff_relay_e;

/* BFFTokenScope: at most this many bytes in all. */
#define BFF_TOKEN_SCOPE_MAX 1024

typedef struct {
    const void *data;
    apr_size_t len;
} bff_secret_t;

/* BFFClientKey file:<PEM> [<kid>]: the file as read at config time (its
 * key checked there, parsed again into the site at post_config). */
typedef struct {
    const char *path;
    const char *pem; /* the private key: never logged */
    apr_size_t len;
    const char *kid; /* NULL: the key's RFC 7638 thumbprint */
} bff_client_key_conf_t;

/* Per server (virtual host): directive values only, as written. Unset
 * fields are NULL or -1; the getters below apply the defaults. Nothing
 * writes to it after the merge: the runtime objects built from it live in
 * a bff_site_t (mod_bff_site.h). */
typedef struct {
    const char *issuer;
    const char *ca_file;
    const char *client_id;
    const char *client_secret;
    int client_auth;                         /* bff_client_auth_e, -1 unset */
    const bff_client_key_conf_t *client_key; /* NULL unset */
    const char *redirect_uri;
    const char *scope;
    apr_array_header_t *auth_params; /* const char * "k=v", NULL unset */
    const char *store_arg;
    bff_store_spec_t store_spec;
    apr_array_header_t *crypto_keys; /* bff_secret_t, NULL unset */
    const char *cookie_name;
    int samesite;               /* bff_samesite_e, -1 unset */
    apr_int64_t idle_timeout;   /* seconds, -1 unset */
    apr_int64_t max_lifetime;   /* seconds, -1 unset */
    apr_int64_t refresh_before; /* seconds, -1 unset */
    const char *post_logout_uri;
    apr_array_header_t *trusted_aud;    /* const char *, NULL unset */
    apr_array_header_t *pass_cookie_at; /* const char * locations with BFFPassCookie On
                                         * in this server's own config (not merged) */
    int login_params;                /* BFFLoginParams: BFF_LOGIN_* bits (bff_oidc.h), -1 unset */
    int pushed_authz;                /* BFFPushedAuthorization: bff_par_e, -1 unset */
    const char *metadata_url;        /* BFFProviderMetadataURL, NULL unset */
    int userinfo;                    /* BFFUserInfo: -1 unset, 0 Off, 1 On */
    apr_array_header_t *user_claims; /* BFFUserClaims: const char *, NULL unset (all) */
} bff_srv_conf_t;

/* BFFPushedAuthorization. */
typedef enum {
    BFF_PAR_OFF = 0,
    BFF_PAR_ON = 1,
    BFF_PAR_AUTO = 2 /* when the provider requires it */
} bff_par_e;

typedef enum {
    BFF_UNAUTH_UNSET = -1,
    BFF_UNAUTH_LOGIN = 0, /* GET/HEAD: redirect to the login; others 401 */
    BFF_UNAUTH_401 = 1,   /* JSON 401, never a redirect */
    BFF_UNAUTH_PASS = 2   /* go on without a user */
} bff_unauth_e;

/* BFFPassClaims: bit set. */
#define BFF_PASS_CLAIMS_UNSET -1
#define BFF_PASS_CLAIMS_ENV 1
#define BFF_PASS_CLAIMS_HEADERS 2

/* Per directory (Location). */
typedef struct {
    int relay;               /* bff_relay_e */
    const char *csrf_header; /* NULL unset */
    const char *csrf_value;
    apr_array_header_t *trusted_origins; /* const char *, NULL unset */
    int pass_cookie;                     /* BFFPassCookie: -1 unset, 0, 1 */
    const char *user_claim;              /* BFFRemoteUserClaim, NULL unset */
    ap_regex_t *user_regex;              /* its optional rewrite, with user_repl */
    const char *user_repl;
    int unauth;                 /* bff_unauth_e */
    int pass_claims;            /* BFF_PASS_CLAIMS_* bits, -1 unset */
    const char *token_scope;    /* BFFTokenScope, space-separated; NULL unset */
    const char *token_resource; /* BFFTokenResource, an absolute URI; NULL unset */
} bff_dir_conf_t;

/* Getters that apply the defaults. */
const char *bff_conf_scope(const bff_srv_conf_t *sc);
bff_client_auth_e bff_conf_client_auth(const bff_srv_conf_t *sc);
const bff_store_spec_t *bff_conf_store_spec(const bff_srv_conf_t *sc);
const char *bff_conf_cookie_name(const bff_srv_conf_t *sc);
bff_samesite_e bff_conf_samesite(const bff_srv_conf_t *sc);
apr_int64_t bff_conf_max_lifetime(const bff_srv_conf_t *sc);
/* Unset: the shorter of the default and the lifetime (a default never
 * contradicts an explicit setting). */
apr_int64_t bff_conf_idle_timeout(const bff_srv_conf_t *sc);
apr_int64_t bff_conf_refresh_before(const bff_srv_conf_t *sc);
/* "https://host[:port]" of BFFRedirectURI (lower case, default port left
 * out), NULL when unset or not a URL. */
const char *bff_conf_origin(apr_pool_t *p, const bff_srv_conf_t *sc);
/* Unset: the site's "/". */
const char *bff_conf_post_logout_uri(apr_pool_t *p, const bff_srv_conf_t *sc);
/* The login parameters the SPA may pass: BFFLoginParams, else the default
 * less those BFFAuthParams sets (its fixed value wins). */
int bff_conf_login_params(const bff_srv_conf_t *sc);
bff_par_e bff_conf_pushed_authz(const bff_srv_conf_t *sc);
/* Whether BFFAuthParams sets the parameter name. */
int bff_conf_auth_param_set(const bff_srv_conf_t *sc, const char *name);
/* BFFUserInfo: 0 only when set Off (unset: on wherever the provider has a
 * userinfo_endpoint). */
int bff_conf_userinfo(const bff_srv_conf_t *sc);
/* BFFUserClaims: the claim names /bff/user returns, NULL-terminated, or
 * NULL for all. */
const char *const *bff_conf_user_claims(apr_pool_t *p, const bff_srv_conf_t *sc);
/* Two servers whose directive values are all equal share one bff_site_t. */
int bff_conf_same(const bff_srv_conf_t *a, const bff_srv_conf_t *b);

int bff_dir_relay(const bff_dir_conf_t *dc);
const char *bff_dir_csrf_header(const bff_dir_conf_t *dc);
const char *bff_dir_csrf_value(const bff_dir_conf_t *dc);
int bff_dir_pass_cookie(const bff_dir_conf_t *dc);
const char *bff_dir_user_claim(const bff_dir_conf_t *dc);
/* Default: 401 where BFFTokenRelay is on (an API never gets a redirect),
 * login elsewhere. */
bff_unauth_e bff_dir_unauth(const bff_dir_conf_t *dc);
int bff_dir_pass_claims(const bff_dir_conf_t *dc); /* default: env */
/* The scope of the client token (BFFTokenRelay client, user-or-client);
 * NULL: none requested. */
const char *bff_dir_token_scope(const bff_dir_conf_t *dc);
/* The resource indicator (RFC 8707) of the user's token here; NULL: none. */
const char *bff_dir_token_resource(const bff_dir_conf_t *dc);
/* Whether the relay uses the user's session here (On, optional,
 * user-or-client): it then checks and slides the session itself. */
int bff_dir_relay_user(const bff_dir_conf_t *dc);

void *bff_config_create_server(apr_pool_t *p, server_rec *s);
void *bff_config_merge_server(apr_pool_t *p, void *basev, void *addv);
void *bff_config_create_dir(apr_pool_t *p, char *dir);
void *bff_config_merge_dir(apr_pool_t *p, void *basev, void *addv);

/* Directive handlers (the table is in mod_bff.c). */
const char *bff_cmd_provider(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_provider_ca(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_client_id(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_client_secret(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_client_auth(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_client_key(cmd_parms *cmd, void *dc, const char *file, const char *kid);
const char *bff_cmd_redirect_uri(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_scope(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_auth_params(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_session_store(cmd_parms *cmd, void *dc, const char *arg, const char *opt);
const char *bff_cmd_crypto_key(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_cookie_name(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_cookie_samesite(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_idle_timeout(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_max_lifetime(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_token_relay(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_csrf_header(cmd_parms *cmd, void *dc, const char *name, const char *value);
const char *bff_cmd_trusted_origin(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_refresh_before(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_post_logout_uri(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_trusted_audience(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_pass_cookie(cmd_parms *cmd, void *dc, int on);
const char *bff_cmd_remote_user_claim(cmd_parms *cmd, void *dc, const char *claim,
                                      const char *regex, const char *repl);
const char *bff_cmd_unauth_action(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_pass_claims(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_login_params(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_pushed_authz(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_provider_metadata_url(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_userinfo(cmd_parms *cmd, void *dc, int on);
const char *bff_cmd_user_claims(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_token_scope(cmd_parms *cmd, void *dc, const char *arg);
const char *bff_cmd_token_resource(cmd_parms *cmd, void *dc, const char *arg);

/* Cross-directive checks after merging (check_config, so `apachectl
 * configtest` sees them too). Returns an error message for the admin, or
 * NULL. */
const char *bff_config_check(apr_pool_t *p, server_rec *s, const bff_srv_conf_t *sc);

/* Warn about settings weaker than the defaults (once the logs are open). */
void bff_config_log_warnings(server_rec *s, const bff_srv_conf_t *sc);

static APR_INLINE bff_srv_conf_t *bff_srv_conf(server_rec *s)
{
    extern module AP_MODULE_DECLARE_DATA bff_module;
    return ap_get_module_config(s->module_config, &bff_module);
}

static APR_INLINE bff_dir_conf_t *bff_dir_conf(request_rec *r)
{
    extern module AP_MODULE_DECLARE_DATA bff_module;
    return ap_get_module_config(r->per_dir_config, &bff_module);
}

#endif /* MOD_BFF_CONFIG_H */
