/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* Unit tests for bff_oidc (discovery, PKCE, authorization URL, token
 * responses; code exchange, refresh and revocation against the loopback
 * HTTP/1.1 server of http_srv.c). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "unit.h"

#include "bff_http.h"
#include "bff_oidc.h"
#include "bff_url.h"
#include "http_srv.h"

#define ISS "https://op.example.com"

/* A good discovery document with one field replaced: pass NULL to keep
 * the default, "-" to drop the field, or the raw JSON value. */
typedef struct {
    const char *issuer, *authz, *token, *jwks, *userinfo, *end_session, *revocation;
    const char *iss_param, *bcl, *bcl_session, *algs, *pkce;
} doc_t;

static const char *field(apr_pool_t *p, const char *name, const char *val, const char *def)
{
    if (!val) {
        val = def;
    }
    if (!strcmp(val, "-")) {
        return "";
    }
    return apr_psprintf(p, "\"%s\": %s,", name, val);
}

static const char *make_doc(apr_pool_t *p, const doc_t *d)
{
    return apr_pstrcat(
        p, "{", field(p, "issuer", d->issuer, "\"" ISS "\""),
        field(p, "authorization_endpoint", d->authz, "\"" ISS "/authorize?tenant=a\""),
        field(p, "token_endpoint", d->token, "\"" ISS "/token\""),
        field(p, "jwks_uri", d->jwks, "\"" ISS "/jwks\""),
        field(p, "userinfo_endpoint", d->userinfo, "\"" ISS "/me\""),
        field(p, "end_session_endpoint", d->end_session, "\"" ISS "/logout\""),
        field(p, "revocation_endpoint", d->revocation, "\"" ISS "/revoke\""),
        field(p, "authorization_response_iss_parameter_supported", d->iss_param, "true"),
        field(p, "backchannel_logout_supported", d->bcl, "true"),
        field(p, "backchannel_logout_session_supported", d->bcl_session, "false"),
        field(p, "id_token_signing_alg_values_supported", d->algs,
              "[\"HS256\", \"RS256\", \"none\", \"ES256\", \"XX999\"]"),
        field(p, "code_challenge_methods_supported", d->pkce, "[\"plain\", \"S256\"]"),
        "\"response_types_supported\": [\"code\"]}", NULL);
}

static apr_status_t parse_doc(apr_pool_t *p, const doc_t *d, const char *expected, int allow_http,
                              bff_oidc_meta_t **m, const char **err)
{
    const char *json = make_doc(p, d);
    return bff_oidc_meta_parse(p, json, strlen(json), expected, allow_http, m, err);
}

static void expect_refused(apr_pool_t *p, const doc_t *d, const char *expected, int allow_http)
{
    bff_oidc_meta_t *m = (bff_oidc_meta_t *)1;
    const char *err = NULL;

    assert_int_equal(parse_doc(p, d, expected, allow_http, &m, &err), APR_EINVAL);
    assert_null(m);
    assert_non_null(err);
}

static void meta_good(void **state)
{
    apr_pool_t *p = *state;
    doc_t d = { 0 };
    bff_oidc_meta_t *m = NULL;
    const char *err = NULL;

    assert_int_equal(parse_doc(p, &d, ISS, 0, &m, &err), APR_SUCCESS);
    assert_non_null(m);
    assert_string_equal(m->issuer, ISS);
    assert_string_equal(m->authorization_endpoint, ISS "/authorize?tenant=a");
    assert_string_equal(m->token_endpoint, ISS "/token");
    assert_string_equal(m->jwks_uri, ISS "/jwks");
    assert_string_equal(m->userinfo_endpoint, ISS "/me");
    assert_string_equal(m->end_session_endpoint, ISS "/logout");
    assert_string_equal(m->revocation_endpoint, ISS "/revoke");
    assert_int_equal(m->iss_parameter_supported, 1);
    assert_int_equal(m->backchannel_logout_supported, 1);
    assert_int_equal(m->backchannel_logout_session_supported, 0);
    assert_int_equal(m->pkce_s256, 1);
    /* HS256, none and the unknown alg are dropped, order kept. */
    assert_non_null(m->id_token_algs);
    assert_string_equal(m->id_token_algs[0], "RS256");
    assert_string_equal(m->id_token_algs[1], "ES256");
    assert_null(m->id_token_algs[2]);
}

static void meta_defaults(void **state)
{
    apr_pool_t *p = *state;
    doc_t d = { .userinfo = "-",
                .end_session = "-",
                .revocation = "-",
                .iss_param = "-",
                .bcl = "-",
                .bcl_session = "-",
                .algs = "-",
                .pkce = "-" };
    bff_oidc_meta_t *m = NULL;
    const char *err = NULL;

    assert_int_equal(parse_doc(p, &d, ISS, 0, &m, &err), APR_SUCCESS);
    assert_null(m->userinfo_endpoint);
    assert_null(m->end_session_endpoint);
    assert_null(m->revocation_endpoint);
    assert_int_equal(m->iss_parameter_supported, 0);
    assert_int_equal(m->backchannel_logout_supported, 0);
    assert_int_equal(m->pkce_s256, 1);
    assert_string_equal(m->id_token_algs[0], "RS256");
    assert_null(m->id_token_algs[1]);
}

static void meta_issuer_mismatch(void **state)
{
    apr_pool_t *p = *state;
    doc_t d = { 0 };
    doc_t slash = { .issuer = "\"" ISS "/\"" };
    doc_t upper = { .issuer = "\"https://OP.example.com\"" };

    expect_refused(p, &d, ISS "/", 0);
    expect_refused(p, &slash, ISS, 0);
    expect_refused(p, &upper, ISS, 0);
    expect_refused(p, &d, "https://op.example.org", 0);
    expect_refused(p, &d, NULL, 0);
}

static void meta_http_endpoints(void **state)
{
    apr_pool_t *p = *state;
    doc_t remote = { .token = "\"http://op.example.com/token\"" };
    doc_t remote_opt = { .revocation = "\"http://op.example.com/revoke\"" };
    doc_t local = { .issuer = "\"http://127.0.0.1:8080\"",
                    .authz = "\"http://127.0.0.1:8080/auth\"",
                    .token = "\"http://localhost:8080/token\"",
                    .jwks = "\"http://[::1]:8080/jwks\"",
                    .userinfo = "-",
                    .end_session = "-",
                    .revocation = "-" };
    doc_t bad_url = { .jwks = "\"https://op.example.com/jwks#frag\"" };
    doc_t no_scheme = { .jwks = "\"op.example.com/jwks\"" };
    doc_t ftp = { .jwks = "\"ftp://op.example.com/jwks\"" };
    bff_oidc_meta_t *m = NULL;
    const char *err = NULL;

    expect_refused(p, &remote, ISS, 0);
    expect_refused(p, &remote, ISS, 1); /* http never to a remote host */
    expect_refused(p, &remote_opt, ISS, 1);
    expect_refused(p, &local, "http://127.0.0.1:8080", 0);
    assert_int_equal(parse_doc(p, &local, "http://127.0.0.1:8080", 1, &m, &err), APR_SUCCESS);
    assert_string_equal(m->token_endpoint, "http://localhost:8080/token");
    expect_refused(p, &bad_url, ISS, 0);
    expect_refused(p, &no_scheme, ISS, 0);
    expect_refused(p, &ftp, ISS, 0);
}

static void meta_missing(void **state)
{
    apr_pool_t *p = *state;
    doc_t no_jwks = { .jwks = "-" };
    doc_t no_authz = { .authz = "-" };
    doc_t no_token = { .token = "-" };
    doc_t no_iss = { .issuer = "-" };

    expect_refused(p, &no_jwks, ISS, 0);
    expect_refused(p, &no_authz, ISS, 0);
    expect_refused(p, &no_token, ISS, 0);
    expect_refused(p, &no_iss, ISS, 0);
}

static void meta_wrong_types(void **state)
{
    apr_pool_t *p = *state;
    const doc_t docs[] = {
        { .issuer = "42" },
        { .issuer = "null" },
        { .jwks = "[\"" ISS "/jwks\"]" },
        { .token = "{}" },
        { .userinfo = "1" },
        { .end_session = "false" },
        { .revocation = "1" },
        { .iss_param = "\"true\"" },
        { .bcl = "1" },
        { .bcl_session = "null" },
        { .algs = "\"RS256\"" },
        { .algs = "[\"RS256\", 256]" },
        { .pkce = "\"S256\"" },
        { .pkce = "[\"S256\", null]" },
    };
    apr_size_t i;

    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        expect_refused(p, &docs[i], ISS, 0);
    }
}

static void meta_algs_and_pkce(void **state)
{
    apr_pool_t *p = *state;
    doc_t no_s256 = { .pkce = "[\"plain\"]" };
    doc_t empty_pkce = { .pkce = "[]" };
    doc_t only_bad = { .algs = "[\"HS256\", \"none\"]" };
    doc_t empty_algs = { .algs = "[]" };

    expect_refused(p, &no_s256, ISS, 0);
    expect_refused(p, &empty_pkce, ISS, 0);
    expect_refused(p, &only_bad, ISS, 0);
    expect_refused(p, &empty_algs, ISS, 0);
}

static void meta_not_json(void **state)
{
    apr_pool_t *p = *state;
    bff_oidc_meta_t *m = NULL;
    const char *err = NULL;
    const char *dup = "{\"issuer\": \"https://evil\", \"issuer\": \"" ISS "\"}";
    const char *docs[] = { "", "[]", "\"x\"", "{", "null", dup };
    apr_size_t i;
    char nul[] = "{\"issuer\": \"" ISS "\"}\0garbage";

    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        assert_int_equal(bff_oidc_meta_parse(p, docs[i], strlen(docs[i]), ISS, 0, &m, &err),
                         APR_EINVAL);
        assert_null(m);
    }
    /* Length is honoured: trailing bytes after a NUL are not ignored. */
    assert_int_equal(bff_oidc_meta_parse(p, nul, sizeof(nul) - 1, ISS, 0, &m, &err), APR_EINVAL);
}

static void discovery_url(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bff_oidc_discovery_url(p, ISS), ISS "/.well-known/openid-configuration");
    assert_string_equal(bff_oidc_discovery_url(p, ISS "/"),
                        ISS "/.well-known/openid-configuration");
    assert_string_equal(bff_oidc_discovery_url(p, ISS "/realms/a/"),
                        ISS "/realms/a/.well-known/openid-configuration");
    /* Only one slash is stripped. */
    assert_string_equal(bff_oidc_discovery_url(p, ISS "//"),
                        ISS "/"
                            "/.well-known/openid-configuration");
}

static void pkce(void **state)
{
    apr_pool_t *p = *state;
    char *v1, *v2;
    apr_size_t i;

    /* RFC 7636 appendix B. */
    assert_string_equal(bff_oidc_pkce_challenge(p, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
                        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    v1 = bff_oidc_pkce_verifier(p);
    v2 = bff_oidc_pkce_verifier(p);
    assert_non_null(v1);
    assert_non_null(v2);
    assert_int_equal(strlen(v1), 43);
    assert_string_not_equal(v1, v2);
    for (i = 0; i < 43; i++) {
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789-_",
                               v1[i]));
    }
    assert_int_equal(strlen(bff_oidc_pkce_challenge(p, v1)), 43);
}

static int count_cb(void *baton, const char *key, const char *value)
{
    (*(int *)baton)++;
    return 1;
}

static int count_param(apr_table_t *t, const char *name)
{
    int n = 0;
    apr_table_do(count_cb, &n, t, name, NULL);
    return n;
}

static void authz_url(void **state)
{
    apr_pool_t *p = *state;
    bff_oidc_meta_t meta = { .authorization_endpoint = ISS "/authorize?tenant=a" };
    apr_array_header_t *extra = apr_array_make(p, 8, sizeof(const char *));
    bff_oidc_authz_t req = {
        .client_id = "my client",
        .redirect_uri = "https://app.example.com/bff/callback?x=1&y=2",
        .scope = "openid profile offline_access",
        .state = "st&ate=1",
        .nonce = "n+o/nce",
        .code_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        .extra = extra,
    };
    char *url;
    bff_url_t u;
    apr_table_t *q;

    APR_ARRAY_PUSH(extra, const char *) = "prompt=login";
    APR_ARRAY_PUSH(extra, const char *) = "acr_values=a b&c=d";
    APR_ARRAY_PUSH(extra, const char *) = "state=evil";
    APR_ARRAY_PUSH(extra, const char *) = "Scope=evil";
    APR_ARRAY_PUSH(extra, const char *) = "response_mode=form_post";
    APR_ARRAY_PUSH(extra, const char *) = "request_uri=https://evil";
    APR_ARRAY_PUSH(extra, const char *) = "request=x";
    APR_ARRAY_PUSH(extra, const char *) = "code_challenge_method=plain";
    APR_ARRAY_PUSH(extra, const char *) = "=novalue";
    APR_ARRAY_PUSH(extra, const char *) = "ui_locales";

    url = bff_oidc_authz_url(p, &meta, &req);
    assert_non_null(url);
    assert_true(!strncmp(url, ISS "/authorize?tenant=a&response_type=code&",
                         strlen(ISS "/authorize?tenant=a&response_type=code&")));
    /* Spaces, '&' and '=' in values are percent-encoded, never raw. */
    assert_non_null(strstr(url, "&acr_values=a%20b%26c%3Dd"));
    assert_non_null(strstr(url, "&state=st%26ate%3D1&"));
    assert_null(strchr(url, ' '));
    assert_null(strchr(url, '+'));

    assert_int_equal(bff_url_parse(p, url, &u), APR_SUCCESS);
    assert_int_equal(bff_url_parse_query(p, u.query, &q), APR_SUCCESS);
    assert_string_equal(apr_table_get(q, "tenant"), "a");
    assert_string_equal(apr_table_get(q, "response_type"), "code");
    assert_string_equal(apr_table_get(q, "client_id"), "my client");
    assert_string_equal(apr_table_get(q, "redirect_uri"), req.redirect_uri);
    assert_string_equal(apr_table_get(q, "scope"), req.scope);
    assert_string_equal(apr_table_get(q, "state"), req.state);
    assert_string_equal(apr_table_get(q, "nonce"), req.nonce);
    assert_string_equal(apr_table_get(q, "code_challenge"), req.code_challenge);
    assert_string_equal(apr_table_get(q, "code_challenge_method"), "S256");
    assert_string_equal(apr_table_get(q, "prompt"), "login");
    assert_string_equal(apr_table_get(q, "acr_values"), "a b&c=d");
    assert_string_equal(apr_table_get(q, "ui_locales"), "");
    /* Reserved names are never overridden nor repeated (the table is
     * case-insensitive, so "Scope" counts too). */
    assert_int_equal(count_param(q, "state"), 1);
    assert_int_equal(count_param(q, "scope"), 1);
    assert_int_equal(count_param(q, "code_challenge_method"), 1);
    assert_int_equal(count_param(q, "response_mode"), 0);
    assert_int_equal(count_param(q, "request_uri"), 0);
    assert_int_equal(count_param(q, "request"), 0);
    assert_int_equal(apr_table_elts(q)->nelts, 12);
}

static void authz_url_plain_endpoint(void **state)
{
    apr_pool_t *p = *state;
    bff_oidc_meta_t meta = { .authorization_endpoint = ISS "/authorize" };
    bff_oidc_authz_t req = { .client_id = "c",
                             .redirect_uri = "https://a/cb",
                             .state = "s",
                             .nonce = "n",
                             .code_challenge = "cc" };
    char *url = bff_oidc_authz_url(p, &meta, &req);

    assert_string_equal(url, ISS "/authorize?response_type=code&client_id=c"
                                 "&redirect_uri=https%3A%2F%2Fa%2Fcb&scope=openid&state=s"
                                 "&nonce=n&code_challenge=cc&code_challenge_method=S256");
    req.state = NULL;
    assert_null(bff_oidc_authz_url(p, &meta, &req));
}

/* ---------------------------------------------------------------------- */
/* Token responses */

static apr_status_t tok(apr_pool_t *p, long status, const char *body, bff_oidc_tokens_t **t,
                        const char **err)
{
    bff_http_resp_t r = {
        .status = status, .content_type = "application/json", .body = body, .len = strlen(body)
    };
    *t = NULL;
    *err = NULL;
    return bff_oidc_token_response_parse(p, &r, t, err);
}

static void expect_tok_refused(apr_pool_t *p, long status, const char *body, const char *in_err)
{
    bff_oidc_tokens_t *t;
    const char *err;

    assert_int_equal(tok(p, status, body, &t, &err), APR_EGENERAL);
    assert_null(t);
    assert_non_null(err);
    assert_non_null(strstr(err, apr_psprintf(p, "HTTP %ld", status)));
    if (in_err) {
        assert_non_null(strstr(err, in_err));
    }
    /* Nothing from the body ends up in the error text. */
    assert_null(strstr(err, "SECRET"));
}

static void token_good(void **state)
{
    apr_pool_t *p = *state;
    bff_oidc_tokens_t *t;
    const char *err;

    assert_int_equal(tok(p, 200,
                         "{\"access_token\": \"AT\", \"token_type\": \"bearer\","
                         " \"refresh_token\": \"RT\", \"id_token\": \"a.b.c\","
                         " \"scope\": \"openid email\", \"expires_in\": 3600,"
                         " \"other\": [1]}",
                         &t, &err),
                     APR_SUCCESS);
    assert_string_equal(t->access_token, "AT");
    assert_string_equal(t->token_type, "Bearer");
    assert_string_equal(t->refresh_token, "RT");
    assert_string_equal(t->id_token, "a.b.c");
    assert_string_equal(t->scope, "openid email");
    assert_int_equal(t->expires_in, 3600);
    assert_null(t->error);

    assert_int_equal(tok(p, 200, "{\"access_token\": \"AT\", \"token_type\": \"Bearer\"}", &t,
                         &err),
                     APR_SUCCESS);
    assert_null(t->refresh_token);
    assert_null(t->id_token);
    assert_null(t->scope);
    assert_int_equal(t->expires_in, 0);

    /* Absurd lifetimes are clamped, never overflow a caller's now + exp. */
    assert_int_equal(tok(p, 200,
                         "{\"access_token\": \"AT\", \"token_type\": \"Bearer\","
                         " \"expires_in\": 9223372036854775807}",
                         &t, &err),
                     APR_SUCCESS);
    assert_true(t->expires_in > 0 && t->expires_in <= (apr_int64_t)20 * 365 * 24 * 3600);
}

static void token_error(void **state)
{
    apr_pool_t *p = *state;
    bff_oidc_tokens_t *t;
    const char *err;

    assert_int_equal(tok(p, 400,
                         "{\"error\": \"invalid_grant\", "
                         "\"error_description\": \"code expired\"}",
                         &t, &err),
                     APR_SUCCESS);
    assert_non_null(t);
    assert_string_equal(t->error, "invalid_grant");
    assert_string_equal(t->error_description, "code expired");
    assert_null(t->access_token);

    assert_int_equal(tok(p, 401, "{\"error\": \"invalid_client\"}", &t, &err), APR_SUCCESS);
    assert_string_equal(t->error, "invalid_client");
    assert_null(t->error_description);

    /* Control characters and quotes from the provider are neutralised. */
    assert_int_equal(tok(p, 400,
                         "{\"error\": \"bad\\r\\nX-Injected: 1\", "
                         "\"error_description\": \"a\\\"b\\u00e9\"}",
                         &t, &err),
                     APR_SUCCESS);
    assert_string_equal(t->error, "bad??X-Injected: 1");
    assert_string_equal(t->error_description, "a?b??");
}

static void token_refused(void **state)
{
    apr_pool_t *p = *state;

    expect_tok_refused(p, 500, "{\"error\": \"server_error\"}", NULL);
    expect_tok_refused(p, 503, "Service Unavailable", NULL);
    expect_tok_refused(p, 302, "", NULL);
    expect_tok_refused(p, 201, "{\"access_token\": \"SECRET\", \"token_type\": \"Bearer\"}", NULL);
    expect_tok_refused(p, 200, "<html>SECRET</html>", "JSON");
    expect_tok_refused(p, 200, "[\"SECRET\"]", "JSON");
    expect_tok_refused(p, 400, "not json", NULL);
    expect_tok_refused(p, 400, "{\"error_description\": \"x\"}", NULL);
    expect_tok_refused(p, 400, "{\"error\": 7}", NULL);
    expect_tok_refused(p, 200, "{\"token_type\": \"Bearer\"}", "access_token");
    expect_tok_refused(p, 200, "{\"access_token\": 12, \"token_type\": \"Bearer\"}",
                       "access_token");
    expect_tok_refused(p, 200, "{\"access_token\": \"\", \"token_type\": \"Bearer\"}",
                       "access_token");
    expect_tok_refused(p, 200, "{\"access_token\": \"SECRET\"}", "token_type");
    expect_tok_refused(p, 200, "{\"access_token\": \"SECRET\", \"token_type\": \"mac\"}",
                       "token_type");
    expect_tok_refused(p, 200, "{\"access_token\": \"SECRET\", \"token_type\": \"DPoP\"}",
                       "token_type");
    expect_tok_refused(p, 200,
                       "{\"access_token\": \"SECRET\", \"token_type\": \"Bearer\","
                       " \"expires_in\": \"3600\"}",
                       "expires_in");
    expect_tok_refused(p, 200,
                       "{\"access_token\": \"SECRET\", \"token_type\": \"Bearer\","
                       " \"expires_in\": 3600.5}",
                       "expires_in");
    expect_tok_refused(p, 200,
                       "{\"access_token\": \"SECRET\", \"token_type\": \"Bearer\","
                       " \"expires_in\": -1}",
                       "expires_in");
    expect_tok_refused(p, 200,
                       "{\"access_token\": \"SECRET\", \"token_type\": \"Bearer\","
                       " \"refresh_token\": 5}",
                       "refresh_token");
    expect_tok_refused(p, 200,
                       "{\"access_token\": \"SECRET\", \"token_type\": \"Bearer\","
                       " \"id_token\": {}}",
                       "id_token");
    expect_tok_refused(p, 200,
                       "{\"access_token\": \"SECRET\", \"token_type\": \"Bearer\","
                       " \"access_token\": \"SECRET2\"}",
                       "JSON");
}

/* The access token becomes a header of the proxied request: RFC 6750
 * b64token only, so a provider's CR/LF cannot inject a header (issue 9, 4.5).
 * Refresh tokens: visible ASCII. */
static void token_charset(void **state)
{
    apr_pool_t *p = *state;
    bff_oidc_tokens_t *t;
    const char *err;

    assert_int_equal(tok(p, 200,
                         "{\"access_token\": \"eyJ0.a-b_c~d+e/f==\","
                         " \"token_type\": \"Bearer\","
                         " \"refresh_token\": \"R/T+1~!#$%&'()*,;<=>?@[]^`{|}\"}",
                         &t, &err),
                     APR_SUCCESS);
    assert_string_equal(t->access_token, "eyJ0.a-b_c~d+e/f==");
    assert_string_equal(t->refresh_token, "R/T+1~!#$%&'()*,;<=>?@[]^`{|}");
    /* VSCHAR includes the space (RFC 6749 A.17). */
    assert_int_equal(tok(p, 200,
                         "{\"access_token\": \"AT\", \"token_type\": \"Bearer\","
                         " \"refresh_token\": \"R T\"}",
                         &t, &err),
                     APR_SUCCESS);
    assert_string_equal(t->refresh_token, "R T");

#define AT_REFUSED(v) \
    expect_tok_refused(p, 200, \
                       "{\"access_token\": \"" v "\", " \
                       "\"token_type\": \"Bearer\"}", \
                       "b64token")
    AT_REFUSED("SECRET\\r\\nX-Injected: 1");
    AT_REFUSED("SECRET\\nX-Injected: 1");
    AT_REFUSED("SECRET\\rX");
    AT_REFUSED("SECRET X");
    AT_REFUSED("SECRET\\tX");
    AT_REFUSED("SECRET\\u00e9");
    AT_REFUSED("SEC=RET");
    AT_REFUSED("==");
    AT_REFUSED("SECRET,X");
    AT_REFUSED("\\\"SECRET\\\"");
#undef AT_REFUSED
#define RT_REFUSED(v) \
    expect_tok_refused(p, 200, \
                       "{\"access_token\": \"AT\", " \
                       "\"token_type\": \"Bearer\", " \
                       "\"refresh_token\": \"" v "\"}", \
                       "refresh_token")
    RT_REFUSED("SECRET\\r\\nX-Injected: 1");
    RT_REFUSED("SECRET\\tX");
    RT_REFUSED("SECRET\\u007f");
    RT_REFUSED("SECRET\\u00e9");
#undef RT_REFUSED
}

/* ---------------------------------------------------------------------- */
/* Code exchange and refresh end to end (loopback http) */

static bff_oidc_meta_t *local_meta(apr_pool_t *p, srv_t *s)
{
    bff_oidc_meta_t *m = apr_pcalloc(p, sizeof(*m));
    m->token_endpoint = apr_psprintf(p, "http://127.0.0.1:%d/token", s->port);
    return m;
}

#define TOKEN_OK \
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n" \
    "Cache-Control: no-store\r\n\r\n" \
    "{\"access_token\":\"AT1\",\"token_type\":\"Bearer\",\"expires_in\":60," \
    "\"refresh_token\":\"RT2\",\"id_token\":\"h.p.s\"}"

static void exchange_basic(void **state)
{
    apr_pool_t *p = *state;
    srv_t *s = srv_listen(p);
    pthread_t t = srv_start(s, TOKEN_OK);
    bff_oidc_client_t client = { .client_id = "client:id",
                                 .client_secret = "s3cr=t&",
                                 .auth = BFF_CLIENT_AUTH_BASIC };
    bff_oidc_tokens_t *tk = NULL;
    const char *err = NULL;

    assert_int_equal(bff_oidc_exchange_code(p, &local_opts, local_meta(p, s), &client, "c o&de",
                                            "verif", "https://app/cb?a=1", &tk, &err),
                     APR_SUCCESS);
    srv_join(s, t);
    assert_string_equal(tk->access_token, "AT1");
    assert_string_equal(tk->refresh_token, "RT2");
    assert_string_equal(tk->id_token, "h.p.s");
    assert_int_equal(tk->expires_in, 60);
    assert_true(!strncmp(s->req, "POST /token HTTP/1.1\r\n", 22));
    /* base64("client%3Aid:s3cr%3Dt%26"), RFC 6749 2.3.1. */
    assert_non_null(find_ci(s->req, s->req_len,
                            "\r\nAuthorization: Basic Y2xpZW50JTNBaWQ6czNjciUzRHQlMjY=\r\n"));
    assert_non_null(
        find_ci(s->req, s->req_len, "\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
    assert_string_equal(req_body(s), "grant_type=authorization_code&code=c%20o%26de"
                                     "&redirect_uri=https%3A%2F%2Fapp%2Fcb%3Fa%3D1"
                                     "&code_verifier=verif&client_id=client%3Aid");
}

static void exchange_post_and_refresh(void **state)
{
    apr_pool_t *p = *state;
    srv_t *s = srv_listen(p);
    pthread_t t = srv_start(s, TOKEN_OK);
    bff_oidc_client_t client = { .client_id = "cid",
                                 .client_secret = "s e",
                                 .auth = BFF_CLIENT_AUTH_POST };
    bff_oidc_tokens_t *tk = NULL;
    const char *err = NULL;

    assert_int_equal(bff_oidc_exchange_code(p, &local_opts, local_meta(p, s), &client, "code",
                                            "verif", "https://app/cb", &tk, &err),
                     APR_SUCCESS);
    srv_join(s, t);
    assert_null(find_ci(s->req, s->req_len, "Authorization:"));
    assert_string_equal(req_body(s), "grant_type=authorization_code&code=code"
                                     "&redirect_uri=https%3A%2F%2Fapp%2Fcb"
                                     "&code_verifier=verif&client_id=cid&client_secret=s%20e");

    s = srv_listen(p);
    t = srv_start(s, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                     "Connection: close\r\n\r\n{\"error\":\"invalid_grant\"}");
    assert_int_equal(bff_oidc_refresh(p, &local_opts, local_meta(p, s), &client, "R/T", &tk, &err),
                     APR_SUCCESS);
    srv_join(s, t);
    assert_string_equal(tk->error, "invalid_grant");
    assert_string_equal(req_body(s), "grant_type=refresh_token&refresh_token=R%2FT"
                                     "&client_id=cid&client_secret=s%20e");

    /* A refreshed token with a line break is refused like a first one. */
    s = srv_listen(p);
    t = srv_start(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Connection: close\r\n\r\n{\"access_token\":\"AT\\r\\nX-Injected: 1\","
                     "\"token_type\":\"Bearer\"}");
    tk = NULL;
    assert_int_equal(bff_oidc_refresh(p, &local_opts, local_meta(p, s), &client, "RT", &tk, &err),
                     APR_EGENERAL);
    srv_join(s, t);
    assert_null(tk);
    assert_non_null(strstr(err, "b64token"));

    s = srv_listen(p);
    t = srv_start(s, "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n");
    assert_int_equal(bff_oidc_refresh(p, &local_opts, local_meta(p, s), &client, "RT", &tk, &err),
                     APR_EGENERAL);
    srv_join(s, t);
    assert_null(tk);
    assert_string_equal(err, "token endpoint answered HTTP 503");
}

static void exchange_args(void **state)
{
    apr_pool_t *p = *state;
    bff_oidc_meta_t meta = { .token_endpoint = "http://127.0.0.1:1/token" };
    bff_oidc_client_t client = { .client_id = "cid", .client_secret = NULL };
    bff_oidc_tokens_t *tk = NULL;
    const char *err = NULL;

    assert_int_equal(bff_oidc_exchange_code(p, &local_opts, &meta, &client, "c", "v", "r", &tk,
                                            &err),
                     APR_EINVAL);
    client.client_secret = "x";
    assert_int_equal(bff_oidc_exchange_code(p, &local_opts, &meta, &client, "", "v", "r", &tk,
                                            &err),
                     APR_EINVAL);
    assert_int_equal(bff_oidc_refresh(p, &local_opts, &meta, &client, NULL, &tk, &err), APR_EINVAL);
    /* Transport errors pass through for the caller's 502/504 choice. */
    assert_int_equal(bff_oidc_refresh(p, &local_opts, &meta, &client, "RT", &tk, &err),
                     APR_ECONNREFUSED);
    assert_non_null(strstr(err, "token endpoint"));
}

/* The client's own token (grant_type=client_credentials): scope only when
 * given, the site's client authentication, an OAuth error passed on. */
static void client_credentials(void **state)
{
    apr_pool_t *p = *state;
    srv_t *s = srv_listen(p);
    pthread_t t = srv_start(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Connection: close\r\n\r\n{\"access_token\":\"CT\","
                               "\"token_type\":\"Bearer\",\"expires_in\":300}");
    bff_oidc_client_t client = { .client_id = "cid",
                                 .client_secret = "s e",
                                 .auth = BFF_CLIENT_AUTH_POST };
    bff_oidc_tokens_t *tk = NULL;
    const char *err = NULL;

    assert_int_equal(bff_oidc_client_credentials(p, &local_opts, local_meta(p, s), &client,
                                                 "api:read orders", &tk, &err),
                     APR_SUCCESS);
    srv_join(s, t);
    assert_string_equal(tk->access_token, "CT");
    assert_int_equal(tk->expires_in, 300);
    assert_null(tk->refresh_token);
    assert_string_equal(req_body(s), "grant_type=client_credentials&scope=api%3Aread%20orders"
                                     "&client_id=cid&client_secret=s%20e");

    client.auth = BFF_CLIENT_AUTH_BASIC;
    s = srv_listen(p);
    t = srv_start(s, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                     "Connection: close\r\n\r\n{\"error\":\"unauthorized_client\"}");
    assert_int_equal(bff_oidc_client_credentials(p, &local_opts, local_meta(p, s), &client, NULL,
                                                 &tk, &err),
                     APR_SUCCESS);
    srv_join(s, t);
    assert_string_equal(tk->error, "unauthorized_client");
    assert_string_equal(req_body(s), "grant_type=client_credentials&client_id=cid");
    assert_non_null(find_ci(s->req, s->req_len, "\r\nAuthorization: Basic "));

    client.client_secret = NULL;
    assert_int_equal(bff_oidc_client_credentials(p, &local_opts, local_meta(p, s), &client, "", &tk,
                                                 &err),
                     APR_EINVAL);
}

/* ---------------------------------------------------------------------- */
/* Logout: revocation and end-session URL */

static bff_oidc_meta_t *revoke_meta(apr_pool_t *p, srv_t *s)
{
    bff_oidc_meta_t *m = local_meta(p, s);
    m->revocation_endpoint = apr_psprintf(p, "http://127.0.0.1:%d/revoke?x=1", s->port);
    return m;
}

static void revoke_basic(void **state)
{
    apr_pool_t *p = *state;
    srv_t *s = srv_listen(p);
    pthread_t t = srv_start(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n");
    bff_oidc_client_t client = { .client_id = "client:id",
                                 .client_secret = "s3cr=t&",
                                 .auth = BFF_CLIENT_AUTH_BASIC };
    const char *err = "x";

    assert_int_equal(bff_oidc_revoke(p, &local_opts, revoke_meta(p, s), &client, "R/T+1",
                                     "refresh_token", &err),
                     APR_SUCCESS);
    srv_join(s, t);
    assert_null(err);
    assert_true(!strncmp(s->req, "POST /revoke?x=1 HTTP/1.1\r\n", 27));
    assert_non_null(find_ci(s->req, s->req_len,
                            "\r\nAuthorization: Basic Y2xpZW50JTNBaWQ6czNjciUzRHQlMjY=\r\n"));
    assert_non_null(
        find_ci(s->req, s->req_len, "\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
    assert_string_equal(req_body(s), "token=R%2FT%2B1&token_type_hint=refresh_token"
                                     "&client_id=client%3Aid");
}

static void revoke_post_and_errors(void **state)
{
    apr_pool_t *p = *state;
    srv_t *s = srv_listen(p);
    pthread_t t = srv_start(s, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                               "Connection: close\r\n\r\n{\"error\":\"unsupported_token_type\"}");
    bff_oidc_client_t client = { .client_id = "cid",
                                 .client_secret = "s e",
                                 .auth = BFF_CLIENT_AUTH_POST };
    const char *err = NULL;

    /* No hint: the parameter is left out. */
    assert_int_equal(bff_oidc_revoke(p, &local_opts, revoke_meta(p, s), &client, "AT", NULL, &err),
                     APR_EGENERAL);
    srv_join(s, t);
    assert_string_equal(err, "revocation endpoint answered HTTP 400");
    assert_null(find_ci(s->req, s->req_len, "Authorization:"));
    assert_string_equal(req_body(s), "token=AT&client_id=cid&client_secret=s%20e");

    s = srv_listen(p);
    t = srv_start(s, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n"
                     "Connection: close\r\n\r\n");
    assert_int_equal(bff_oidc_revoke(p, &local_opts, revoke_meta(p, s), &client, "RT",
                                     "refresh_token", &err),
                     APR_EGENERAL);
    srv_join(s, t);
    assert_string_equal(err, "revocation endpoint answered HTTP 503");
    assert_string_equal(req_body(s), "token=RT&token_type_hint=refresh_token"
                                     "&client_id=cid&client_secret=s%20e");

    /* 204 is not 200 (RFC 7009 2.2). */
    s = srv_listen(p);
    t = srv_start(s, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    assert_int_equal(bff_oidc_revoke(p, &local_opts, revoke_meta(p, s), &client, "RT", NULL, &err),
                     APR_EGENERAL);
    srv_join(s, t);
    assert_string_equal(err, "revocation endpoint answered HTTP 204");
}

static void revoke_args(void **state)
{
    apr_pool_t *p = *state;
    bff_oidc_meta_t meta = { .token_endpoint = "http://127.0.0.1:1/token" };
    bff_oidc_client_t client = { .client_id = "cid", .client_secret = NULL };
    const char *err = NULL;

    /* No revocation endpoint advertised. */
    assert_int_equal(bff_oidc_revoke(p, &local_opts, &meta, &client, "RT", NULL, &err),
                     APR_ENOTIMPL);
    assert_non_null(err);
    assert_int_equal(bff_oidc_revoke(p, &local_opts, NULL, &client, "RT", NULL, &err),
                     APR_ENOTIMPL);
    meta.revocation_endpoint = "http://127.0.0.1:1/revoke";
    assert_int_equal(bff_oidc_revoke(p, &local_opts, &meta, &client, "RT", NULL, &err), APR_EINVAL);
    client.client_secret = "x";
    assert_int_equal(bff_oidc_revoke(p, &local_opts, &meta, &client, "", NULL, &err), APR_EINVAL);
    assert_int_equal(bff_oidc_revoke(p, &local_opts, &meta, &client, NULL, NULL, &err), APR_EINVAL);
    /* Transport errors pass through; the token is not in the message. */
    assert_int_equal(bff_oidc_revoke(p, &local_opts, &meta, &client, "SECRET-RT", NULL, &err),
                     APR_ECONNREFUSED);
    assert_non_null(strstr(err, "revocation endpoint"));
    assert_null(strstr(err, "SECRET"));
}

static apr_table_t *url_query(apr_pool_t *p, const char *url, const char *want_prefix)
{
    bff_url_t u;
    apr_table_t *q;

    assert_non_null(url);
    assert_true(!strncmp(url, want_prefix, strlen(want_prefix)));
    assert_int_equal(bff_url_parse(p, url, &u), APR_SUCCESS);
    assert_non_null(u.query);
    assert_int_equal(bff_url_parse_query(p, u.query, &q), APR_SUCCESS);
    return q;
}

static void end_session_url(void **state)
{
    apr_pool_t *p = *state;
    bff_oidc_meta_t meta = { .end_session_endpoint = ISS "/logout" };
    const char *hint = "eyJh.eyJz.c2ln";
    const char *back = "https://app.example.com/bff/logged-out?a=1&b=two words";
    apr_table_t *q;
    char *url;

    url = bff_oidc_end_session_url(p, &meta, hint, "my client", back);
    q = url_query(p, url, ISS "/logout?id_token_hint=");
    assert_string_equal(apr_table_get(q, "id_token_hint"), hint);
    assert_string_equal(apr_table_get(q, "client_id"), "my client");
    assert_string_equal(apr_table_get(q, "post_logout_redirect_uri"), back);
    assert_int_equal(apr_table_elts(q)->nelts, 3);
    assert_null(strchr(url, ' '));

    /* An endpoint that already has a query keeps it. */
    meta.end_session_endpoint = ISS "/protocol/logout?tenant=a&x=";
    url = bff_oidc_end_session_url(p, &meta, hint, "cid", "https://app/");
    q = url_query(p, url, ISS "/protocol/logout?tenant=a&x=&id_token_hint=");
    assert_string_equal(apr_table_get(q, "tenant"), "a");
    assert_string_equal(apr_table_get(q, "x"), "");
    assert_string_equal(apr_table_get(q, "id_token_hint"), hint);
    assert_string_equal(apr_table_get(q, "client_id"), "cid");
    assert_string_equal(apr_table_get(q, "post_logout_redirect_uri"), "https://app/");
    assert_int_equal(apr_table_elts(q)->nelts, 5);

    /* A trailing '?' does not get a stray '&'. */
    meta.end_session_endpoint = ISS "/logout?";
    assert_string_equal(bff_oidc_end_session_url(p, &meta, NULL, "cid", NULL),
                        ISS "/logout?client_id=cid");

    /* No hint: only the others. */
    meta.end_session_endpoint = ISS "/logout";
    url = bff_oidc_end_session_url(p, &meta, NULL, "cid", "https://app/");
    assert_string_equal(url, ISS "/logout?client_id=cid"
                                 "&post_logout_redirect_uri=https%3A%2F%2Fapp%2F");

    /* No end_session_endpoint. */
    meta.end_session_endpoint = NULL;
    assert_null(bff_oidc_end_session_url(p, &meta, hint, "cid", "https://app/"));
    assert_null(bff_oidc_end_session_url(p, NULL, hint, "cid", "https://app/"));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, unit_pool_setup, unit_pool_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(meta_good),
        T(meta_defaults),
        T(meta_issuer_mismatch),
        T(meta_http_endpoints),
        T(meta_missing),
        T(meta_wrong_types),
        T(meta_algs_and_pkce),
        T(meta_not_json),
        T(discovery_url),
        T(pkce),
        T(authz_url),
        T(authz_url_plain_endpoint),
        T(token_good),
        T(token_error),
        T(token_refused),
        T(token_charset),
        T(exchange_basic),
        T(exchange_post_and_refresh),
        T(exchange_args),
        T(client_credentials),
        T(revoke_basic),
        T(revoke_post_and_errors),
        T(revoke_args),
        T(end_session_url),
    };

    /* A regression in the transfer timeouts must fail the run, not hang it. */
    alarm(120);
    if (bff_http_global_init() != APR_SUCCESS) {
        return 1;
    }
    return unit_run("oidc", tests);
}
