/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: OpenID Connect and OAuth messages: discovery metadata, PKCE, the authorization URL,
 * token responses, code exchange, refresh, revocation and the end-session URL.
 */
#include <string.h>
#include <strings.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "bff_jose.h"
#include "bff_oidc.h"
#include "bff_url.h"
#include "bff_util.h"

#define WELL_KNOWN "/.well-known/openid-configuration"

/* An expires_in beyond this is clamped, so that now + expires_in can never
 * overflow in a caller (ten years is longer than any sane token lives). */
#define BFF_OIDC_MAX_EXPIRES_IN ((apr_int64_t)10 * 365 * 24 * 3600)

/* ---------------------------------------------------------------------- */
/* Discovery metadata */

static apr_status_t meta_fail(const char **err, const char *msg)
{
    *err = msg;
    return APR_EINVAL;
}

/* Optional string member: absent is fine (*out NULL), any other type is not. */
static apr_status_t opt_string(apr_pool_t *p, json_t *obj, const char *name, const char **out,
                               const char **err)
{
    json_t *v = json_object_get(obj, name);

    *out = NULL;
    if (!v) {
        return APR_SUCCESS;
    }
    if (!json_is_string(v)) {
        *err = apr_psprintf(p, "provider metadata: %s is not a string", name);
        return APR_EINVAL;
    }
    *out = apr_pstrmemdup(p, json_string_value(v), json_string_length(v));
    return APR_SUCCESS;
}

static apr_status_t opt_bool(apr_pool_t *p, json_t *obj, const char *name, int *out,
                             const char **err)
{
    json_t *v = json_object_get(obj, name);

    *out = 0;
    if (!v) {
        return APR_SUCCESS;
    }
    if (!json_is_boolean(v)) {
        *err = apr_psprintf(p, "provider metadata: %s is not a boolean", name);
        return APR_EINVAL;
    }
    *out = json_is_true(v);
    return APR_SUCCESS;
}

/* An optional array of strings: absent gives *out NULL. */
static apr_status_t opt_string_array(apr_pool_t *p, json_t *obj, const char *name, json_t **out,
                                     const char **err)
{
    json_t *v = json_object_get(obj, name), *item;
    size_t i;

    *out = NULL;
    if (!v) {
        return APR_SUCCESS;
    }
    if (!json_is_array(v)) {
        *err = apr_psprintf(p, "provider metadata: %s is not an array", name);
        return APR_EINVAL;
    }
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item)) {
            *err = apr_psprintf(p, "provider metadata: %s holds a non-string", name);
            return APR_EINVAL;
        }
    }
    *out = v;
    return APR_SUCCESS;
}

static apr_status_t check_endpoint(apr_pool_t *p, const char *name, const char *url, int allow_http,
                                   const char **err)
{
    bff_url_t u;

    if (APR_SUCCESS != bff_url_parse(p, url, &u)) {
        *err = apr_psprintf(p, "provider metadata: %s is not a valid absolute URL", name);
        return APR_EINVAL;
    }
    if (!strcmp(u.scheme, "https")) {
        return APR_SUCCESS;
    }
    if (allow_http && !strcmp(u.scheme, "http") && bff_url_host_is_loopback(u.host)) {
        return APR_SUCCESS;
    }
    *err = apr_psprintf(p, "provider metadata: %s is not https%s", name,
                        allow_http ? " (http is allowed only to a loopback host)" : "");
    return APR_EINVAL;
}

static apr_status_t endpoint(apr_pool_t *p, json_t *doc, const char *name, int required,
                             int allow_http, const char **out, const char **err)
{
    apr_status_t rv;

    if (APR_SUCCESS != (rv = opt_string(p, doc, name, out, err))) {
        return rv;
    }
    if (!*out) {
        if (required) {
            *err = apr_psprintf(p, "provider metadata: %s is missing", name);
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    }
    return check_endpoint(p, name, *out, allow_http, err);
}

static apr_status_t meta_algs(apr_pool_t *p, json_t *doc, bff_oidc_meta_t *m, const char **err)
{
    json_t *arr, *item;
    apr_array_header_t *algs;
    size_t i;
    apr_status_t rv;

    if (APR_SUCCESS
        != (rv = opt_string_array(p, doc, "id_token_signing_alg_values_supported", &arr, err))) {
        return rv;
    }
    algs = apr_array_make(p, 4, sizeof(const char *));
    if (!arr) {
        /* OIDC Core makes RS256 the default every provider supports. */
        APR_ARRAY_PUSH(algs, const char *) = "RS256";
    }
    else {
        json_array_foreach(arr, i, item)
        {
            const char *alg = json_string_value(item);
            if (bff_jose_alg_supported(alg)) {
                APR_ARRAY_PUSH(algs, const char *) = apr_pstrdup(p, alg);
            }
        }
    }
    if (algs->nelts == 0) {
        return meta_fail(err, "provider metadata: no supported ID token signing algorithm "
                              "in id_token_signing_alg_values_supported");
    }
    APR_ARRAY_PUSH(algs, const char *) = NULL;
    m->id_token_algs = (const char **)algs->elts;
    return APR_SUCCESS;
}

static apr_status_t meta_pkce(apr_pool_t *p, json_t *doc, bff_oidc_meta_t *m, const char **err)
{
    json_t *arr, *item;
    size_t i;
    apr_status_t rv;

    if (APR_SUCCESS
        != (rv = opt_string_array(p, doc, "code_challenge_methods_supported", &arr, err))) {
        return rv;
    }
    if (!arr) {
        /* Not advertised: we send S256 anyway (RFC 9700 2.1.1). */
        m->pkce_s256 = 1;
        return APR_SUCCESS;
    }
    json_array_foreach(arr, i, item)
    {
        if (!strcmp(json_string_value(item), "S256")) {
            m->pkce_s256 = 1;
        }
    }
    if (!m->pkce_s256) {
        return meta_fail(err, "provider metadata: code_challenge_methods_supported "
                              "does not list S256");
    }
    return APR_SUCCESS;
}

/* token_endpoint_auth_signing_alg_values_supported, kept as listed: which of
 * them private_key_jwt can use depends on the key (bff_jws_sign.c). Only
 * private_key_jwt reads it, so a malformed one does not fail discovery for
 * the other methods: it reads as an empty list (private_key_jwt then fails
 * at its call, saying so). */
static void meta_token_auth_algs(apr_pool_t *p, json_t *doc, bff_oidc_meta_t *m)
{
    json_t *arr = NULL, *item;
    apr_array_header_t *algs;
    const char *ignored;
    size_t i;

    if (APR_SUCCESS
        != opt_string_array(p, doc, "token_endpoint_auth_signing_alg_values_supported", &arr,
                            &ignored)) {
        arr = json_array(); /* empty: none usable */
    }
    else if (!arr) {
        return;
    }
    else {
        json_incref(arr);
    }
    algs = apr_array_make(p, (int)json_array_size(arr) + 1, sizeof(const char *));
    json_array_foreach(arr, i, item)
    {
        APR_ARRAY_PUSH(algs, const char *) = apr_pstrdup(p, json_string_value(item));
    }
    APR_ARRAY_PUSH(algs, const char *) = NULL;
    m->token_auth_algs = (const char *const *)algs->elts;
    json_decref(arr);
}

/* RFC 9126 5: the PAR endpoint (optional, https like every endpoint) and
 * whether the provider accepts authorization requests only through it. */
static apr_status_t meta_par(apr_pool_t *p, json_t *doc, int allow_http, bff_oidc_meta_t *m,
                             const char **err)
{
    apr_status_t rv;

    if (APR_SUCCESS
        != (rv = endpoint(p, doc, "pushed_authorization_request_endpoint", 0, allow_http,
                          &m->par_endpoint, err))) {
        return rv;
    }
    return opt_bool(p, doc, "require_pushed_authorization_requests", &m->require_par, err);
}

static apr_status_t meta_from_json(apr_pool_t *p, json_t *doc, const char *expected_issuer,
                                   int allow_http, bff_oidc_meta_t *m, const char **err)
{
    apr_status_t rv;

    if (APR_SUCCESS != (rv = opt_string(p, doc, "issuer", &m->issuer, err))) {
        return rv;
    }
    if (!m->issuer) {
        return meta_fail(err, "provider metadata: issuer is missing");
    }
    /* OIDC Discovery 4.3: exactly equal, no normalisation (a trailing slash
     * makes a different issuer). */
    if (!expected_issuer || strcmp(m->issuer, expected_issuer)) {
        return meta_fail(err, "provider metadata: issuer does not equal the configured issuer");
    }
    if (APR_SUCCESS
            != (rv = endpoint(p, doc, "authorization_endpoint", 1, allow_http,
                              &m->authorization_endpoint, err))
        || APR_SUCCESS
               != (rv = endpoint(p, doc, "token_endpoint", 1, allow_http, &m->token_endpoint, err))
        || APR_SUCCESS != (rv = endpoint(p, doc, "jwks_uri", 1, allow_http, &m->jwks_uri, err))
        || APR_SUCCESS
               != (rv = endpoint(p, doc, "userinfo_endpoint", 0, allow_http, &m->userinfo_endpoint,
                                 err))
        || APR_SUCCESS
               != (rv = endpoint(p, doc, "end_session_endpoint", 0, allow_http,
                                 &m->end_session_endpoint, err))
        || APR_SUCCESS
               != (rv = endpoint(p, doc, "revocation_endpoint", 0, allow_http,
                                 &m->revocation_endpoint, err))) {
        return rv;
    }
    if (APR_SUCCESS
            != (rv = opt_bool(p, doc, "authorization_response_iss_parameter_supported",
                              &m->iss_parameter_supported, err))
        || APR_SUCCESS
               != (rv = opt_bool(p, doc, "backchannel_logout_supported",
                                 &m->backchannel_logout_supported, err))
        || APR_SUCCESS
               != (rv = opt_bool(p, doc, "backchannel_logout_session_supported",
                                 &m->backchannel_logout_session_supported, err))) {
        return rv;
    }
    if (APR_SUCCESS != (rv = meta_algs(p, doc, m, err))
        || APR_SUCCESS != (rv = meta_par(p, doc, allow_http, m, err))) {
        return rv;
    }
    meta_token_auth_algs(p, doc, m);
    return meta_pkce(p, doc, m, err);
}

apr_status_t bff_oidc_meta_parse(apr_pool_t *p, const char *json, apr_size_t len,
                                 const char *expected_issuer, int allow_http,
                                 bff_oidc_meta_t **meta, const char **err)
{
    json_t *doc;
    json_error_t jerr;
    bff_oidc_meta_t *m;
    apr_status_t rv;

    *meta = NULL;
    *err = NULL;
    if (!json) {
        return meta_fail(err, "provider metadata: empty document");
    }
    /* Duplicate names could make us and another parser disagree. */
    doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        return meta_fail(err, "provider metadata: not valid JSON");
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return meta_fail(err, "provider metadata: not a JSON object");
    }
    m = apr_pcalloc(p, sizeof(*m));
    rv = meta_from_json(p, doc, expected_issuer, allow_http, m, err);
    json_decref(doc);
    if (rv == APR_SUCCESS) {
        *meta = m;
    }
    return rv;
}

char *bff_oidc_discovery_url(apr_pool_t *p, const char *issuer)
{
    apr_size_t n;

    if (!issuer) {
        return NULL;
    }
    n = strlen(issuer);
    if (n && issuer[n - 1] == '/') {
        n--;
    }
    return apr_pstrcat(p, apr_pstrmemdup(p, issuer, n), WELL_KNOWN, NULL);
}

/* ---------------------------------------------------------------------- */
/* PKCE (RFC 7636) */

char *bff_oidc_pkce_verifier(apr_pool_t *p)
{
    /* 32 bytes -> 43 base64url characters, the RFC's recommendation. */
    return bff_util_random_token(p, 32);
}

char *bff_oidc_pkce_challenge(apr_pool_t *p, const char *verifier)
{
    unsigned char md[32];
    char *out;

    if (!verifier || APR_SUCCESS != bff_util_sha256(verifier, strlen(verifier), md)) {
        return NULL;
    }
    out = bff_util_b64url_encode(p, md, sizeof(md));
    OPENSSL_cleanse(md, sizeof(md));
    return out;
}

/* ---------------------------------------------------------------------- */
/* Authorization request */

static const char *const authz_reserved[] = {
    "response_type", "client_id", "redirect_uri",   "scope",
    "state",         "nonce",     "code_challenge", "code_challenge_method",
    "response_mode", "request",   "request_uri",    NULL
};

static int authz_is_reserved(const char *name)
{
    int i;

    /* Case-insensitive: a provider that folds case must not see a second
     * "State" that it might prefer over ours. */
    for (i = 0; authz_reserved[i]; i++) {
        if (!strcasecmp(name, authz_reserved[i])) {
            return 1;
        }
    }
    return 0;
}

static void push_param(apr_pool_t *p, apr_array_header_t *parts, const char *name,
                       const char *value)
{
    if (parts->nelts) {
        APR_ARRAY_PUSH(parts, const char *) = "&";
    }
    APR_ARRAY_PUSH(parts, const char *) = bff_util_url_encode(p, name);
    APR_ARRAY_PUSH(parts, const char *) = "=";
    APR_ARRAY_PUSH(parts, const char *) = bff_util_url_encode(p, value);
}

static const char *kv_name(apr_pool_t *p, const char *kv)
{
    const char *eq = strchr(kv, '=');

    return eq ? apr_pstrmemdup(p, kv, (apr_size_t)(eq - kv)) : kv;
}

/* Whether an extra (BFFAuthParams) parameter has this name. */
static int extra_has(apr_pool_t *p, const apr_array_header_t *extra, const char *name)
{
    int i;

    for (i = 0; extra && i < extra->nelts; i++) {
        const char *kv = APR_ARRAY_IDX(extra, i, const char *);
        if (kv && !strcasecmp(kv_name(p, kv), name)) {
            return 1;
        }
    }
    return 0;
}

/* The SPA's login parameters come last and never override: the
 * configuration's fixed value wins, and a provider never sees one name
 * twice (which one it would take is not defined). */
static void push_login_params(apr_pool_t *p, apr_array_header_t *parts, const bff_oidc_authz_t *req)
{
    int i;

    for (i = 0; req->login && i < req->login->nelts; i++) {
        const char *kv = APR_ARRAY_IDX(req->login, i, const char *);
        const char *name, *eq;

        if (!kv || !(eq = strchr(kv, '='))) {
            continue;
        }
        name = kv_name(p, kv);
        if (!*name || authz_is_reserved(name) || extra_has(p, req->extra, name)) {
            continue;
        }
        push_param(p, parts, name, eq + 1);
    }
}

/* "?", "&" or "" to append a query to an endpoint that may have one. */
static const char *query_sep(const char *ep)
{
    apr_size_t n = strlen(ep);

    if (!strchr(ep, '?')) {
        return "?";
    }
    if (ep[n - 1] == '?' || ep[n - 1] == '&') {
        return "";
    }
    return "&";
}

static int authz_req_ok(const bff_oidc_meta_t *meta, const bff_oidc_authz_t *req)
{
    return meta && req && meta->authorization_endpoint && req->client_id && req->redirect_uri
           && req->state && req->nonce && req->code_challenge;
}

/* The request's parameters, encoded; client_id left out for a PAR form,
 * whose client part adds it. */
static char *authz_query(apr_pool_t *p, const bff_oidc_authz_t *req, int with_client_id)
{
    apr_array_header_t *parts;
    int i;

    parts = apr_array_make(p, 48, sizeof(const char *));
    push_param(p, parts, "response_type", "code");
    if (with_client_id) {
        push_param(p, parts, "client_id", req->client_id);
    }
    push_param(p, parts, "redirect_uri", req->redirect_uri);
    push_param(p, parts, "scope", req->scope ? req->scope : "openid");
    push_param(p, parts, "state", req->state);
    push_param(p, parts, "nonce", req->nonce);
    push_param(p, parts, "code_challenge", req->code_challenge);
    push_param(p, parts, "code_challenge_method", "S256");

    for (i = 0; req->extra && i < req->extra->nelts; i++) {
        const char *kv = APR_ARRAY_IDX(req->extra, i, const char *);
        const char *eq, *name, *value;

        if (!kv) {
            continue;
        }
        eq = strchr(kv, '=');
        name = eq ? apr_pstrmemdup(p, kv, (apr_size_t)(eq - kv)) : kv;
        value = eq ? eq + 1 : "";
        if (!*name || authz_is_reserved(name)) {
            continue;
        }
        push_param(p, parts, name, value);
    }
    push_login_params(p, parts, req);
    return apr_array_pstrcat(p, parts, '\0');
}

char *bff_oidc_authz_url(apr_pool_t *p, const bff_oidc_meta_t *meta, const bff_oidc_authz_t *req)
{
    const char *ep;

    if (!authz_req_ok(meta, req)) {
        return NULL;
    }
    ep = meta->authorization_endpoint;
    return apr_pstrcat(p, ep, query_sep(ep), authz_query(p, req, 1), NULL);
}

/* ---------------------------------------------------------------------- */
/* Token endpoint */

/* Error codes and descriptions come from the provider and end up in logs
 * and pages: keep RFC 6749's printable ASCII, bounded. */
static const char *clean_text(apr_pool_t *p, json_t *v, apr_size_t max)
{
    const char *s;
    char *out;
    apr_size_t n, i;

    if (!json_is_string(v)) {
        return NULL;
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (n > max) {
        n = max;
    }
    out = apr_pstrmemdup(p, s, n);
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)out[i];
        if (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\') {
            out[i] = '?';
        }
    }
    return out;
}

/* An OAuth error response (RFC 6749 5.2): its code, required, and its
 * description, both cleaned for the log. APR_EINVAL without a code. */
static apr_status_t oauth_error(apr_pool_t *p, json_t *doc, const char **error,
                                const char **description)
{
    json_t *ev = json_object_get(doc, "error");

    if (!json_is_string(ev) || json_string_length(ev) == 0) {
        return APR_EINVAL;
    }
    *error = clean_text(p, ev, 128);
    *description = clean_text(p, json_object_get(doc, "error_description"), 512);
    return APR_SUCCESS;
}

static apr_status_t tok_fail(apr_pool_t *p, const bff_http_resp_t *resp, const char *why,
                             const char **err)
{
    *err = apr_psprintf(p, "token endpoint answered HTTP %ld%s%s", resp->status, why ? ": " : "",
                        why ? why : "");
    return APR_EGENERAL;
}

/* Optional token string: absent or JSON null is absent, any other
 * non-string is refused. */
static int tok_opt_string(apr_pool_t *p, json_t *obj, const char *name, const char **out)
{
    json_t *v = json_object_get(obj, name);

    *out = NULL;
    if (!v || json_is_null(v)) {
        return 1;
    }
    if (!json_is_string(v)) {
        return 0;
    }
    *out = apr_pstrmemdup(p, json_string_value(v), json_string_length(v));
    return 1;
}

/* The access token goes into an Authorization header: RFC 6750's b64token
 * (1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="), so that a
 * provider's CR/LF can never become a header of the proxied request. */
static int b64token_ok(const char *s, apr_size_t n)
{
    apr_size_t i = 0;

    /* s[i] != 0 first: strchr() finds the terminator of its own string. */
    while (i < n && s[i] && (apr_isalnum(s[i]) || strchr("-._~+/", s[i]))) {
        ++i;
    }
    if (i == 0) {
        return 0;
    }
    while (i < n && s[i] == '=') {
        ++i;
    }
    return i == n;
}

/* A refresh token is only ever sent back, form-encoded, to the provider:
 * RFC 6749's VSCHAR (%x20-7E, space included), nothing else, so no control
 * character or NUL ever sits in a session record. */
static int vchar_ok(const char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; ++i) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

static apr_status_t tokens_from_json(apr_pool_t *p, const bff_http_resp_t *resp, json_t *doc,
                                     bff_oidc_tokens_t *t, const char **err)
{
    json_t *v;

    v = json_object_get(doc, "access_token");
    if (!json_is_string(v) || json_string_length(v) == 0) {
        return tok_fail(p, resp, "access_token missing or not a string", err);
    }
    if (!b64token_ok(json_string_value(v), json_string_length(v))) {
        return tok_fail(p, resp, "access_token has characters outside RFC 6750 b64token", err);
    }
    t->access_token = apr_pstrmemdup(p, json_string_value(v), json_string_length(v));

    v = json_object_get(doc, "token_type");
    if (!json_is_string(v)) {
        return tok_fail(p, resp, "token_type missing or not a string", err);
    }
    /* We attach the token as Bearer; DPoP or MAC tokens would need proofs. */
    if (strcasecmp(json_string_value(v), "Bearer")) {
        return tok_fail(p, resp, "token_type is not Bearer", err);
    }
    t->token_type = "Bearer";

    if (!tok_opt_string(p, doc, "refresh_token", &t->refresh_token)) {
        return tok_fail(p, resp, "refresh_token is not a string", err);
    }
    v = json_object_get(doc, "refresh_token");
    if (t->refresh_token && !vchar_ok(json_string_value(v), json_string_length(v))) {
        return tok_fail(p, resp, "refresh_token has characters outside visible ASCII", err);
    }
    if (!tok_opt_string(p, doc, "id_token", &t->id_token)) {
        return tok_fail(p, resp, "id_token is not a string", err);
    }
    if (!tok_opt_string(p, doc, "scope", &t->scope)) {
        return tok_fail(p, resp, "scope is not a string", err);
    }

    v = json_object_get(doc, "expires_in");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            return tok_fail(p, resp, "expires_in is not a non-negative integer", err);
        }
        t->expires_in = (apr_int64_t)json_integer_value(v);
        if (t->expires_in > BFF_OIDC_MAX_EXPIRES_IN) {
            t->expires_in = BFF_OIDC_MAX_EXPIRES_IN;
        }
    }
    return APR_SUCCESS;
}

apr_status_t bff_oidc_token_response_parse(apr_pool_t *p, const bff_http_resp_t *resp,
                                           bff_oidc_tokens_t **tokens, const char **err)
{
    json_t *doc = NULL;
    json_error_t jerr;
    bff_oidc_tokens_t *t;
    apr_status_t rv;

    *tokens = NULL;
    *err = NULL;
    if (!resp) {
        *err = "token endpoint: no response";
        return APR_EGENERAL;
    }
    if (resp->status != 200 && (resp->status < 400 || resp->status > 499)) {
        return tok_fail(p, resp, NULL, err);
    }
    if (resp->body) {
        doc = json_loadb(resp->body, resp->len, JSON_REJECT_DUPLICATES, &jerr);
    }
    if (!json_is_object(doc)) {
        rv = tok_fail(p, resp, "body is not a JSON object", err);
        goto leave;
    }
    t = apr_pcalloc(p, sizeof(*t));
    if (resp->status != 200) {
        if (APR_SUCCESS != oauth_error(p, doc, &t->error, &t->error_description)) {
            rv = tok_fail(p, resp, "no OAuth error code", err);
            goto leave;
        }
        *tokens = t;
        rv = APR_SUCCESS;
        goto leave;
    }
    if (APR_SUCCESS == (rv = tokens_from_json(p, resp, doc, t, err))) {
        *tokens = t;
    }
leave:
    json_decref(doc);
    return rv;
}

/* Appends name=value (value encoded) to a form being built in parts. */
static void form_add(apr_pool_t *p, apr_array_header_t *parts, const char *name, const char *value)
{
    if (parts->nelts) {
        APR_ARRAY_PUSH(parts, char *) = apr_pstrdup(p, "&");
    }
    APR_ARRAY_PUSH(parts, char *) = apr_pstrcat(p, name, "=", NULL);
    APR_ARRAY_PUSH(parts, char *) = bff_util_url_encode(p, value);
}

/* The form holds secrets (code, refresh token, client secret): every piece
 * is wiped once sent. */
static void form_wipe(apr_array_header_t *parts, char *form)
{
    int i;

    for (i = 0; i < parts->nelts; i++) {
        char *s = APR_ARRAY_IDX(parts, i, char *);
        if (s) {
            OPENSSL_cleanse(s, strlen(s));
        }
    }
    OPENSSL_cleanse(form, strlen(form));
}

/* The provider's list, for a log line: "[]" when absent. */
static const char *alg_list(apr_pool_t *p, const char *const *algs)
{
    const char *out = NULL;
    int i;

    for (i = 0; algs && algs[i] && i < 16; ++i) {
        out = out ? apr_pstrcat(p, out, " ", algs[i], NULL) : algs[i];
    }
    return out ? out : "none";
}

apr_status_t bff_oidc_client_assertion(apr_pool_t *p, const bff_oidc_meta_t *meta,
                                       const bff_oidc_client_t *client, apr_int64_t now, char **jwt,
                                       const char **err)
{
    const char *alg, *jti;
    json_t *claims;
    apr_status_t rv;

    *jwt = NULL;
    if (!meta || !meta->issuer || !client || !client->key || !client->client_id) {
        *err = "client assertion: no key, client id or issuer";
        return APR_EINVAL;
    }
    if (!(alg = bff_jws_sign_choose_alg(client->key, meta->token_auth_algs))) {
        *err = apr_psprintf(p,
                            "client assertion: the provider takes none of the algorithms an %s "
                            "key signs (token_endpoint_auth_signing_alg_values_supported: %s)",
                            bff_jws_sign_key_desc(client->key), alg_list(p, meta->token_auth_algs));
        return APR_EINVAL;
    }
    /* 32 random bytes: a jti the provider's replay check never sees twice. */
    if (!(jti = bff_util_random_token(p, 32))) {
        *err = "client assertion: no random jti";
        return APR_EGENERAL;
    }
    claims = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "iss", client->client_id, "sub",
                       client->client_id, "aud", meta->issuer, "jti", jti, "iat", (json_int_t)now,
                       "exp", (json_int_t)(now + BFF_OIDC_ASSERTION_TTL));
    if (!claims) {
        *err = "client assertion: out of memory";
        return APR_ENOMEM;
    }
    rv = bff_jws_sign_compact(p, client->key, alg, "JWT", claims, jwt, err);
    json_decref(claims);
    return rv;
}

/* The client has what its authentication method needs. what names the
 * endpoint in *err. */
static apr_status_t client_ready(const bff_oidc_client_t *client, const char *what, apr_pool_t *p,
                                 const char **err)
{
    if (!client || !client->client_id) {
        *err = apr_psprintf(p, "%s: client id not configured", what);
        return APR_EINVAL;
    }
    if (client->auth == BFF_CLIENT_AUTH_PRIVATE_KEY_JWT ? !client->key : !client->client_secret) {
        *err = apr_psprintf(p, "%s: client %s not configured", what,
                            client->auth == BFF_CLIENT_AUTH_PRIVATE_KEY_JWT ? "key" : "secret");
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

/* Client authentication (RFC 6749 2.3.1, RFC 7523 2.2), one place for
 * every endpoint that authenticates the client: adds the client's part of
 * the form, and says whether to send Basic credentials. */
static apr_status_t client_auth(apr_pool_t *p, const bff_oidc_meta_t *meta,
                                const bff_oidc_client_t *client, apr_array_header_t *parts,
                                const char **basic_user, const char **basic_pass, const char **err)
{
    char *jwt = NULL;
    apr_status_t rv;

    *basic_user = *basic_pass = NULL;
    /* client_id in the body for every method: harmless (RFC 6749 allows it
     * for Basic, RFC 7523 3 for assertions) and some providers want it. */
    form_add(p, parts, "client_id", client->client_id);
    switch (client->auth) {
    case BFF_CLIENT_AUTH_BASIC:
        *basic_user = client->client_id;
        *basic_pass = client->client_secret;
        return APR_SUCCESS;
    case BFF_CLIENT_AUTH_POST:
        form_add(p, parts, "client_secret", client->client_secret);
        return APR_SUCCESS;
    case BFF_CLIENT_AUTH_PRIVATE_KEY_JWT:
        if (APR_SUCCESS
            != (rv = bff_oidc_client_assertion(p, meta, client, bff_util_now(), &jwt, err))) {
            return rv;
        }
        form_add(p, parts, "client_assertion_type",
                 "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        form_add(p, parts, "client_assertion", jwt);
        OPENSSL_cleanse(jwt, strlen(jwt));
        return APR_SUCCESS;
    }
    *err = "unknown client authentication method";
    return APR_EINVAL;
}

/* Adds the client part of the form (client_auth) and posts it; the form
 * and its pieces are wiped afterwards. what names the endpoint in *err.
 * Every endpoint that authenticates the client posts through here. */
static apr_status_t client_post(apr_pool_t *p, const bff_http_opts_t *http,
                                const bff_oidc_meta_t *meta, const char *url, const char *what,
                                const bff_oidc_client_t *client, apr_array_header_t *parts,
                                bff_http_resp_t **resp, const char **err)
{
    const char *herr = NULL, *user, *pass;
    char *form;
    apr_status_t rv;

    *resp = NULL;
    if (APR_SUCCESS != (rv = client_ready(client, what, p, err))) {
        return rv;
    }
    if (APR_SUCCESS != (rv = client_auth(p, meta, client, parts, &user, &pass, &herr))) {
        form_wipe(parts, apr_array_pstrcat(p, parts, '\0'));
        *err = apr_psprintf(p, "%s: %s", what, herr);
        return rv;
    }
    form = apr_array_pstrcat(p, parts, '\0');
    rv = bff_http_post_form(p, http, url, form, user, pass, resp, &herr);
    form_wipe(parts, form);
    if (rv != APR_SUCCESS) {
        *resp = NULL;
        *err = apr_psprintf(p, "%s: %s", what, herr ? herr : "request failed");
    }
    return rv;
}

/* The raw response may hold tokens; only parsed copies stay. bff_http
 * allocated it in p for us, so writing to it is ours to do. */
static void resp_wipe(bff_http_resp_t *resp)
{
    if (resp && resp->body) {
        OPENSSL_cleanse((void *)(apr_uintptr_t)resp->body, resp->len);
    }
}

static apr_status_t token_call(apr_pool_t *p, const bff_http_opts_t *http,
                               const bff_oidc_meta_t *meta, const bff_oidc_client_t *client,
                               apr_array_header_t *parts, bff_oidc_tokens_t **tokens,
                               const char **err)
{
    bff_http_resp_t *resp = NULL;
    apr_status_t rv;

    if (APR_SUCCESS
        != (rv = client_post(p, http, meta, meta->token_endpoint, "token endpoint", client, parts,
                             &resp, err))) {
        return rv;
    }
    rv = bff_oidc_token_response_parse(p, resp, tokens, err);
    resp_wipe(resp);
    return rv;
}

static apr_status_t token_args_ok(apr_pool_t *p, const bff_oidc_meta_t *meta,
                                  const bff_oidc_client_t *client, bff_oidc_tokens_t **tokens,
                                  const char **err)
{
    *tokens = NULL;
    *err = NULL;
    if (!meta || !meta->token_endpoint) {
        *err = "token endpoint: no provider metadata";
        return APR_EINVAL;
    }
    return client_ready(client, "token endpoint", p, err);
}

apr_status_t bff_oidc_exchange_code(apr_pool_t *p, const bff_http_opts_t *http,
                                    const bff_oidc_meta_t *meta, const bff_oidc_client_t *client,
                                    const char *code, const char *code_verifier,
                                    const char *redirect_uri, bff_oidc_tokens_t **tokens,
                                    const char **err)
{
    apr_array_header_t *parts;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = token_args_ok(p, meta, client, tokens, err))) {
        return rv;
    }
    if (!code || !*code || !code_verifier || !redirect_uri) {
        *err = "token endpoint: code, code_verifier or redirect_uri missing";
        return APR_EINVAL;
    }
    parts = apr_array_make(p, 24, sizeof(char *));
    form_add(p, parts, "grant_type", "authorization_code");
    form_add(p, parts, "code", code);
    form_add(p, parts, "redirect_uri", redirect_uri);
    form_add(p, parts, "code_verifier", code_verifier);
    return token_call(p, http, meta, client, parts, tokens, err);
}

apr_status_t bff_oidc_refresh(apr_pool_t *p, const bff_http_opts_t *http,
                              const bff_oidc_meta_t *meta, const bff_oidc_client_t *client,
                              const char *refresh_token, bff_oidc_tokens_t **tokens,
                              const char **err)
{
    return bff_oidc_refresh_narrow(p, http, meta, client, refresh_token, NULL, NULL, tokens, err);
}

apr_status_t bff_oidc_refresh_narrow(apr_pool_t *p, const bff_http_opts_t *http,
                                     const bff_oidc_meta_t *meta, const bff_oidc_client_t *client,
                                     const char *refresh_token, const char *resource,
                                     const char *scope, bff_oidc_tokens_t **tokens,
                                     const char **err)
{
    apr_array_header_t *parts;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = token_args_ok(p, meta, client, tokens, err))) {
        return rv;
    }
    if (!refresh_token || !*refresh_token) {
        *err = "token endpoint: no refresh token";
        return APR_EINVAL;
    }
    parts = apr_array_make(p, 16, sizeof(char *));
    form_add(p, parts, "grant_type", "refresh_token");
    form_add(p, parts, "refresh_token", refresh_token);
    if (resource) {
        form_add(p, parts, "resource", resource);
    }
    if (scope) {
        form_add(p, parts, "scope", scope);
    }
    return token_call(p, http, meta, client, parts, tokens, err);
}

/* grant_type=client_credentials (RFC 6749 4.4): the client's own token,
 * no user involved; scope only when given. */
apr_status_t bff_oidc_client_credentials(apr_pool_t *p, const bff_http_opts_t *http,
                                         const bff_oidc_meta_t *meta,
                                         const bff_oidc_client_t *client, const char *scope,
                                         bff_oidc_tokens_t **tokens, const char **err)
{
    apr_array_header_t *parts;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = token_args_ok(p, meta, client, tokens, err))) {
        return rv;
    }
    parts = apr_array_make(p, 16, sizeof(char *));
    form_add(p, parts, "grant_type", "client_credentials");
    if (scope && *scope) {
        form_add(p, parts, "scope", scope);
    }
    return token_call(p, http, meta, client, parts, tokens, err);
}

/* ---------------------------------------------------------------------- */
/* Logout: revocation (RFC 7009) and RP-initiated logout */

/* The revocation form before the client part: token, then the hint. */
static apr_array_header_t *revoke_form(apr_pool_t *p, const char *token,
                                       const char *token_type_hint)
{
    apr_array_header_t *parts = apr_array_make(p, 12, sizeof(char *));

    form_add(p, parts, "token", token);
    if (token_type_hint && *token_type_hint) {
        form_add(p, parts, "token_type_hint", token_type_hint);
    }
    return parts;
}

apr_status_t bff_oidc_revoke(apr_pool_t *p, const bff_http_opts_t *http,
                             const bff_oidc_meta_t *meta, const bff_oidc_client_t *client,
                             const char *token, const char *token_type_hint, const char **err)
{
    bff_http_resp_t *resp = NULL;
    apr_status_t rv;

    *err = NULL;
    if (!meta || !meta->revocation_endpoint) {
        *err = "revocation endpoint: the provider offers none";
        return APR_ENOTIMPL;
    }
    if (APR_SUCCESS != (rv = client_ready(client, "revocation endpoint", p, err))) {
        return rv;
    }
    if (!token || !*token) {
        *err = "revocation endpoint: no token to revoke";
        return APR_EINVAL;
    }
    if (APR_SUCCESS
        != (rv = client_post(p, http, meta, meta->revocation_endpoint, "revocation endpoint",
                             client, revoke_form(p, token, token_type_hint), &resp, err))) {
        return rv;
    }
    resp_wipe(resp);
    /* RFC 7009 2.2: 200 whether or not the token was valid; anything else
     * (400 unsupported_token_type, 503 with Retry-After, ...) the caller
     * may log, but the local logout goes on regardless. */
    if (resp->status != 200) {
        *err = apr_psprintf(p, "revocation endpoint answered HTTP %ld", resp->status);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

char *bff_oidc_end_session_url(apr_pool_t *p, const bff_oidc_meta_t *meta,
                               const char *id_token_hint, const char *client_id,
                               const char *post_logout_redirect_uri)
{
    char *url;

    if (!meta || !meta->end_session_endpoint) {
        return NULL;
    }
    url = apr_pstrdup(p, meta->end_session_endpoint);
    if (url && id_token_hint) {
        url = bff_url_add_param(p, url, "id_token_hint", id_token_hint);
    }
    if (url && client_id) {
        url = bff_url_add_param(p, url, "client_id", client_id);
    }
    if (url && post_logout_redirect_uri) {
        url = bff_url_add_param(p, url, "post_logout_redirect_uri", post_logout_redirect_uri);
    }
    return url;
}

/* ---------------------------------------------------------------------- */
/* Login parameters from the SPA (OIDC Core 3.1.2.1) */

static const struct {
    int bit;
    const char *name;
} login_params[] = { { BFF_LOGIN_PROMPT, "prompt" },         { BFF_LOGIN_LOGIN_HINT, "login_hint" },
                     { BFF_LOGIN_ACR_VALUES, "acr_values" }, { BFF_LOGIN_UI_LOCALES, "ui_locales" },
                     { BFF_LOGIN_MAX_AGE, "max_age" },       { 0, NULL } };

int bff_oidc_login_param_bit(const char *name)
{
    int i;

    for (i = 0; name && login_params[i].name; i++) {
        if (!strcmp(name, login_params[i].name)) {
            return login_params[i].bit;
        }
    }
    return 0;
}

const char *bff_oidc_login_param_name(int bit)
{
    int i;

    for (i = 0; login_params[i].name; i++) {
        if (bit == login_params[i].bit) {
            return login_params[i].name;
        }
    }
    return NULL;
}

static apr_status_t lp_fail(const char **why, const char *msg)
{
    *why = msg;
    return APR_EINVAL;
}

/* Space-separated tokens: no leading, trailing or double space. Each token
 * is passed to ok() with its length. */
static apr_status_t lp_tokens(const char *v, int (*ok)(const char *, apr_size_t), const char **why)
{
    const char *t = v, *sp;

    for (;;) {
        apr_size_t n;

        sp = strchr(t, ' ');
        n = sp ? (apr_size_t)(sp - t) : strlen(t);
        if (n == 0) {
            return lp_fail(why, "malformed: an empty item (leading, trailing or double space)");
        }
        if (!ok(t, n)) {
            return lp_fail(why, "malformed: an item with characters or a length not allowed");
        }
        if (!sp) {
            return APR_SUCCESS;
        }
        t = sp + 1;
    }
}

static const char *const prompt_values[] = { "none", "login", "consent", "select_account", NULL };

static int prompt_index(const char *t, apr_size_t n)
{
    int i;

    for (i = 0; prompt_values[i]; i++) {
        if (strlen(prompt_values[i]) == n && !strncmp(t, prompt_values[i], n)) {
            return i;
        }
    }
    return -1;
}

static int prompt_token_ok(const char *t, apr_size_t n)
{
    return prompt_index(t, n) >= 0;
}

/* OIDC Core 3.1.2.1: the four values only, each once, none alone (a
 * provider answers none with anything else with an error). */
static apr_status_t check_prompt(const char *v, const char **why)
{
    const char *t = v, *sp;
    int seen = 0, count = 0, i;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = lp_tokens(v, prompt_token_ok, why))) {
        *why = "not one or more of none, login, consent, select_account";
        return rv;
    }
    for (; t; t = sp ? sp + 1 : NULL) {
        sp = strchr(t, ' ');
        i = prompt_index(t, sp ? (apr_size_t)(sp - t) : strlen(t));
        if (seen & (1 << i)) {
            return lp_fail(why, "malformed: a value repeated");
        }
        seen |= 1 << i;
        ++count;
    }
    if ((seen & 1) && count > 1) {
        return lp_fail(why, "malformed: none together with another value");
    }
    return APR_SUCCESS;
}

static int locale_ok(const char *t, apr_size_t n)
{
    apr_size_t i;

    if (n > 35) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!apr_isalnum(t[i]) && t[i] != '-') {
            return 0;
        }
    }
    return 1;
}

static int acr_ok(const char *t, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') {
            return 0;
        }
    }
    return 1;
}

/* An e-mail address, a phone number or an opaque hint: printable ASCII,
 * nothing that could be markup or a quote on a provider's page. */
static apr_status_t check_hint(const char *v, apr_size_t n, const char **why)
{
    apr_size_t i;

    if (v[0] == ' ' || v[n - 1] == ' ') {
        return lp_fail(why, "malformed: a leading or trailing space");
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e || strchr("\"\\<>", c)) {
            return lp_fail(
                why, "malformed: characters other than printable ASCII (or one of \" \\ < >)");
        }
    }
    return APR_SUCCESS;
}

static apr_status_t check_max_age(const char *v, apr_size_t n, const char **why)
{
    apr_size_t i;

    if (n > BFF_LOGIN_MAX_AGE_DIGITS) {
        return lp_fail(why, "longer than 9 digits");
    }
    for (i = 0; i < n; i++) {
        if (!apr_isdigit(v[i])) {
            return lp_fail(why, "not a number of seconds (digits only)");
        }
    }
    return APR_SUCCESS;
}

apr_status_t bff_oidc_login_param_check(int bit, const char *value, const char **why)
{
    apr_size_t n;

    *why = NULL;
    if (!value || !*value) {
        return lp_fail(why, "empty");
    }
    if ((n = strlen(value)) > BFF_LOGIN_PARAM_MAX) {
        return lp_fail(why, "longer than 256 bytes");
    }
    switch (bit) {
    case BFF_LOGIN_PROMPT:
        return check_prompt(value, why);
    case BFF_LOGIN_LOGIN_HINT:
        return check_hint(value, n, why);
    case BFF_LOGIN_ACR_VALUES:
        return lp_tokens(value, acr_ok, why);
    case BFF_LOGIN_UI_LOCALES:
        return lp_tokens(value, locale_ok, why);
    case BFF_LOGIN_MAX_AGE:
        return check_max_age(value, n, why);
    default:
        return lp_fail(why, "not a login parameter");
    }
}

int bff_oidc_prompt_is_none(const char *prompt)
{
    const char *t = prompt, *sp;

    for (; t && *t; t = sp ? sp + 1 : NULL) {
        sp = strchr(t, ' ');
        if ((sp ? (apr_size_t)(sp - t) : strlen(t)) == 4 && !strncmp(t, "none", 4)) {
            return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Pushed authorization requests (RFC 9126) */

#define PAR_REQUEST_URI_MAX 2048

static apr_status_t par_fail(apr_pool_t *p, const bff_http_resp_t *resp, const char *why,
                             const char **err)
{
    *err = apr_psprintf(p, "PAR endpoint answered HTTP %ld%s%s", resp->status, why ? ": " : "",
                        why ? why : "");
    return APR_EGENERAL;
}

/* The request_uri goes into the browser's redirect: visible ASCII only
 * (it is URL-encoded there as well). */
static int request_uri_ok(json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0
           && json_string_length(v) <= PAR_REQUEST_URI_MAX
           && acr_ok(json_string_value(v), json_string_length(v));
}

static apr_status_t par_from_json(apr_pool_t *p, const bff_http_resp_t *resp, json_t *doc,
                                  bff_oidc_par_t *par, const char **err)
{
    json_t *v = json_object_get(doc, "request_uri");

    if (!request_uri_ok(v)) {
        return par_fail(p, resp, "request_uri missing, empty, too long or not visible ASCII", err);
    }
    par->request_uri = apr_pstrmemdup(p, json_string_value(v), json_string_length(v));
    v = json_object_get(doc, "expires_in");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            return par_fail(p, resp, "expires_in is not a positive integer", err);
        }
        par->expires_in = (apr_int64_t)json_integer_value(v);
    }
    return APR_SUCCESS;
}

apr_status_t bff_oidc_par_response_parse(apr_pool_t *p, const bff_http_resp_t *resp,
                                         bff_oidc_par_t **par, const char **err)
{
    json_t *doc = NULL;
    json_error_t jerr;
    bff_oidc_par_t *out;
    apr_status_t rv;
    int ok = resp && (resp->status == 201 || resp->status == 200);

    *par = NULL;
    *err = NULL;
    if (!resp) {
        *err = "PAR endpoint: no response";
        return APR_EGENERAL;
    }
    if (!ok && (resp->status < 400 || resp->status > 499)) {
        return par_fail(p, resp, NULL, err);
    }
    if (resp->body) {
        doc = json_loadb(resp->body, resp->len, JSON_REJECT_DUPLICATES, &jerr);
    }
    if (!json_is_object(doc)) {
        rv = par_fail(p, resp, "body is not a JSON object", err);
        goto leave;
    }
    out = apr_pcalloc(p, sizeof(*out));
    if (!ok) {
        if (APR_SUCCESS != oauth_error(p, doc, &out->error, &out->error_description)) {
            rv = par_fail(p, resp, "no OAuth error code", err);
            goto leave;
        }
        *par = out;
        rv = APR_SUCCESS;
        goto leave;
    }
    if (APR_SUCCESS == (rv = par_from_json(p, resp, doc, out, err))) {
        *par = out;
    }
leave:
    json_decref(doc);
    return rv;
}

apr_status_t bff_oidc_par_push(apr_pool_t *p, const bff_http_opts_t *http,
                               const bff_oidc_meta_t *meta, const bff_oidc_client_t *client,
                               const bff_oidc_authz_t *req, bff_oidc_par_t **par, const char **err)
{
    apr_array_header_t *parts;
    bff_http_resp_t *resp = NULL;
    apr_status_t rv;

    *par = NULL;
    *err = NULL;
    if (!meta || !meta->par_endpoint) {
        *err = "PAR endpoint: the provider offers none";
        return APR_ENOTIMPL;
    }
    if (!authz_req_ok(meta, req)) {
        *err = "PAR endpoint: incomplete authorization request";
        return APR_EINVAL;
    }
    if (APR_SUCCESS != (rv = client_ready(client, "PAR endpoint", p, err))) {
        return rv;
    }
    /* One piece of the client_post form (client_id follows from there). */
    parts = apr_array_make(p, 8, sizeof(char *));
    APR_ARRAY_PUSH(parts, char *) = authz_query(p, req, 0);
    if (APR_SUCCESS
        != (rv = client_post(p, http, meta, meta->par_endpoint, "PAR endpoint", client, parts,
                             &resp, err))) {
        return rv;
    }
    return bff_oidc_par_response_parse(p, resp, par, err);
}

char *bff_oidc_par_authz_url(apr_pool_t *p, const bff_oidc_meta_t *meta, const char *client_id,
                             const char *request_uri)
{
    char *url;

    if (!meta || !meta->authorization_endpoint || !client_id || !request_uri) {
        return NULL;
    }
    url = bff_url_add_param(p, meta->authorization_endpoint, "client_id", client_id);
    return url ? bff_url_add_param(p, url, "request_uri", request_uri) : NULL;
}

/* Discovery from BFFProviderMetadataURL */

const char *bff_oidc_meta_issuer(apr_pool_t *p, const char *json, apr_size_t len)
{
    json_t *doc;
    const char *out;

    if (!json || !(doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL))) {
        return NULL;
    }
    out = json_is_object(doc) ? clean_text(p, json_object_get(doc, "issuer"), 256) : NULL;
    json_decref(doc);
    return out;
}
