/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* Unit tests for the core parts of issue 12's login features: the SPA's
 * login parameters (bff_oidc_login_param_*), their place in the
 * authorization URL, the ID token's auth_time against max_age, and pushed
 * authorization requests (RFC 9126: metadata, response parse, the push
 * against the loopback server of http_srv.c, the redirect URL). */
#include <pthread.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include <jansson.h>

#include "unit.h"

#include "bff_http.h"
#include "bff_idtoken.h"
#include "bff_oidc.h"
#include "bff_url.h"
#include "http_srv.h"

#define ISS "https://op.example.com"

static int ok(int bit, const char *v)
{
    const char *why = NULL;
    apr_status_t rv = bff_oidc_login_param_check(bit, v, &why);

    assert_true(rv == APR_SUCCESS ? why == NULL : why != NULL);
    return rv == APR_SUCCESS;
}

static void test_param_names(void **state)
{
    (void)state;
    assert_int_equal(bff_oidc_login_param_bit("prompt"), BFF_LOGIN_PROMPT);
    assert_int_equal(bff_oidc_login_param_bit("max_age"), BFF_LOGIN_MAX_AGE);
    assert_int_equal(bff_oidc_login_param_bit("Prompt"), 0); /* case-sensitive */
    assert_int_equal(bff_oidc_login_param_bit("claims"), 0);
    assert_int_equal(bff_oidc_login_param_bit("state"), 0);
    assert_int_equal(bff_oidc_login_param_bit(NULL), 0);
    assert_string_equal(bff_oidc_login_param_name(BFF_LOGIN_UI_LOCALES), "ui_locales");
    assert_null(bff_oidc_login_param_name(BFF_LOGIN_PROMPT | BFF_LOGIN_MAX_AGE));
}

static void test_prompt(void **state)
{
    (void)state;
    assert_true(ok(BFF_LOGIN_PROMPT, "none"));
    assert_true(ok(BFF_LOGIN_PROMPT, "login"));
    assert_true(ok(BFF_LOGIN_PROMPT, "consent"));
    assert_true(ok(BFF_LOGIN_PROMPT, "select_account"));
    assert_true(ok(BFF_LOGIN_PROMPT, "login consent select_account"));
    assert_false(ok(BFF_LOGIN_PROMPT, ""));
    assert_false(ok(BFF_LOGIN_PROMPT, "bogus"));
    assert_false(ok(BFF_LOGIN_PROMPT, "None"));
    assert_false(ok(BFF_LOGIN_PROMPT, "nonex"));
    assert_false(ok(BFF_LOGIN_PROMPT, "non"));
    assert_false(ok(BFF_LOGIN_PROMPT, "none login")); /* none alone */
    assert_false(ok(BFF_LOGIN_PROMPT, "login none"));
    assert_false(ok(BFF_LOGIN_PROMPT, "login login"));
    assert_false(ok(BFF_LOGIN_PROMPT, "login  consent"));
    assert_false(ok(BFF_LOGIN_PROMPT, " login"));
    assert_false(ok(BFF_LOGIN_PROMPT, "login "));
    assert_false(ok(BFF_LOGIN_PROMPT, "login\tconsent"));
    assert_false(ok(BFF_LOGIN_PROMPT, "login+consent"));
    assert_true(bff_oidc_prompt_is_none("none"));
    assert_false(bff_oidc_prompt_is_none("login"));
    assert_false(bff_oidc_prompt_is_none("nonesuch"));
    assert_false(bff_oidc_prompt_is_none(NULL));
}

static void test_max_age(void **state)
{
    (void)state;
    assert_true(ok(BFF_LOGIN_MAX_AGE, "0"));
    assert_true(ok(BFF_LOGIN_MAX_AGE, "3600"));
    assert_true(ok(BFF_LOGIN_MAX_AGE, "999999999"));
    assert_false(ok(BFF_LOGIN_MAX_AGE, "1000000000"));
    assert_false(ok(BFF_LOGIN_MAX_AGE, "-1"));
    assert_false(ok(BFF_LOGIN_MAX_AGE, "+1"));
    assert_false(ok(BFF_LOGIN_MAX_AGE, "1e3"));
    assert_false(ok(BFF_LOGIN_MAX_AGE, " 1"));
    assert_false(ok(BFF_LOGIN_MAX_AGE, ""));
}

static void test_hint_locales_acr(void **state)
{
    apr_pool_t *p = *state;
    char *long_hint = apr_palloc(p, BFF_LOGIN_PARAM_MAX + 2);

    assert_true(ok(BFF_LOGIN_LOGIN_HINT, "alice@example.test"));
    assert_true(ok(BFF_LOGIN_LOGIN_HINT, "+41 44 000 00 00"));
    assert_false(ok(BFF_LOGIN_LOGIN_HINT, "a\r\nb"));
    assert_false(ok(BFF_LOGIN_LOGIN_HINT, "<script>"));
    assert_false(ok(BFF_LOGIN_LOGIN_HINT, "a\"b"));
    assert_false(ok(BFF_LOGIN_LOGIN_HINT, "a\\b"));
    assert_false(ok(BFF_LOGIN_LOGIN_HINT, " alice"));
    assert_false(ok(BFF_LOGIN_LOGIN_HINT, "alice "));
    assert_false(ok(BFF_LOGIN_LOGIN_HINT, "j\xc3\xbcrg"));
    memset(long_hint, 'a', BFF_LOGIN_PARAM_MAX);
    long_hint[BFF_LOGIN_PARAM_MAX] = '\0';
    assert_true(ok(BFF_LOGIN_LOGIN_HINT, long_hint));
    long_hint[BFF_LOGIN_PARAM_MAX] = 'a';
    long_hint[BFF_LOGIN_PARAM_MAX + 1] = '\0';
    assert_false(ok(BFF_LOGIN_LOGIN_HINT, long_hint));

    assert_true(ok(BFF_LOGIN_UI_LOCALES, "de-CH en"));
    assert_true(ok(BFF_LOGIN_UI_LOCALES, "zh-Hant-TW"));
    assert_false(ok(BFF_LOGIN_UI_LOCALES, "de_CH"));
    assert_false(ok(BFF_LOGIN_UI_LOCALES, "de  en"));
    assert_false(ok(BFF_LOGIN_UI_LOCALES, "en;q=1"));
    assert_false(ok(BFF_LOGIN_UI_LOCALES, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 36 */

    assert_true(ok(BFF_LOGIN_ACR_VALUES, "urn:mace:incommon:iap:silver phr"));
    assert_false(ok(BFF_LOGIN_ACR_VALUES, "a\"b"));
    assert_false(ok(BFF_LOGIN_ACR_VALUES, "a\tb"));
    assert_false(ok(BFF_LOGIN_ACR_VALUES, "a "));
    assert_false(ok(0, "x"));
}

static bff_oidc_meta_t *meta(apr_pool_t *p)
{
    bff_oidc_meta_t *m = apr_pcalloc(p, sizeof(*m));

    m->authorization_endpoint = ISS "/authorize?tenant=a";
    m->token_endpoint = ISS "/token";
    return m;
}

static apr_array_header_t *kvs(apr_pool_t *p, const char *a, const char *b, const char *c)
{
    apr_array_header_t *arr = apr_array_make(p, 3, sizeof(const char *));
    const char *v[] = { a, b, c };
    int i;

    for (i = 0; i < 3; i++) {
        if (v[i]) {
            APR_ARRAY_PUSH(arr, const char *) = v[i];
        }
    }
    return arr;
}

static bff_oidc_authz_t request(void)
{
    bff_oidc_authz_t az;

    memset(&az, 0, sizeof(az));
    az.client_id = "cid";
    az.redirect_uri = "https://app.example/bff/callback";
    az.scope = "openid";
    az.state = "ST";
    az.nonce = "NO";
    az.code_challenge = "CC";
    return az;
}

static int count(apr_pool_t *p, const char *url, const char *name)
{
    apr_table_t *q = NULL;
    int n = 0;
    const apr_array_header_t *arr;
    const apr_table_entry_t *e;
    int i;

    assert_int_equal(bff_url_parse_query(p, strchr(url, '?') + 1, &q), APR_SUCCESS);
    arr = apr_table_elts(q);
    e = (const apr_table_entry_t *)arr->elts;
    for (i = 0; i < arr->nelts; i++) {
        n += !strcmp(e[i].key, name);
    }
    return n;
}

/* The SPA's parameters come last, once, and never override the module's
 * own or BFFAuthParams'. */
static void test_authz_url_login_params(void **state)
{
    apr_pool_t *p = *state;
    bff_oidc_authz_t az = request();
    char *url;

    az.extra = kvs(p, "prompt=login", "audience=api", NULL);
    az.login = kvs(p, "prompt=none", "login_hint=a b&c", "state=evil");
    url = bff_oidc_authz_url(p, meta(p), &az);
    assert_non_null(url);
    assert_int_equal(count(p, url, "prompt"), 1);
    assert_non_null(strstr(url, "prompt=login"));
    assert_null(strstr(url, "prompt=none"));
    assert_int_equal(count(p, url, "state"), 1);
    assert_null(strstr(url, "evil"));
    assert_non_null(strstr(url, "&login_hint=a%20b%26c"));
    assert_int_equal(count(p, url, "tenant"), 1);
}

static json_t *claims_at(apr_int64_t auth_time, int with)
{
    json_t *c = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s}", "iss", ISS, "aud", "cid", "exp",
                          (json_int_t)2000, "iat", (json_int_t)1000, "nonce", "NO", "sub", "alice");
    if (with) {
        json_object_set_new(c, "auth_time", json_integer((json_int_t)auth_time));
    }
    return c;
}

static void test_auth_time(void **state)
{
    bff_idtoken_expect_t e;
    const char *err = NULL;
    json_t *c;

    (void)state;
    memset(&e, 0, sizeof(e));
    e.issuer = ISS;
    e.client_id = "cid";
    e.nonce = "NO";
    e.now = 1000;
    e.leeway = 60;
    e.max_age = 600;
    /* No max_age sent: auth_time is not looked at. */
    c = claims_at(0, 0);
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_SUCCESS);
    json_decref(c);
    e.check_auth_time = 1;
    e.auth_max_age = 300;
    c = claims_at(0, 0);
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    assert_non_null(strstr(err, "auth_time claim missing"));
    json_decref(c);
    c = claims_at(1000 - 300 - 60, 1); /* at the edge */
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_SUCCESS);
    json_decref(c);
    c = claims_at(1000 - 300 - 61, 1);
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    assert_string_equal(err, "auth_time claim is older than the login's max_age allows");
    json_decref(c);
    c = claims_at(1000 + 61, 1);
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    assert_string_equal(err, "auth_time claim is in the future");
    json_decref(c);
    /* max_age=0: only just now (with the leeway). */
    e.auth_max_age = 0;
    c = claims_at(1000 - 61, 1);
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    json_decref(c);
    c = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:s}", "iss", ISS, "aud", "cid", "exp",
                  (json_int_t)2000, "iat", (json_int_t)1000, "nonce", "NO", "sub", "alice",
                  "auth_time", "1000");
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    json_decref(c);
}

/* ---------------------------------------------------------------------- */
/* PAR */

static void test_meta_par(void **state)
{
    apr_pool_t *p = *state;
    const char *base = "{\"issuer\":\"" ISS "\",\"authorization_endpoint\":\"" ISS "/a\","
                       "\"token_endpoint\":\"" ISS "/t\",\"jwks_uri\":\"" ISS "/j\"";
    bff_oidc_meta_t *m = NULL;
    const char *err = NULL, *doc;

    doc = apr_pstrcat(p, base, "}", NULL);
    assert_int_equal(bff_oidc_meta_parse(p, doc, strlen(doc), ISS, 0, &m, &err), APR_SUCCESS);
    assert_null(m->par_endpoint);
    assert_false(m->require_par);
    doc = apr_pstrcat(p, base, ",\"pushed_authorization_request_endpoint\":\"" ISS "/par\",",
                      "\"require_pushed_authorization_requests\":true}", NULL);
    assert_int_equal(bff_oidc_meta_parse(p, doc, strlen(doc), ISS, 0, &m, &err), APR_SUCCESS);
    assert_string_equal(m->par_endpoint, ISS "/par");
    assert_true(m->require_par);
    doc = apr_pstrcat(p, base,
                      ",\"pushed_authorization_request_endpoint\":\"http://evil.example/par\"}",
                      NULL);
    assert_int_equal(bff_oidc_meta_parse(p, doc, strlen(doc), ISS, 0, &m, &err), APR_EINVAL);
    doc = apr_pstrcat(p, base, ",\"require_pushed_authorization_requests\":\"yes\"}", NULL);
    assert_int_equal(bff_oidc_meta_parse(p, doc, strlen(doc), ISS, 0, &m, &err), APR_EINVAL);
}

static apr_status_t parse(apr_pool_t *p, long status, const char *body, bff_oidc_par_t **par,
                          const char **err)
{
    bff_http_resp_t r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.body = body;
    r.len = body ? strlen(body) : 0;
    return bff_oidc_par_response_parse(p, &r, par, err);
}

static void test_par_parse(void **state)
{
    apr_pool_t *p = *state;
    bff_oidc_par_t *par = NULL;
    const char *err = NULL;

    assert_int_equal(
        parse(p, 201, "{\"request_uri\":\"urn:ietf:params:oauth:request_uri:x\",\"expires_in\":60}",
              &par, &err),
        APR_SUCCESS);
    assert_string_equal(par->request_uri, "urn:ietf:params:oauth:request_uri:x");
    assert_int_equal(par->expires_in, 60);
    assert_null(par->error);
    assert_int_equal(parse(p, 200, "{\"request_uri\":\"u\"}", &par, &err), APR_SUCCESS);
    assert_int_equal(par->expires_in, 0);
    /* Refused: no or bad request_uri, bad expires_in, not JSON, 5xx, 3xx. */
    assert_int_equal(parse(p, 201, "{\"expires_in\":60}", &par, &err), APR_EGENERAL);
    assert_null(par);
    assert_non_null(strstr(err, "request_uri"));
    assert_int_equal(parse(p, 201, "{\"request_uri\":\"\"}", &par, &err), APR_EGENERAL);
    assert_int_equal(parse(p, 201, "{\"request_uri\":42}", &par, &err), APR_EGENERAL);
    assert_int_equal(parse(p, 201, "{\"request_uri\":\"a b\"}", &par, &err), APR_EGENERAL);
    assert_int_equal(parse(p, 201, "{\"request_uri\":\"a\\r\\nb\"}", &par, &err), APR_EGENERAL);
    assert_int_equal(parse(p, 201, "{\"request_uri\":\"u\",\"expires_in\":0}", &par, &err),
                     APR_EGENERAL);
    assert_int_equal(parse(p, 201, "{\"request_uri\":\"u\",\"expires_in\":\"60\"}", &par, &err),
                     APR_EGENERAL);
    assert_int_equal(parse(p, 201, "{\"request_uri\":\"u\",\"request_uri\":\"v\"}", &par, &err),
                     APR_EGENERAL);
    assert_int_equal(parse(p, 201, "[1]", &par, &err), APR_EGENERAL);
    assert_int_equal(parse(p, 201, NULL, &par, &err), APR_EGENERAL);
    assert_int_equal(parse(p, 500, "{\"request_uri\":\"u\"}", &par, &err), APR_EGENERAL);
    assert_non_null(strstr(err, "HTTP 500"));
    assert_int_equal(parse(p, 302, "{\"request_uri\":\"u\"}", &par, &err), APR_EGENERAL);
    /* An OAuth error: success with the (cleaned) code. */
    assert_int_equal(parse(p, 401,
                           "{\"error\":\"invalid_client\",\"error_description\":\"bad\\u0001\"}",
                           &par, &err),
                     APR_SUCCESS);
    assert_string_equal(par->error, "invalid_client");
    assert_string_equal(par->error_description, "bad?");
    assert_null(par->request_uri);
    assert_int_equal(parse(p, 400, "{\"error\":\"\"}", &par, &err), APR_EGENERAL);
}

static void test_par_url(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bff_oidc_par_authz_url(p, meta(p), "c id", "urn:x:1"),
                        ISS "/authorize?tenant=a&client_id=c%20id&request_uri=urn%3Ax%3A1");
    assert_null(bff_oidc_par_authz_url(p, meta(p), "cid", NULL));
}

#define PAR_OK \
    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nConnection: close\r\n" \
    "Cache-Control: no-store\r\n\r\n" \
    "{\"request_uri\":\"urn:ietf:params:oauth:request_uri:abc\",\"expires_in\":60}"

static void test_par_push(void **state)
{
    apr_pool_t *p = *state;
    srv_t *s = srv_listen(p);
    pthread_t t = srv_start(s, PAR_OK);
    bff_oidc_client_t client = { .client_id = "cid",
                                 .client_secret = "s3cr=t",
                                 .auth = BFF_CLIENT_AUTH_BASIC };
    bff_oidc_meta_t *m = meta(p);
    bff_oidc_authz_t az = request();
    bff_oidc_par_t *par = NULL;
    const char *err = NULL, *body;

    m->par_endpoint = apr_psprintf(p, "http://127.0.0.1:%d/par", s->port);
    az.extra = kvs(p, "audience=api", NULL, NULL);
    az.login = kvs(p, "login_hint=a@b", NULL, NULL);
    assert_int_equal(bff_oidc_par_push(p, &local_opts, m, &client, &az, &par, &err), APR_SUCCESS);
    srv_join(s, t);
    assert_string_equal(par->request_uri, "urn:ietf:params:oauth:request_uri:abc");
    assert_non_null(find_ci(s->req, s->req_len, "POST /par "));
    assert_non_null(find_ci(s->req, s->req_len, "Authorization: Basic "));
    body = req_body(s);
    assert_non_null(strstr(body, "response_type=code&redirect_uri="));
    assert_non_null(strstr(body, "&state=ST&nonce=NO&code_challenge=CC"));
    assert_non_null(strstr(body, "&audience=api&login_hint=a%40b"));
    /* client_id once, from the client part; no secret in the body with Basic. */
    assert_ptr_equal(strstr(body, "client_id="), strrchr(body, '&') + 1);
    assert_null(strstr(body, "s3cr"));
    /* No endpoint: refused before any request. */
    m->par_endpoint = NULL;
    assert_int_equal(bff_oidc_par_push(p, &local_opts, m, &client, &az, &par, &err), APR_ENOTIMPL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, unit_pool_setup, unit_pool_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_param_names),
        T(test_prompt),
        T(test_max_age),
        T(test_hint_locales_acr),
        T(test_authz_url_login_params),
        T(test_auth_time),
        T(test_meta_par),
        T(test_par_parse),
        T(test_par_url),
        T(test_par_push),
    };
    return unit_run("login", tests);
}
