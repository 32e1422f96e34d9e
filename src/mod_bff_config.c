/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: per-server and per-directory configuration: create and merge, one handler per
 * directive, the defaults and cross-directive checks applied after the merge, and the start-up
 * warnings.
 */
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_file_info.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "mod_bff.h"
#include "mod_bff_config.h"
#include "bff_cookie.h"
#include "bff_jws_sign.h"
#include "bff_url.h"
#include "bff_util.h"

/* Parameters the module sets itself; BFFAuthParams must not override them. */
static const char *const reserved_auth_params[] = {
    "response_type", "client_id", "redirect_uri",   "scope",
    "state",         "nonce",     "code_challenge", "code_challenge_method",
    "response_mode", "request",   "request_uri",    NULL
};

void *bff_config_create_server(apr_pool_t *p, server_rec *s)
{
    bff_srv_conf_t *sc = apr_pcalloc(p, sizeof(*sc));

    sc->client_auth = -1;
    sc->samesite = -1;
    sc->idle_timeout = -1;
    sc->max_lifetime = -1;
    sc->refresh_before = -1;
    sc->login_params = -1;
    sc->pushed_authz = -1;
    sc->userinfo = -1;
    return sc;
}

#define MERGE_PTR(f) (add->f ? add->f : base->f)
#define MERGE_INT(f) (add->f != -1 ? add->f : base->f)

void *bff_config_merge_server(apr_pool_t *p, void *basev, void *addv)
{
    bff_srv_conf_t *base = basev, *add = addv;
    bff_srv_conf_t *sc = apr_pcalloc(p, sizeof(*sc));

    sc->issuer = MERGE_PTR(issuer);
    sc->ca_file = MERGE_PTR(ca_file);
    sc->client_id = MERGE_PTR(client_id);
    sc->client_secret = MERGE_PTR(client_secret);
    sc->client_auth = MERGE_INT(client_auth);
    sc->client_key = MERGE_PTR(client_key);
    sc->redirect_uri = MERGE_PTR(redirect_uri);
    sc->scope = MERGE_PTR(scope);
    sc->auth_params = MERGE_PTR(auth_params);
    sc->store_arg = MERGE_PTR(store_arg);
    sc->store_spec = add->store_arg ? add->store_spec : base->store_spec;
    sc->crypto_keys = MERGE_PTR(crypto_keys);
    sc->cookie_name = MERGE_PTR(cookie_name);
    sc->samesite = MERGE_INT(samesite);
    sc->idle_timeout = MERGE_INT(idle_timeout);
    sc->max_lifetime = MERGE_INT(max_lifetime);
    sc->refresh_before = MERGE_INT(refresh_before);
    sc->post_logout_uri = MERGE_PTR(post_logout_uri);
    sc->trusted_aud = MERGE_PTR(trusted_aud);
    sc->pass_cookie_at = add->pass_cookie_at;
    sc->login_params = MERGE_INT(login_params);
    sc->pushed_authz = MERGE_INT(pushed_authz);
    sc->metadata_url = MERGE_PTR(metadata_url);
    sc->userinfo = MERGE_INT(userinfo);
    sc->user_claims = MERGE_PTR(user_claims);
    return sc;
}

void *bff_config_create_dir(apr_pool_t *p, char *dir)
{
    bff_dir_conf_t *dc = apr_pcalloc(p, sizeof(*dc));

    dc->relay = BFF_RELAY_UNSET;
    dc->pass_cookie = -1;
    dc->unauth = BFF_UNAUTH_UNSET;
    dc->pass_claims = BFF_PASS_CLAIMS_UNSET;
    return dc;
}

void *bff_config_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    bff_dir_conf_t *base = basev, *add = addv;
    bff_dir_conf_t *dc = apr_pcalloc(p, sizeof(*dc));

    dc->relay = add->relay != BFF_RELAY_UNSET ? add->relay : base->relay;
    dc->csrf_header = add->csrf_header ? add->csrf_header : base->csrf_header;
    dc->csrf_value = add->csrf_header ? add->csrf_value : base->csrf_value;
    dc->trusted_origins = add->trusted_origins ? add->trusted_origins : base->trusted_origins;
    dc->pass_cookie = add->pass_cookie != -1 ? add->pass_cookie : base->pass_cookie;
    dc->user_claim = add->user_claim ? add->user_claim : base->user_claim;
    dc->user_regex = add->user_claim ? add->user_regex : base->user_regex;
    dc->user_repl = add->user_claim ? add->user_repl : base->user_repl;
    dc->unauth = add->unauth != BFF_UNAUTH_UNSET ? add->unauth : base->unauth;
    dc->pass_claims = add->pass_claims != BFF_PASS_CLAIMS_UNSET ? add->pass_claims
                                                                : base->pass_claims;
    dc->token_scope = add->token_scope ? add->token_scope : base->token_scope;
    dc->token_resource = add->token_resource ? add->token_resource : base->token_resource;
    return dc;
}

int bff_dir_relay(const bff_dir_conf_t *dc)
{
    return dc && dc->relay != BFF_RELAY_UNSET ? dc->relay : BFF_RELAY_OFF;
}

const char *bff_dir_csrf_header(const bff_dir_conf_t *dc)
{
    return dc && dc->csrf_header ? dc->csrf_header : BFF_DEFAULT_CSRF_HEADER;
}

const char *bff_dir_csrf_value(const bff_dir_conf_t *dc)
{
    return dc && dc->csrf_header ? dc->csrf_value : BFF_DEFAULT_CSRF_VALUE;
}

int bff_dir_pass_cookie(const bff_dir_conf_t *dc)
{
    return dc && dc->pass_cookie == 1;
}

const char *bff_dir_user_claim(const bff_dir_conf_t *dc)
{
    return dc && dc->user_claim ? dc->user_claim : BFF_DEFAULT_REMOTE_USER_CLAIM;
}

bff_unauth_e bff_dir_unauth(const bff_dir_conf_t *dc)
{
    if (dc && dc->unauth != BFF_UNAUTH_UNSET) {
        return (bff_unauth_e)dc->unauth;
    }
    return bff_dir_relay(dc) == BFF_RELAY_OFF ? BFF_UNAUTH_LOGIN : BFF_UNAUTH_401;
}

int bff_dir_pass_claims(const bff_dir_conf_t *dc)
{
    return dc && dc->pass_claims != BFF_PASS_CLAIMS_UNSET ? dc->pass_claims : BFF_PASS_CLAIMS_ENV;
}

const char *bff_dir_token_scope(const bff_dir_conf_t *dc)
{
    return dc ? dc->token_scope : NULL;
}

const char *bff_dir_token_resource(const bff_dir_conf_t *dc)
{
    return dc ? dc->token_resource : NULL;
}

int bff_dir_relay_user(const bff_dir_conf_t *dc)
{
    int mode = bff_dir_relay(dc);

    return mode != BFF_RELAY_OFF && mode != BFF_RELAY_CLIENT;
}

static bff_srv_conf_t *cmd_srv_conf(cmd_parms *cmd)
{
    return bff_srv_conf(cmd->server);
}

static const char *cmd_err(cmd_parms *cmd, const char *what)
{
    return apr_psprintf(cmd->pool, "%s: %s", cmd->directive->directive, what);
}

typedef struct {
    const char *word;
    int value;
} keyword_t;

/* One of a fixed set of words (case-insensitive), or an error naming them. */
static const char *parse_keyword(cmd_parms *cmd, const char *arg, const keyword_t *words, int *out,
                                 const char *expected)
{
    for (; words->word; ++words) {
        if (!strcasecmp(arg, words->word)) {
            *out = words->value;
            return NULL;
        }
    }
    return cmd_err(cmd, expected);
}

/* An absolute URL we will talk to or send browsers to. */
static const char *check_url(cmd_parms *cmd, const char *arg, bff_url_t *u)
{
    apr_status_t rv = bff_url_parse(cmd->pool, arg, u);

    if (rv == APR_EACCES) {
        /* The value may hold a password: do not echo it. */
        return cmd_err(cmd, "URLs with user information (user:password@) are not accepted");
    }
    if (rv != APR_SUCCESS) {
        return cmd_err(cmd,
                       apr_psprintf(cmd->pool, "expected an absolute https URL, got '%s'", arg));
    }
    if (strcmp(u->scheme, "https")
        && !(!strcmp(u->scheme, "http") && bff_url_host_is_loopback(u->host))) {
        return cmd_err(cmd,
                       apr_psprintf(cmd->pool,
                                    "'%s' must use https (http is allowed only for loopback hosts)",
                                    arg));
    }
    return NULL;
}

const char *bff_cmd_provider(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    bff_url_t u;

    if (err) {
        return err;
    }
    if ((err = check_url(cmd, arg, &u))) {
        return err;
    }
    if (u.query) {
        return cmd_err(cmd, "the issuer URL must not have a query");
    }
    cmd_srv_conf(cmd)->issuer = arg;
    return NULL;
}

const char *bff_cmd_provider_ca(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    const char *path;
    apr_finfo_t fi;

    if (err) {
        return err;
    }
    path = ap_server_root_relative(cmd->pool, arg);
    if (!path || APR_SUCCESS != apr_stat(&fi, path, APR_FINFO_TYPE, cmd->pool)
        || fi.filetype != APR_REG) {
        return cmd_err(
            cmd,
            apr_psprintf(cmd->pool,
                         "expected a readable PEM file of CA certificates, '%s' is not one", arg));
    }
    cmd_srv_conf(cmd)->ca_file = path;
    return NULL;
}

const char *bff_cmd_client_id(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    const char *c;

    if (err) {
        return err;
    }
    if (!*arg || strlen(arg) > 255) {
        return cmd_err(cmd, "expected a client id of 1 to 255 characters");
    }
    for (c = arg; *c; ++c) {
        if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e) {
            return cmd_err(cmd, "the client id must be printable ASCII without spaces");
        }
    }
    cmd_srv_conf(cmd)->client_id = arg;
    return NULL;
}

const char *bff_cmd_client_secret(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    const char *secret, *why = NULL;
    apr_size_t len;

    if (err) {
        return err;
    }
    if (APR_SUCCESS != bff_util_read_secret(cmd->pool, arg, &secret, &len, &why)) {
        return cmd_err(cmd, why ? why : "cannot read the secret");
    }
    if (!len || memchr(secret, '\0', len)) {
        return cmd_err(cmd, "expected a non-empty secret (or file:/path to one)");
    }
    cmd_srv_conf(cmd)->client_secret = secret;
    return NULL;
}

const char *bff_cmd_client_auth(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    static const keyword_t words[] = { { "client_secret_basic", BFF_CLIENT_AUTH_BASIC },
                                       { "client_secret_post", BFF_CLIENT_AUTH_POST },
                                       { "private_key_jwt", BFF_CLIENT_AUTH_PRIVATE_KEY_JWT },
                                       { NULL, 0 } };

    if (err) {
        return err;
    }
    return parse_keyword(cmd, arg, words, &cmd_srv_conf(cmd)->client_auth,
                         "expected client_secret_basic, client_secret_post or private_key_jwt");
}

/* The key is read and checked here, so that a key httpd cannot use stops
 * the start (and apachectl configtest) with the file and line; the site
 * parses the same bytes again at post_config. */
const char *bff_cmd_client_key(cmd_parms *cmd, void *dc, const char *file, const char *kid)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    bff_client_key_conf_t *ck;
    bff_jws_sign_key_t *key;
    const char *why = NULL;

    if (err) {
        return err;
    }
    if (strncmp(file, "file:", 5) || !file[5]) {
        return cmd_err(cmd, "expected file:/path/to/key.pem (a PEM private key: RSA of at "
                            "least 2048 bits or EC P-256) and an optional key id");
    }
    ck = apr_pcalloc(cmd->pool, sizeof(*ck));
    ck->path = file + 5;
    if (APR_SUCCESS != bff_util_read_secret(cmd->pool, file, &ck->pem, &ck->len, &why)) {
        return cmd_err(cmd, why ? why : "cannot read the key file");
    }
    if (APR_SUCCESS != bff_jws_sign_key_load(cmd->temp_pool, ck->pem, ck->len, kid, &key, &why)) {
        return apr_psprintf(cmd->pool, "%s: %s: %s", cmd->directive->directive, ck->path,
                            why ? why : "the key cannot be used");
    }
    ck->kid = kid;
    cmd_srv_conf(cmd)->client_key = ck;
    return NULL;
}

const char *bff_cmd_redirect_uri(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    bff_url_t u;
    apr_size_t n;

    if (err) {
        return err;
    }
    if ((err = check_url(cmd, arg, &u))) {
        return err;
    }
    if (strcmp(u.scheme, "https")) {
        return cmd_err(cmd, "expected an https URL: the session cookie is Secure and "
                            "__Host- prefixed, so the site must be served over https");
    }
    n = strlen(u.path);
    if (u.query || n < 9 || strcmp(u.path + n - 9, "/callback")) {
        return cmd_err(cmd, "expected an absolute URL ending in the bff handler's "
                            "callback endpoint, e.g. https://app.example/bff/callback");
    }
    cmd_srv_conf(cmd)->redirect_uri = arg;
    return NULL;
}

const char *bff_cmd_scope(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    const char *c, *w;
    int has_openid = 0;
    char *copy, *last;

    if (err) {
        return err;
    }
    for (c = arg; *c; ++c) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e || *c == '"' || *c == '\\') {
            return cmd_err(cmd, "scopes are printable ASCII separated by spaces");
        }
    }
    copy = apr_pstrdup(cmd->pool, arg);
    for (w = apr_strtok(copy, " ", &last); w; w = apr_strtok(NULL, " ", &last)) {
        if (!strcmp(w, "openid")) {
            has_openid = 1;
        }
    }
    if (!has_openid) {
        return cmd_err(cmd, "the scope must include openid, e.g. \"openid profile email\"");
    }
    cmd_srv_conf(cmd)->scope = arg;
    return NULL;
}

const char *bff_cmd_auth_params(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    bff_srv_conf_t *sc = cmd_srv_conf(cmd);
    const char *w, *const *res;
    char *copy, *last, *eq;

    if (err) {
        return err;
    }
    if (!sc->auth_params) {
        sc->auth_params = apr_array_make(cmd->pool, 4, sizeof(const char *));
    }
    copy = apr_pstrdup(cmd->pool, arg);
    for (w = apr_strtok(copy, " \t", &last); w; w = apr_strtok(NULL, " \t", &last)) {
        eq = strchr(w, '=');
        if (!eq || eq == w) {
            return cmd_err(
                cmd, apr_psprintf(cmd->pool,
                                  "expected name=value pairs, e.g. \"prompt=login\", got '%s'", w));
        }
        for (res = reserved_auth_params; *res; ++res) {
            if (!strncmp(w, *res, (apr_size_t)(eq - w)) && strlen(*res) == (apr_size_t)(eq - w)) {
                return cmd_err(
                    cmd,
                    apr_psprintf(cmd->pool,
                                 "'%s' is set by mod_bff itself and cannot be overridden", *res));
            }
        }
        APR_ARRAY_PUSH(sc->auth_params, const char *) = w;
    }
    return NULL;
}

const char *bff_cmd_session_store(cmd_parms *cmd, void *dc, const char *arg, const char *opt)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    bff_srv_conf_t *sc = cmd_srv_conf(cmd);
    const char *why = NULL;

    if (err) {
        return err;
    }
    if (APR_SUCCESS != bff_store_spec_parse(cmd->pool, arg, &sc->store_spec, &why)) {
        return cmd_err(cmd, why ? why : "expected shm or shm:<size>");
    }
    if (opt && APR_SUCCESS != bff_store_spec_option(cmd->pool, opt, &sc->store_spec, &why)) {
        return cmd_err(cmd, why);
    }
    /* Compared whole by bff_conf_same: the option is part of the store. */
    sc->store_arg = opt ? apr_pstrcat(cmd->pool, arg, " ", opt, NULL) : arg;
    return NULL;
}

const char *bff_cmd_crypto_key(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    bff_srv_conf_t *sc = cmd_srv_conf(cmd);
    const char *secret, *why = NULL;
    apr_size_t len;
    bff_secret_t *k;

    if (err) {
        return err;
    }
    if (APR_SUCCESS != bff_util_read_secret(cmd->pool, arg, &secret, &len, &why)) {
        return cmd_err(cmd, why ? why : "cannot read the key");
    }
    if (len < BFF_CRYPTO_MIN_SECRET) {
        return cmd_err(cmd, "the key must be at least 16 bytes; use 32 random bytes, "
                            "e.g. from: openssl rand -base64 32");
    }
    if (!sc->crypto_keys) {
        sc->crypto_keys = apr_array_make(cmd->pool, 2, sizeof(bff_secret_t));
    }
    if (sc->crypto_keys->nelts >= 16) {
        return cmd_err(cmd, "at most 16 keys");
    }
    k = apr_array_push(sc->crypto_keys);
    k->data = secret;
    k->len = len;
    return NULL;
}

const char *bff_cmd_cookie_name(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);

    if (err) {
        return err;
    }
    if (!bff_cookie_name_ok(arg) || strlen(arg) > 64) {
        return cmd_err(cmd, "expected a cookie name (letters, digits and -_.!#$%&'*+^`|~, "
                            "at most 64 characters)");
    }
    cmd_srv_conf(cmd)->cookie_name = arg;
    return NULL;
}

const char *bff_cmd_cookie_samesite(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);

    static const keyword_t words[] = { { "Strict", BFF_SAMESITE_STRICT },
                                       { "Lax", BFF_SAMESITE_LAX },
                                       { NULL, 0 } };

    if (err) {
        return err;
    }
    return parse_keyword(cmd, arg, words, &cmd_srv_conf(cmd)->samesite,
                         "expected Strict or Lax (None is never allowed for a session cookie)");
}

static const char *parse_duration(cmd_parms *cmd, const char *arg, apr_int64_t *out)
{
    apr_int64_t secs;

    if (APR_SUCCESS != bff_util_parse_duration(arg, &secs) || secs <= 0 || secs > 366 * 24 * 3600) {
        return cmd_err(cmd, "expected a duration such as 900, 90s, 30m, 8h or 2d "
                            "(more than 0, at most a year)");
    }
    *out = secs;
    return NULL;
}

const char *bff_cmd_idle_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    return err ? err : parse_duration(cmd, arg, &cmd_srv_conf(cmd)->idle_timeout);
}

const char *bff_cmd_max_lifetime(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    return err ? err : parse_duration(cmd, arg, &cmd_srv_conf(cmd)->max_lifetime);
}

const char *bff_cmd_token_relay(cmd_parms *cmd, void *dcv, const char *arg)
{
    bff_dir_conf_t *dc = dcv;
    static const keyword_t words[] = { { "On", BFF_RELAY_ON },
                                       { "Off", BFF_RELAY_OFF },
                                       { "optional", BFF_RELAY_OPTIONAL },
                                       { "client", BFF_RELAY_CLIENT },
                                       { "user-or-client", BFF_RELAY_USER_OR_CLIENT },
                                       { NULL, 0 } };

    return parse_keyword(cmd, arg, words, &dc->relay,
                         "expected On, Off, optional, client or user-or-client");
}

/* RFC 6749 3.3: scope-token = 1*NQCHAR, %x21 / %x23-5B / %x5D-7E. */
static int scope_token_ok(const char *s)
{
    const unsigned char *c = (const unsigned char *)s;

    if (!*c) {
        return 0;
    }
    for (; *c; ++c) {
        if (*c < 0x21 || *c > 0x7e || *c == '"' || *c == '\\') {
            return 0;
        }
    }
    return 1;
}

/* One scope per argument; repeated on another line in the same section,
 * they add up. */
const char *bff_cmd_token_scope(cmd_parms *cmd, void *dcv, const char *arg)
{
    bff_dir_conf_t *dc = dcv;
    const char *all;

    if (!scope_token_ok(arg)) {
        return cmd_err(cmd, "expected scope names (printable ASCII without spaces, quotes or "
                            "backslashes)");
    }
    all = dc->token_scope ? apr_pstrcat(cmd->pool, dc->token_scope, " ", arg, NULL)
                          : apr_pstrdup(cmd->pool, arg);
    if (strlen(all) > BFF_TOKEN_SCOPE_MAX) {
        return cmd_err(cmd, "the scopes are too long (at most 1024 bytes in all)");
    }
    dc->token_scope = all;
    return NULL;
}

/* RFC 8707 2: an absolute URI without a fragment; it travels as a form
 * parameter, so printable ASCII only (URL-encoded when sent). */
const char *bff_cmd_token_resource(cmd_parms *cmd, void *dcv, const char *arg)
{
    bff_dir_conf_t *dc = dcv;
    const unsigned char *c;
    apr_uri_t u;

    for (c = (const unsigned char *)arg; *c; ++c) {
        if (*c < 0x21 || *c > 0x7e) {
            return cmd_err(cmd, "the resource must be an absolute URI in printable ASCII");
        }
    }
    if (!*arg || strlen(arg) > BFF_TOKEN_SCOPE_MAX || apr_uri_parse(cmd->pool, arg, &u) || !u.scheme
        || !*u.scheme || u.fragment || strchr(arg, '#')) {
        return cmd_err(cmd, "expected an absolute URI without a fragment (RFC 8707), e.g. "
                            "https://api.example.com/");
    }
    dc->token_resource = arg;
    return NULL;
}

static int header_token_ok(const char *s)
{
    if (!*s) {
        return 0;
    }
    for (; *s; ++s) {
        if (!apr_isalnum(*s) && !strchr("!#$%&'*+-.^_`|~", *s)) {
            return 0;
        }
    }
    return 1;
}

const char *bff_cmd_csrf_header(cmd_parms *cmd, void *dcv, const char *name, const char *value)
{
    bff_dir_conf_t *dc = dcv;
    const char *c;

    if (!header_token_ok(name) || strlen(name) > 64) {
        return cmd_err(cmd, "expected a header name such as X-CSRF");
    }
    /* Headers a page can set without a CORS preflight would defeat the check. */
    if (!strcasecmp(name, "Accept") || !strcasecmp(name, "Accept-Language")
        || !strcasecmp(name, "Content-Language") || !strcasecmp(name, "Content-Type")
        || !strcasecmp(name, "Range") || !strcasecmp(name, "Cookie")
        || !strcasecmp(name, "Authorization") || !strcasecmp(name, "Origin")) {
        return cmd_err(cmd, "this header can be sent cross-site without a CORS preflight "
                            "(or is reserved); use a custom header such as X-CSRF");
    }
    if (value) {
        for (c = value; *c; ++c) {
            if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e) {
                return cmd_err(cmd, "the value must be printable ASCII without spaces");
            }
        }
        if (!*value) {
            return cmd_err(cmd, "the value must not be empty");
        }
    }
    dc->csrf_header = name;
    dc->csrf_value = value ? value : BFF_DEFAULT_CSRF_VALUE;
    return NULL;
}

const char *bff_cmd_trusted_origin(cmd_parms *cmd, void *dcv, const char *arg)
{
    bff_dir_conf_t *dc = dcv;
    bff_url_t u;
    char *origin;

    if (APR_SUCCESS != bff_url_parse(cmd->pool, arg, &u) || strcmp(u.path, "/") || u.query
        || arg[strlen(arg) - 1] == '/') {
        return cmd_err(
            cmd,
            apr_psprintf(cmd->pool,
                         "expected an origin such as "
                         "https://app.example.com (scheme, host and optional port only), got '%s'",
                         arg));
    }
    origin = apr_pstrdup(cmd->pool, arg);
    ap_str_tolower(origin);
    if (!dc->trusted_origins) {
        dc->trusted_origins = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(dc->trusted_origins, const char *) = origin;
    return NULL;
}

const char *bff_cmd_trusted_audience(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    bff_srv_conf_t *sc = cmd_srv_conf(cmd);

    if (err) {
        return err;
    }
    if (!*arg) {
        return cmd_err(cmd, "expected an audience (a client id or URI)");
    }
    if (!sc->trusted_aud) {
        sc->trusted_aud = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(sc->trusted_aud, const char *) = arg;
    return NULL;
}

const char *bff_cmd_pass_cookie(cmd_parms *cmd, void *dcv, int on)
{
    bff_dir_conf_t *dc = dcv;
    bff_srv_conf_t *sc = cmd_srv_conf(cmd);

    dc->pass_cookie = on;
    if (on) {
        /* Warned about once the error log is open (bff_config_log_warnings). */
        if (!sc->pass_cookie_at) {
            sc->pass_cookie_at = apr_array_make(cmd->pool, 2, sizeof(const char *));
        }
        APR_ARRAY_PUSH(sc->pass_cookie_at, const char *) = cmd->path ? cmd->path : "server scope";
    }
    return NULL;
}

/* A claim path: dotted names of letters, digits, "_", "-", ":". */
static int claim_path_ok(const char *s)
{
    int at_start = 1;

    if (!*s || strlen(s) > 256) {
        return 0;
    }
    for (; *s; ++s) {
        if (*s == '.') {
            if (at_start) {
                return 0;
            }
            at_start = 1;
        }
        else if (apr_isalnum(*s) || *s == '_' || *s == '-' || *s == ':') {
            at_start = 0;
        }
        else {
            return 0;
        }
    }
    return !at_start;
}

const char *bff_cmd_remote_user_claim(cmd_parms *cmd, void *dcv, const char *claim,
                                      const char *regex, const char *repl)
{
    bff_dir_conf_t *dc = dcv;

    if (!claim_path_ok(claim)) {
        return cmd_err(cmd, "expects a claim name (dotted for nested claims: a.b)");
    }
    if (regex && !repl) {
        return cmd_err(cmd, "takes a claim, or a claim, a regular expression and a replacement");
    }
    dc->user_claim = claim;
    dc->user_regex = NULL;
    dc->user_repl = NULL;
    if (regex) {
        if (!(dc->user_regex = ap_pregcomp(cmd->pool, regex, AP_REG_EXTENDED))) {
            return cmd_err(cmd, "has a regular expression that does not compile");
        }
        dc->user_repl = repl;
    }
    return NULL;
}

const char *bff_cmd_unauth_action(cmd_parms *cmd, void *dcv, const char *arg)
{
    bff_dir_conf_t *dc = dcv;
    static const keyword_t words[] = { { "login", BFF_UNAUTH_LOGIN },
                                       { "401", BFF_UNAUTH_401 },
                                       { "pass", BFF_UNAUTH_PASS },
                                       { NULL, 0 } };

    return parse_keyword(cmd, arg, words, &dc->unauth, "expected login, 401 or pass");
}

const char *bff_cmd_pass_claims(cmd_parms *cmd, void *dcv, const char *arg)
{
    bff_dir_conf_t *dc = dcv;
    static const keyword_t words[] = { { "none", 0 },
                                       { "env", BFF_PASS_CLAIMS_ENV },
                                       { "headers", BFF_PASS_CLAIMS_HEADERS },
                                       { "both", BFF_PASS_CLAIMS_ENV | BFF_PASS_CLAIMS_HEADERS },
                                       { NULL, 0 } };

    return parse_keyword(cmd, arg, words, &dc->pass_claims, "expected none, env, headers or both");
}

/* ---- discovery and userinfo (issue 12) ---------------------------- */

const char *bff_cmd_provider_metadata_url(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    bff_url_t u;

    if (err) {
        return err;
    }
    if ((err = check_url(cmd, arg, &u))) {
        return err;
    }
    cmd_srv_conf(cmd)->metadata_url = arg;
    return NULL;
}

const char *bff_cmd_userinfo(cmd_parms *cmd, void *dc, int on)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);

    if (err) {
        return err;
    }
    cmd_srv_conf(cmd)->userinfo = on;
    return NULL;
}

/* ITERATE: one claim name per call; the names add up. */
const char *bff_cmd_user_claims(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    bff_srv_conf_t *sc = cmd_srv_conf(cmd);
    const char *c;

    if (err) {
        return err;
    }
    if (!*arg || strlen(arg) > 256) {
        return cmd_err(cmd, "expected claim names (1 to 256 characters each)");
    }
    for (c = arg; *c; ++c) {
        if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e) {
            return cmd_err(cmd, "a claim name is printable ASCII without spaces");
        }
    }
    if (!sc->user_claims) {
        sc->user_claims = apr_array_make(cmd->pool, 4, sizeof(const char *));
    }
    APR_ARRAY_PUSH(sc->user_claims, const char *) = arg;
    return NULL;
}

int bff_conf_userinfo(const bff_srv_conf_t *sc)
{
    return sc->userinfo != 0;
}

const char *const *bff_conf_user_claims(apr_pool_t *p, const bff_srv_conf_t *sc)
{
    apr_array_header_t *c;

    if (!sc->user_claims) {
        return NULL;
    }
    c = apr_array_copy(p, sc->user_claims);
    APR_ARRAY_PUSH(c, const char *) = NULL;
    return (const char *const *)c->elts;
}

const char *bff_cmd_refresh_before(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    apr_int64_t secs;

    if (err) {
        return err;
    }
    if (APR_SUCCESS != bff_util_parse_duration(arg, &secs) || secs < 0 || secs > 3600) {
        return cmd_err(cmd, "expected seconds from 0 to 3600, e.g. 60");
    }
    cmd_srv_conf(cmd)->refresh_before = secs;
    return NULL;
}

const char *bff_cmd_post_logout_uri(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    bff_url_t u;

    if (err) {
        return err;
    }
    if ((err = check_url(cmd, arg, &u))) {
        return err;
    }
    cmd_srv_conf(cmd)->post_logout_uri = arg;
    return NULL;
}

/* "https://host[:port]" of an absolute URL, lower case, default port left out. */
static const char *url_origin(apr_pool_t *p, const char *url)
{
    bff_url_t u;
    char *o;
    int dflt;

    if (APR_SUCCESS != bff_url_parse(p, url, &u)) {
        return NULL;
    }
    dflt = (!strcmp(u.scheme, "https") && u.port == 443)
           || (!strcmp(u.scheme, "http") && u.port == 80);
    o = strchr(u.host, ':') ? apr_psprintf(p, "%s://[%s]", u.scheme, u.host)
                            : apr_psprintf(p, "%s://%s", u.scheme, u.host);
    if (!dflt) {
        o = apr_psprintf(p, "%s:%d", o, u.port);
    }
    ap_str_tolower(o);
    return o;
}

const char *bff_conf_scope(const bff_srv_conf_t *sc)
{
    return sc->scope ? sc->scope : BFF_DEFAULT_SCOPE;
}

bff_client_auth_e bff_conf_client_auth(const bff_srv_conf_t *sc)
{
    return sc->client_auth != -1 ? (bff_client_auth_e)sc->client_auth : BFF_CLIENT_AUTH_BASIC;
}

const bff_store_spec_t *bff_conf_store_spec(const bff_srv_conf_t *sc)
{
    static const bff_store_spec_t dflt = { BFF_STORE_SHM, BFF_STORE_SHM_DEFAULT_SIZE, NULL };

    return sc->store_arg ? &sc->store_spec : &dflt;
}

const char *bff_conf_cookie_name(const bff_srv_conf_t *sc)
{
    return sc->cookie_name ? sc->cookie_name : BFF_DEFAULT_COOKIE_NAME;
}

bff_samesite_e bff_conf_samesite(const bff_srv_conf_t *sc)
{
    return sc->samesite != -1 ? (bff_samesite_e)sc->samesite : BFF_SAMESITE_STRICT;
}

apr_int64_t bff_conf_max_lifetime(const bff_srv_conf_t *sc)
{
    return sc->max_lifetime != -1 ? sc->max_lifetime : BFF_DEFAULT_LIFETIME;
}

apr_int64_t bff_conf_idle_timeout(const bff_srv_conf_t *sc)
{
    apr_int64_t life = bff_conf_max_lifetime(sc);

    if (sc->idle_timeout != -1) {
        return sc->idle_timeout;
    }
    return BFF_DEFAULT_IDLE < life ? BFF_DEFAULT_IDLE : life;
}

apr_int64_t bff_conf_refresh_before(const bff_srv_conf_t *sc)
{
    return sc->refresh_before != -1 ? sc->refresh_before : BFF_DEFAULT_REFRESH_BEFORE;
}

const char *bff_conf_origin(apr_pool_t *p, const bff_srv_conf_t *sc)
{
    return sc->redirect_uri ? url_origin(p, sc->redirect_uri) : NULL;
}

const char *bff_conf_post_logout_uri(apr_pool_t *p, const bff_srv_conf_t *sc)
{
    const char *origin;

    if (sc->post_logout_uri) {
        return sc->post_logout_uri;
    }
    origin = bff_conf_origin(p, sc);
    return origin ? apr_pstrcat(p, origin, "/", NULL) : NULL;
}

static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

static int same_str_at(const apr_array_header_t *a, const apr_array_header_t *b, int i)
{
    return same_str(APR_ARRAY_IDX(a, i, const char *), APR_ARRAY_IDX(b, i, const char *));
}

static int same_key_at(const apr_array_header_t *a, const apr_array_header_t *b, int i)
{
    const bff_secret_t *x = &APR_ARRAY_IDX(a, i, bff_secret_t);
    const bff_secret_t *y = &APR_ARRAY_IDX(b, i, bff_secret_t);

    return x->len == y->len && !memcmp(x->data, y->data, x->len);
}

/* Two arrays (auth params, audiences, keys), element by element. */
static int same_array(const apr_array_header_t *a, const apr_array_header_t *b,
                      int (*same_at)(const apr_array_header_t *, const apr_array_header_t *, int))
{
    int i;

    if (a == b) {
        return 1;
    }
    if (!a || !b || a->nelts != b->nelts) {
        return 0;
    }
    for (i = 0; i < a->nelts; ++i) {
        if (!same_at(a, b, i)) {
            return 0;
        }
    }
    return 1;
}

static int same_client_key(const bff_client_key_conf_t *a, const bff_client_key_conf_t *b)
{
    if (a == b) {
        return 1;
    }
    return a && b && a->len == b->len && !memcmp(a->pem, b->pem, a->len)
           && same_str(a->kid, b->kid);
}

int bff_conf_same(const bff_srv_conf_t *a, const bff_srv_conf_t *b)
{
    return same_str(a->issuer, b->issuer) && same_str(a->ca_file, b->ca_file)
           && same_str(a->client_id, b->client_id) && same_str(a->client_secret, b->client_secret)
           && a->client_auth == b->client_auth && same_client_key(a->client_key, b->client_key)
           && same_str(a->redirect_uri, b->redirect_uri) && same_str(a->scope, b->scope)
           && same_array(a->auth_params, b->auth_params, same_str_at)
           && same_str(a->store_arg, b->store_arg)
           && same_array(a->crypto_keys, b->crypto_keys, same_key_at)
           && same_str(a->cookie_name, b->cookie_name) && a->samesite == b->samesite
           && a->idle_timeout == b->idle_timeout && a->max_lifetime == b->max_lifetime
           && a->refresh_before == b->refresh_before
           && same_str(a->post_logout_uri, b->post_logout_uri)
           && same_array(a->trusted_aud, b->trusted_aud, same_str_at)
           && a->login_params == b->login_params && a->pushed_authz == b->pushed_authz
           && same_str(a->metadata_url, b->metadata_url) && a->userinfo == b->userinfo
           && same_array(a->user_claims, b->user_claims, same_str_at);
}

/* ---- BFFLoginParams, BFFPushedAuthorization ----------------------------- */

const char *bff_cmd_login_params(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    bff_srv_conf_t *sc = cmd_srv_conf(cmd);
    char *w;
    int bits = 0, bit, none = 0, words = 0;

    if (err) {
        return err;
    }
    /* Words as httpd splits them (quotes removed). */
    while (*(w = ap_getword_conf(cmd->pool, &arg))) {
        ++words;
        if (!strcasecmp(w, "none")) {
            none = 1; /* no login parameter passes */
            continue;
        }
        if (!(bit = bff_oidc_login_param_bit(w))) {
            return cmd_err(cmd, apr_psprintf(cmd->pool,
                                             "'%s' is not one of none, prompt, login_hint, "
                                             "acr_values, ui_locales, max_age",
                                             w));
        }
        bits |= bit;
    }
    if (!words || (none && bits)) {
        return cmd_err(cmd, "expected parameter names, or none alone");
    }
    sc->login_params = bits;
    return NULL;
}

const char *bff_cmd_pushed_authz(cmd_parms *cmd, void *dc, const char *arg)
{
    static const keyword_t words[] = {
        { "On", BFF_PAR_ON }, { "Off", BFF_PAR_OFF }, { "auto", BFF_PAR_AUTO }, { NULL, 0 }
    };

    return parse_keyword(cmd, arg, words, &cmd_srv_conf(cmd)->pushed_authz, "On, Off or auto");
}

int bff_conf_auth_param_set(const bff_srv_conf_t *sc, const char *name)
{
    apr_size_t n = strlen(name);
    int i;

    for (i = 0; sc->auth_params && i < sc->auth_params->nelts; ++i) {
        const char *kv = APR_ARRAY_IDX(sc->auth_params, i, const char *);
        if (!strncasecmp(kv, name, n) && kv[n] == '=') {
            return 1;
        }
    }
    return 0;
}

/* The default list gives way to BFFAuthParams; an explicit list that
 * names a parameter BFFAuthParams fixes is a contradiction (see
 * login_params_clash). */
int bff_conf_login_params(const bff_srv_conf_t *sc)
{
    int bits, bit;

    if (sc->login_params != -1) {
        return sc->login_params;
    }
    bits = BFF_LOGIN_DEFAULT;
    for (bit = 1; bit <= BFF_LOGIN_ALL; bit <<= 1) {
        if ((bits & bit) && bff_conf_auth_param_set(sc, bff_oidc_login_param_name(bit))) {
            bits &= ~bit;
        }
    }
    return bits;
}

bff_par_e bff_conf_pushed_authz(const bff_srv_conf_t *sc)
{
    return sc->pushed_authz != -1 ? (bff_par_e)sc->pushed_authz : BFF_PAR_AUTO;
}

static const char *login_params_clash(apr_pool_t *p, const bff_srv_conf_t *sc, const char *srv)
{
    int bit;

    for (bit = 1; sc->login_params != -1 && bit <= BFF_LOGIN_ALL; bit <<= 1) {
        const char *name = bff_oidc_login_param_name(bit);
        if ((sc->login_params & bit) && bff_conf_auth_param_set(sc, name)) {
            return apr_psprintf(p,
                                "%s names %s, which %s sets for %s: the SPA could not "
                                "change it (the configured value wins); remove it from one "
                                "of the two",
                                BFF_D_LOGIN_PARAMS, name, BFF_D_AUTH_PARAMS, srv);
        }
    }
    return NULL;
}

const char *bff_config_check(apr_pool_t *p, server_rec *s, const bff_srv_conf_t *sc)
{
    const char *err;
    const char *srv = apr_psprintf(p, "%s:%d", s->server_hostname ? s->server_hostname : "?",
                                   (int)s->port);

    if (!sc->issuer) {
        return NULL; /* mod_bff is not used in this server */
    }
    if (!sc->client_id) {
        return apr_psprintf(p, "%s is set for %s but %s is missing", BFF_D_PROVIDER, srv,
                            BFF_D_CLIENT_ID);
    }
    if (bff_conf_client_auth(sc) == BFF_CLIENT_AUTH_PRIVATE_KEY_JWT) {
        if (!sc->client_key) {
            return apr_psprintf(p,
                                "%s private_key_jwt is set for %s but %s is missing (the "
                                "private key that signs the client assertions)",
                                BFF_D_CLIENT_AUTH, srv, BFF_D_CLIENT_KEY);
        }
    }
    else if (!sc->client_secret) {
        return apr_psprintf(p,
                            "%s is set for %s but %s is missing (mod_bff is a "
                            "confidential client)",
                            BFF_D_PROVIDER, srv, BFF_D_CLIENT_SECRET);
    }
    if (!sc->redirect_uri) {
        return apr_psprintf(p, "%s is set for %s but %s is missing", BFF_D_PROVIDER, srv,
                            BFF_D_REDIRECT_URI);
    }
    if (bff_conf_store_spec(sc)->kind == BFF_STORE_MEMCACHE
        && !(sc->crypto_keys && sc->crypto_keys->nelts)) {
        return apr_psprintf(p,
                            "%s memcache:... needs %s for %s: every node must use the "
                            "same key to read the sessions the others write",
                            BFF_D_SESSION_STORE, BFF_D_CRYPTO_KEY, srv);
    }
    if ((err = login_params_clash(p, sc, srv))) {
        return err;
    }
    if (bff_conf_idle_timeout(sc) > bff_conf_max_lifetime(sc)) {
        /* Both set explicitly (here or inherited): one of the two is a
         * mistake, and guessing which would hide it. */
        return apr_psprintf(p,
                            "%s (%" APR_INT64_T_FMT "s) is longer than %s (%" APR_INT64_T_FMT
                            "s) for %s: an idle timeout cannot outlast the "
                            "session; shorten it or leave it unset (it then defaults to the "
                            "shorter of 30 minutes and the lifetime)",
                            BFF_D_IDLE_TIMEOUT, bff_conf_idle_timeout(sc), BFF_D_MAX_LIFETIME,
                            bff_conf_max_lifetime(sc), srv);
    }
    return NULL;
}

void bff_config_log_warnings(server_rec *s, const bff_srv_conf_t *sc)
{
    int i;

    /* Locations of this server's own configuration; a virtual host that
     * inherits one has it logged by the main server. */
    for (i = 0; sc->pass_cookie_at && i < sc->pass_cookie_at->nelts; ++i) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "BFF00150: %s On at %s: the upstream "
                     "proxied from there receives the session cookie, a bearer credential "
                     "for the session",
                     BFF_D_PASS_COOKIE, APR_ARRAY_IDX(sc->pass_cookie_at, i, const char *));
    }
    if (!sc->issuer) {
        return;
    }
    if (!strncmp(sc->issuer, "http:", 5)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "BFF00101: %s %s uses plain http "
                     "(allowed for loopback only); use https in production",
                     BFF_D_PROVIDER, sc->issuer);
    }
    if (strncmp(bff_conf_cookie_name(sc), "__Host-", 7)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "BFF00102: %s %s has no __Host- "
                     "prefix: the cookie can be overwritten from sibling subdomains",
                     BFF_D_COOKIE_NAME, bff_conf_cookie_name(sc));
    }
    if (bff_conf_samesite(sc) == BFF_SAMESITE_LAX) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "BFF00103: %s Lax weakens the "
                     "session cookie (sent on cross-site top-level navigations)",
                     BFF_D_COOKIE_SAMESITE);
    }
    if (bff_conf_client_auth(sc) == BFF_CLIENT_AUTH_POST) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "BFF00104: %s client_secret_post "
                     "sends the client secret in the request body",
                     BFF_D_CLIENT_AUTH);
    }
}
