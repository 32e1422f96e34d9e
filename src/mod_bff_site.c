/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: builds the sites at post_config (one per distinct configuration, so virtual hosts that
 * inherit BFFProvider share one key ring and one provider cache), and finds a request's site.
 */
#include <apr_hash.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "mod_bff.h"
#include "mod_bff_config.h"
#include "mod_bff_provider.h"
#include "mod_bff_session.h"
#include "mod_bff_site.h"
#include "mod_bff_store.h"

/* This generation's sites and the server -> site map: built once at
 * post_config in pconf, read-only afterwards (children inherit them). */
static bff_site_t *sites;
static apr_hash_t *by_server;

static apr_status_t sites_reset(void *data)
{
    sites = NULL;
    by_server = NULL;
    return APR_SUCCESS;
}

static const char *const *null_terminated(apr_pool_t *p, const apr_array_header_t *a)
{
    apr_array_header_t *c;

    if (!a) {
        return NULL;
    }
    c = apr_array_copy(p, a);
    APR_ARRAY_PUSH(c, const char *) = NULL;
    return (const char *const *)c->elts;
}

/* "https://host/bff/login" for BFFRedirectURI "https://host/bff/callback":
 * the endpoints share the SetHandler bff location. */
static const char *login_url(apr_pool_t *p, const char *redirect_uri)
{
    const char *q = strchr(redirect_uri, '?');
    const char *end = q ? q : redirect_uri + strlen(redirect_uri);
    const char *slash = end;

    while (slash > redirect_uri && slash[-1] != '/') {
        --slash;
    }
    return apr_pstrcat(p, apr_pstrndup(p, redirect_uri, (apr_size_t)(slash - redirect_uri)),
                       "login", NULL);
}

/* BFFClientKey: the key checked at config time, parsed again here into the
 * site (the configuration holds only the file's bytes). */
static apr_status_t client_key_setup(apr_pool_t *pconf, server_rec *s, const bff_srv_conf_t *sc,
                                     bff_site_t *site)
{
    bff_jws_sign_key_t *key = NULL;
    const char *err = NULL;
    apr_status_t rv;

    if (!sc->client_key) {
        return APR_SUCCESS;
    }
    rv = bff_jws_sign_key_load(pconf, sc->client_key->pem, sc->client_key->len, sc->client_key->kid,
                               &key, &err);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "BFF02100: %s %s cannot be used: %s",
                     BFF_D_CLIENT_KEY, sc->client_key->path, err ? err : "error");
        return rv;
    }
    site->client_key = key;
    site->client_jwks = bff_jws_sign_key_jwks(key);
    site->client.key = key;
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 "BFF02101: %s %s: %s key, kid %s; its public key is served at %sjwks%s",
                 BFF_D_CLIENT_KEY, sc->client_key->path, bff_jws_sign_key_desc(key),
                 bff_jws_sign_key_kid(key),
                 apr_pstrndup(pconf, site->login_url, strlen(site->login_url) - 5),
                 bff_conf_client_auth(sc) == BFF_CLIENT_AUTH_PRIVATE_KEY_JWT
                     ? ""
                     : " (not used to sign: BFFClientAuth is not private_key_jwt)");
    return APR_SUCCESS;
}

/* A max_age BFFAuthParams sends: its auth_time is checked like the SPA's
 * (OIDC Core 3.1.2.1). Only a valid number of seconds counts. */
static const char *auth_params_max_age(const bff_srv_conf_t *sc)
{
    const char *why;
    int i;

    for (i = 0; sc->auth_params && i < sc->auth_params->nelts; ++i) {
        const char *kv = APR_ARRAY_IDX(sc->auth_params, i, const char *);
        if (!strncmp(kv, "max_age=", 8)
            && APR_SUCCESS == bff_oidc_login_param_check(BFF_LOGIN_MAX_AGE, kv + 8, &why)) {
            return kv + 8;
        }
    }
    return NULL;
}

static apr_status_t site_create(apr_pool_t *pconf, server_rec *s, const bff_srv_conf_t *sc,
                                bff_site_t **out)
{
    bff_site_t *site = apr_pcalloc(pconf, sizeof(*site));
    apr_status_t rv;

    site->conf = sc;
    site->server = s;
    site->issuer = sc->issuer;
    site->client_id = sc->client_id;
    site->redirect_uri = sc->redirect_uri;
    site->scope = bff_conf_scope(sc);
    site->auth_params = sc->auth_params;
    site->client.client_id = sc->client_id;
    site->client.client_secret = sc->client_secret;
    site->client.auth = bff_conf_client_auth(sc);
    site->cookie_name = bff_conf_cookie_name(sc);
    site->txn_cookie_name = apr_pstrcat(pconf, site->cookie_name, "-tx", NULL);
    site->txn_cookie_prefix = apr_pstrcat(pconf, site->txn_cookie_name, ".", NULL);
    site->samesite = bff_conf_samesite(sc);
    site->idle_timeout = bff_conf_idle_timeout(sc);
    site->max_lifetime = bff_conf_max_lifetime(sc);
    site->refresh_before = bff_conf_refresh_before(sc);
    site->origin = bff_conf_origin(pconf, sc);
    site->post_logout_uri = bff_conf_post_logout_uri(pconf, sc);
    site->trusted_audiences = null_terminated(pconf, sc->trusted_aud);
    site->login_url = login_url(pconf, sc->redirect_uri);
    if (APR_SUCCESS != (rv = client_key_setup(pconf, s, sc, site))) {
        return rv;
    }
    site->login_params = bff_conf_login_params(sc);
    site->max_age = auth_params_max_age(sc);
    site->par = bff_conf_pushed_authz(sc);
    if (APR_SUCCESS != (rv = bff_glue_store_setup(pconf, s, site))) {
        return rv;
    }
    bff_glue_session_setup(pconf, site);
    site->provider = bff_provider_create(pconf, s, sc->issuer, sc->ca_file);
    /* Only an explicit one: the BFF01901 line names the directive. */
    bff_provider_set_metadata_url(site->provider, sc->metadata_url);
    bff_provider_set_timeouts(site->provider, bff_conf_provider_connect_ms(sc),
                              bff_conf_provider_total_ms(sc));
    site->userinfo = bff_conf_userinfo(sc);
    site->user_claims = bff_conf_user_claims(pconf, sc);
    *out = site;
    return APR_SUCCESS;
}

/* "the main server" or "virtual host 127.0.0.1:8443 (httpd.conf:25)". */
static const char *server_desc(apr_pool_t *p, const server_rec *s)
{
    const server_addr_rec *a = s->addrs;

    if (!s->is_virtual || !a) {
        return "the main server";
    }
    return apr_psprintf(p, "virtual host %s:%u (%s:%u)", a->virthost ? a->virthost : "*",
                        (unsigned)a->host_port, s->defn_name ? s->defn_name : "?",
                        s->defn_line_number);
}

/* A site already built from equal directive values, and the server it
 * was built for. */
static bff_site_t *site_like(const bff_srv_conf_t *sc, server_rec **first)
{
    bff_site_t *site;

    for (site = sites; site; site = site->next) {
        if (bff_conf_same(site->conf, sc)) {
            *first = site->server;
            return site;
        }
    }
    return NULL;
}

apr_status_t bff_sites_build(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    server_rec *vs, *first;
    bff_site_t *site;
    apr_status_t rv;

    sites = NULL;
    by_server = apr_hash_make(pconf);
    apr_pool_cleanup_register(pconf, NULL, sites_reset, apr_pool_cleanup_null);
    for (vs = s; vs; vs = vs->next) {
        const bff_srv_conf_t *sc = bff_srv_conf(vs);
        if (!sc->issuer) {
            continue;
        }
        if ((site = site_like(sc, &first))) {
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, vs,
                         "BFF00160: %s has the same mod_bff settings as %s and shares its key "
                         "ring, session store and provider cache",
                         server_desc(ptemp, vs), server_desc(ptemp, first));
        }
        else {
            if (APR_SUCCESS != (rv = site_create(pconf, vs, sc, &site))) {
                return rv;
            }
            site->next = sites;
            sites = site;
        }
        apr_hash_set(by_server, apr_pmemdup(pconf, &vs, sizeof(vs)), sizeof(vs), site);
    }
    return APR_SUCCESS;
}

void bff_sites_child_init(apr_pool_t *pchild)
{
    bff_site_t *site;

    for (site = sites; site; site = site->next) {
        bff_provider_child_init(site->provider, pchild);
    }
}

bff_site_t *bff_site_get(const server_rec *s)
{
    return by_server ? apr_hash_get(by_server, &s, sizeof(s)) : NULL;
}
