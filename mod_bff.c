/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * mod_bff: httpd as a Backend-for-Frontend for single-page applications
 * (OAuth 2.0 for Browser-Based Applications, BFF pattern). The module record,
 * hooks and the directive table; everything else lives in src/.
 */
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mpm.h>
#include <http_core.h>

#define BFF_MODULE_FILE
#include "src/mod_bff.h"
#include "src/mod_bff_auth.h"
#include "src/mod_bff_config.h"
#include "src/mod_bff_handler.h"
#include "src/mod_bff_proxycheck.h"
#include "src/mod_bff_relay.h"
#include "src/mod_bff_respond.h"
#include "src/mod_bff_site.h"
#include "src/mod_bff_status.h"
#include "src/mod_bff_store.h"
#include "src/bff_http.h"
#include "src/bff_log.h"
#include "src/bff_version.h"

/* Core log lines go to the main server's error log. */
static void core_log(void *baton, const char *file, int line, int level, apr_status_t rv,
                     const char *msg)
{
    ap_log_error(file, line, APLOG_MODULE_INDEX, level, rv, (server_rec *)baton, "%s", msg);
}

static int bff_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    if (APR_SUCCESS != bff_glue_store_pre_config(pconf)) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* Runs for `apachectl configtest` too, so every cross-directive error shows
 * there and not only at a real start. */
static int bff_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    server_rec *vs;
    const char *err;

    for (vs = s; vs; vs = vs->next) {
        if ((err = bff_config_check(ptemp, vs, bff_srv_conf(vs)))) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, vs, "BFF00001: %s", err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    /* A real start warns at post_config, into the error log; check_config
     * runs twice then and would print it twice on the console. */
    if (ap_state_query(AP_SQ_RUN_MODE) == AP_SQ_RM_CONFIG_TEST) {
        bff_proxycheck_run(ptemp, s);
    }
    return OK;
}

/* One line per start and graceful restart (httpd reloads the module then, maybe
 * a new build), naming the library versions actually loaded, which can differ
 * from those mod_bff was built against. */
static void log_versions(apr_pool_t *ptemp, server_rec *s)
{
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "BFF00170: mod_bff/%s started (%s)", bff_version(),
                 bff_version_libs(ptemp));
}

static int bff_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    /* httpd reads its configuration twice at start-up; the first pass only
     * checks it, so nothing expensive happens then. */
    int dry_run = ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG;
    server_rec *vs;

    bff_log_bind(core_log, s);
    bff_log_set_level(ap_get_server_module_loglevel(s, APLOG_MODULE_INDEX));
    if (dry_run) {
        return OK;
    }
    log_versions(ptemp, s);
    for (vs = s; vs; vs = vs->next) {
        bff_config_log_warnings(vs, bff_srv_conf(vs));
    }
    bff_proxycheck_run(ptemp, s);
    bff_glue_store_post_config(pconf);
    /* Before the sites: their stores count into the block. */
    bff_glue_status_post_config(s);
    if (APR_SUCCESS != bff_http_global_init()) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "BFF00002: cannot initialise libcurl");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (APR_SUCCESS != bff_sites_build(pconf, ptemp, s)) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (APR_SUCCESS != bff_glue_store_watchdog(pconf, s)) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

static void bff_child_init(apr_pool_t *pchild, server_rec *s)
{
    bff_glue_store_child_init(pchild, s);
    bff_sites_child_init(pchild);
}

/* Hook order: only the handler phase depends on other modules. The start-up
 * and child hooks read mod_bff's own directives, build its own stores and
 * provider caches, and share nothing with another module, so they keep the
 * default position. */
static void bff_register_hooks(apr_pool_t *p)
{
    /* The relay sets the bearer on, and strips mod_bff's cookies from, the
     * request that mod_proxy's handler forwards: it must run first. */
    static const char *const before_proxy[] = { "mod_proxy.c", NULL };

    ap_hook_pre_config(bff_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(bff_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(bff_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(bff_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* Before mod_proxy by name. REALLY_FIRST as well: in a BFFTokenRelay
     * location the session and CSRF checks, and on an internal redirect or
     * subrequest the removal of an inherited bearer, must come before any
     * handler that could answer the request, and handlers of modules that no
     * list here can name run ahead of APR_HOOK_FIRST (mod_lua's
     * LuaMapHandler at APR_HOOK_FIRST - 1; any third-party module). */
    ap_hook_handler(bff_relay_handler, NULL, before_proxy, APR_HOOK_REALLY_FIRST);
    /* Answers only requests whose handler is "bff" (SetHandler bff), which
     * no other module claims: no relation to any of them. */
    ap_hook_handler(bff_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* SetHandler bff-status, likewise claimed by no other module. */
    ap_hook_handler(bff_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* Forged claim headers go before any module looks at the request. */
    ap_hook_post_read_request(bff_auth_strip_claim_headers, NULL, NULL, APR_HOOK_REALLY_FIRST);
    /* AuthType bff: only requests of that auth type, which no other module
     * claims; per configuration, as httpd's own authn modules. */
    ap_hook_check_authn(bff_auth_check_authn, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_note_auth_failure(bff_auth_note_failure, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(bff_respond_insert_error_filter, NULL, NULL, APR_HOOK_MIDDLE);
    bff_respond_register(p);
    bff_auth_register(p);
}

/* Every directive, with its default in the help text; docs/directives.md
 * has the same list (a test compares them). */
static const command_rec bff_cmds[] = {
    AP_INIT_TAKE1(BFF_D_PROVIDER, bff_cmd_provider, NULL, RSRC_CONF,
                  "The OpenID provider's issuer URL (https; discovery at "
                  "<issuer>/.well-known/openid-configuration). Required."),
    AP_INIT_TAKE1(BFF_D_PROVIDER_CA, bff_cmd_provider_ca, NULL, RSRC_CONF,
                  "PEM file of extra CA certificates to trust for the provider. "
                  "Default: the system trust store only."),
    AP_INIT_TAKE1(BFF_D_CLIENT_ID, bff_cmd_client_id, NULL, RSRC_CONF,
                  "The client id registered at the provider. Required."),
    AP_INIT_TAKE1(BFF_D_CLIENT_SECRET, bff_cmd_client_secret, NULL, RSRC_CONF,
                  "The client secret, or file:/path to read it from. Required (but with "
                  "BFFClientAuth private_key_jwt)."),
    AP_INIT_TAKE1(BFF_D_CLIENT_AUTH, bff_cmd_client_auth, NULL, RSRC_CONF,
                  "client_secret_basic, client_secret_post or private_key_jwt. Default: "
                  "client_secret_basic."),
    AP_INIT_TAKE12(BFF_D_CLIENT_KEY, bff_cmd_client_key, NULL, RSRC_CONF,
                   "file:/path/to/key.pem [kid]: the private key (RSA >= 2048 bits or EC "
                   "P-256) for private_key_jwt; its public key is served at <handler>/jwks. "
                   "Default: none (kid: the key's RFC 7638 thumbprint)."),
    AP_INIT_TAKE1(BFF_D_REDIRECT_URI, bff_cmd_redirect_uri, NULL, RSRC_CONF,
                  "Absolute https URL of the handler's callback endpoint. Required."),
    AP_INIT_TAKE1(BFF_D_SCOPE, bff_cmd_scope, NULL, RSRC_CONF,
                  "Scopes to request (must include openid). Default: \"openid profile email\"."),
    AP_INIT_RAW_ARGS(BFF_D_AUTH_PARAMS, bff_cmd_auth_params, NULL, RSRC_CONF,
                     "Extra authorization request parameters as name=value pairs. Default: none."),
    AP_INIT_TAKE12(BFF_D_SESSION_STORE, bff_cmd_session_store, NULL, RSRC_CONF,
                   "shm, shm:<size> (e.g. shm:256M) or memcache:host:port[,host:port...] "
                   "[replicas=N]. Default: shm (100M, over 10,000 sessions); replicas=1."),
    AP_INIT_TAKE1(BFF_D_CRYPTO_KEY, bff_cmd_crypto_key, NULL, RSRC_CONF,
                  "Session encryption key material (>= 16 bytes) or file:/path; repeat for "
                  "rotation, the first encrypts. Default: a random key per start."),
    AP_INIT_TAKE1(BFF_D_COOKIE_NAME, bff_cmd_cookie_name, NULL, RSRC_CONF,
                  "Session cookie name. Default: __Host-Http-bff."),
    AP_INIT_TAKE1(BFF_D_COOKIE_SAMESITE, bff_cmd_cookie_samesite, NULL, RSRC_CONF,
                  "Strict or Lax. Default: Strict."),
    AP_INIT_TAKE1(BFF_D_IDLE_TIMEOUT, bff_cmd_idle_timeout, NULL, RSRC_CONF,
                  "Session idle timeout (e.g. 30m). Default: 30m."),
    AP_INIT_TAKE1(BFF_D_MAX_LIFETIME, bff_cmd_max_lifetime, NULL, RSRC_CONF,
                  "Absolute session lifetime (e.g. 8h). Default: 8h."),
    AP_INIT_TAKE1(BFF_D_REFRESH_BEFORE, bff_cmd_refresh_before, NULL, RSRC_CONF,
                  "Refresh the access token this long before it expires (60, 2m). Default: 60."),
    AP_INIT_TAKE1(BFF_D_POST_LOGOUT_URI, bff_cmd_post_logout_uri, NULL, RSRC_CONF,
                  "Where the provider sends the browser after logout. Default: the site's /."),
    AP_INIT_TAKE1(BFF_D_TOKEN_RELAY, bff_cmd_token_relay, NULL, RSRC_CONF | ACCESS_CONF,
                  "On, Off, optional, client or user-or-client: put the session's access "
                  "token (client: the client's own, user-or-client: the session's, else the "
                  "client's) on requests that mod_proxy forwards from this location. "
                  "Default: Off."),
    AP_INIT_TAKE12(BFF_D_CSRF_HEADER, bff_cmd_csrf_header, NULL, RSRC_CONF | ACCESS_CONF,
                   "The header (and value) every session request must carry. Default: X-CSRF 1."),
    AP_INIT_ITERATE(BFF_D_TRUSTED_ORIGIN, bff_cmd_trusted_origin, NULL, RSRC_CONF | ACCESS_CONF,
                    "Other origins allowed to use the session (besides the site's own). "
                    "Default: none."),
    AP_INIT_ITERATE(BFF_D_TRUSTED_AUDIENCE, bff_cmd_trusted_audience, NULL, RSRC_CONF,
                    "Audiences besides BFFClientID that an ID token or logout token may name "
                    "in aud. Default: none."),
    AP_INIT_FLAG(BFF_D_PASS_COOKIE, bff_cmd_pass_cookie, NULL, RSRC_CONF | ACCESS_CONF,
                 "On: requests mod_proxy forwards from this location keep the session "
                 "cookies (logged as a warning). Default: Off."),
    AP_INIT_TAKE13(BFF_D_REMOTE_USER_CLAIM, bff_cmd_remote_user_claim, NULL,
                   RSRC_CONF | ACCESS_CONF,
                   "The claim that becomes the user name under AuthType bff (dotted for a "
                   "nested claim), optionally rewritten by a regular expression and a "
                   "replacement. Default: sub."),
    AP_INIT_TAKE1(BFF_D_UNAUTH_ACTION, bff_cmd_unauth_action, NULL, RSRC_CONF | ACCESS_CONF,
                  "login, 401 or pass: what a request without a session gets under AuthType "
                  "bff. Default: 401 where BFFTokenRelay is on, login elsewhere."),
    AP_INIT_TAKE1(BFF_D_PASS_CLAIMS, bff_cmd_pass_claims, NULL, RSRC_CONF | ACCESS_CONF,
                  "none, env, headers or both: the session's claims as BFF_CLAIM_* variables "
                  "and/or X-BFF-Claim-* request headers under AuthType bff. Default: env."),
    AP_INIT_RAW_ARGS(BFF_D_LOGIN_PARAMS, bff_cmd_login_params, NULL, RSRC_CONF,
                     "Login parameters the SPA may pass to /bff/login (prompt, login_hint, "
                     "acr_values, ui_locales, max_age), or none. Default: prompt login_hint "
                     "ui_locales (less those BFFAuthParams sets)."),
    AP_INIT_TAKE1(BFF_D_PUSHED_AUTHZ, bff_cmd_pushed_authz, NULL, RSRC_CONF,
                  "On, Off or auto: send the authorization request through the provider's "
                  "PAR endpoint (RFC 9126). Default: auto (when the provider requires it)."),
    AP_INIT_TAKE1(BFF_D_PROVIDER_METADATA_URL, bff_cmd_provider_metadata_url, NULL, RSRC_CONF,
                  "Fetch the discovery document from this URL (its issuer must still equal "
                  "BFFProvider). Default: <BFFProvider>/.well-known/openid-configuration."),
    AP_INIT_FLAG(BFF_D_USERINFO, bff_cmd_userinfo, NULL, RSRC_CONF,
                 "On or Off: call the provider's userinfo endpoint at login and keep its "
                 "claims under the ID token's. Default: On when the provider has one."),
    AP_INIT_ITERATE(BFF_D_USER_CLAIMS, bff_cmd_user_claims, NULL, RSRC_CONF,
                    "The claims /bff/user returns; the others stay on the server. "
                    "Default: all."),
    AP_INIT_ITERATE(BFF_D_TOKEN_SCOPE, bff_cmd_token_scope, NULL, RSRC_CONF | ACCESS_CONF,
                    "Scopes of the client token that BFFTokenRelay client and user-or-client "
                    "relay from this location. Default: none (the provider's default)."),
    AP_INIT_TAKE1(BFF_D_TOKEN_RESOURCE, bff_cmd_token_resource, NULL, RSRC_CONF | ACCESS_CONF,
                  "Resource indicator (RFC 8707, an absolute URI) of the user's token relayed "
                  "from this location. Default: none (the login's token)."),
    AP_INIT_TAKE2(BFF_D_PROVIDER_TIMEOUT, bff_cmd_provider_timeout, NULL, RSRC_CONF,
                  "Connect timeout and whole-call timeout of every call to the provider "
                  "(discovery, keys, token, userinfo, PAR, revocation). Default: 3s 10s."),
    { NULL }
};

AP_DECLARE_MODULE(bff) = { STANDARD20_MODULE_STUFF,  bff_config_create_dir,   bff_config_merge_dir,
                           bff_config_create_server, bff_config_merge_server, bff_cmds,
                           bff_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
                           AP_MODULE_FLAG_NONE
#endif
};
