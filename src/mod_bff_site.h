/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the runtime of one configured site: what post_config builds from a server's directive
 * values (key ring, store, provider cache, OIDC client, cookie names, origin, lifetimes),
 * shared by the virtual hosts whose values are equal, read-only once built.
 */
#ifndef MOD_BFF_SITE_H
#define MOD_BFF_SITE_H

#include <httpd.h>

#include "mod_bff_config.h"
#include "bff_cookie.h"
#include "bff_crypto.h"
#include "bff_oidc.h"
#include "bff_sessions.h"
#include "bff_store.h"

struct bff_provider_t;

typedef struct bff_site_t {
    const bff_srv_conf_t *conf; /* the directive values it was built from */
    server_rec *server;         /* the first server with them (for logs) */
    const char *issuer;
    const char *client_id;
    const char *redirect_uri;
    const char *scope;
    const apr_array_header_t *auth_params; /* const char * "k=v", or NULL */
    bff_oidc_client_t client;
    const bff_jws_sign_key_t *client_key; /* BFFClientKey (client.key), or NULL */
    const char *client_jwks;              /* its public JWKS, served at <handler>/jwks */
    const char *cookie_name;
    const char *txn_cookie_name;   /* "<cookie>-tx": the binder of earlier releases */
    const char *txn_cookie_prefix; /* "<cookie>-tx.": pending-login slots */
    bff_samesite_e samesite;
    apr_int64_t idle_timeout; /* seconds */
    apr_int64_t max_lifetime;
    apr_int64_t refresh_before;
    const char *origin;                   /* scheme://host[:port] of BFFRedirectURI */
    const char *post_logout_uri;          /* resolved */
    const char *login_url;                /* the login endpoint beside BFFRedirectURI's callback */
    const char *binding;                  /* origin + client id: binds keys and store entries to
                                  * this site (bff_ns_site) */
    const char *const *trusted_audiences; /* NULL-terminated, or NULL */
    bff_keyring_t *keyring;
    bff_store_t *store;
    struct bff_provider_t *provider;
    bff_sessions_t *sessions; /* the sessions service over store and key ring */
    int login_params;         /* BFF_LOGIN_* bits the SPA may pass to the login */
    const char *max_age;      /* BFFAuthParams' max_age (digits) or NULL: auth_time is checked */
    bff_par_e par;            /* BFFPushedAuthorization */
    int userinfo;             /* BFFUserInfo not Off: call userinfo_endpoint at login */
    const char *const *user_claims; /* BFFUserClaims, NULL-terminated, or NULL: all */
    struct bff_site_t *next;
} bff_site_t;

/* post_config: one site per distinct configuration among the servers with
 * BFFProvider. APR_SUCCESS, or a status after logging why at emerg. */
apr_status_t bff_sites_build(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);

/* child_init: the per-child parts of every site (provider caches). */
void bff_sites_child_init(apr_pool_t *pchild);

/* The site of a server, or NULL when mod_bff is not configured there. */
bff_site_t *bff_site_get(const server_rec *s);

#endif /* MOD_BFF_SITE_H */
