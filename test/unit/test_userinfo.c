/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Unit tests for bff_userinfo.c: the answer's checks (status, application/jwt refused, JSON
 * object with a sub), the sub check and the merge under the ID token's claims, and the call
 * itself against the loopback server of http_srv.c (the Bearer header it sends). */
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>

#include "unit.h"
#include "http_srv.h"
#include "bff_userinfo.h"
#include "bff_util.h"

static bff_http_resp_t *resp(apr_pool_t *p, long status, const char *ctype, const char *body)
{
    bff_http_resp_t *r = apr_pcalloc(p, sizeof(*r));

    r->status = status;
    r->content_type = ctype;
    r->body = body;
    r->len = strlen(body);
    return r;
}

static void parse_good(void **state)
{
    apr_pool_t *p = *state;
    json_t *c = NULL;
    const char *err = NULL;

    assert_int_equal(bff_userinfo_parse(p,
                                        resp(p, 200, "application/json; charset=utf-8",
                                             "{\"sub\":\"alice\",\"department\":\"R&D\"}"),
                                        &c, &err),
                     APR_SUCCESS);
    assert_string_equal(json_string_value(json_object_get(c, "department")), "R&D");
}

static void parse_refused(void **state)
{
    apr_pool_t *p = *state;
    json_t *c = NULL;
    const char *err = NULL;

    /* Signed or encrypted (OIDC Core 5.3.2): never used unverified. */
    assert_int_equal(bff_userinfo_parse(p, resp(p, 200, "application/jwt", "eyJh.eyJz.sig"), &c,
                                        &err),
                     APR_ENOTIMPL);
    assert_null(c);
    assert_non_null(strstr(err, "application/jwt"));
    assert_int_equal(bff_userinfo_parse(p, resp(p, 200, " Application/JWT;charset=x", "x"), &c,
                                        &err),
                     APR_ENOTIMPL);
    /* Even when the body would parse as JSON. */
    assert_int_equal(bff_userinfo_parse(p, resp(p, 200, "application/jwt", "{\"sub\":\"a\"}"), &c,
                                        &err),
                     APR_ENOTIMPL);
    assert_int_equal(bff_userinfo_parse(p, resp(p, 401, "application/json", "{}"), &c, &err),
                     APR_EGENERAL);
    assert_string_equal(err, "userinfo endpoint answered HTTP 401");
    assert_int_equal(bff_userinfo_parse(p, resp(p, 200, "application/json", "[1]"), &c, &err),
                     APR_EINVAL);
    assert_int_equal(bff_userinfo_parse(p, resp(p, 200, "application/json", "{\"a\":1}"), &c, &err),
                     APR_EINVAL);
    assert_int_equal(bff_userinfo_parse(p, resp(p, 200, "application/json", "{\"sub\":7}"), &c,
                                        &err),
                     APR_EINVAL);
    assert_int_equal(bff_userinfo_parse(p, resp(p, 200, "application/json", "{\"sub\":\"\"}"), &c,
                                        &err),
                     APR_EINVAL);
    assert_int_equal(
        bff_userinfo_parse(p, resp(p, 200, "application/json", "{\"sub\":\"a\",\"sub\":\"b\"}"), &c,
                           &err),
        APR_EINVAL);
    assert_int_equal(bff_userinfo_parse(p, NULL, &c, &err), APR_EGENERAL);
}

static json_t *obj(apr_pool_t *p, const char *txt)
{
    json_t *j = json_loads(txt, 0, NULL);

    (void)p;
    assert_non_null(j);
    return j;
}

static void merge_under_id_token(void **state)
{
    apr_pool_t *p = *state;
    json_t *id = obj(p, "{\"sub\":\"alice\",\"email\":\"a@id\",\"nonce\":\"n\"}");
    json_t *ui = obj(p, "{\"sub\":\"alice\",\"email\":\"a@ui\",\"groups\":[\"x\"]}");
    json_t *m = NULL;
    const char *err = NULL;

    assert_int_equal(bff_userinfo_merge(p, id, ui, &m, &err), APR_SUCCESS);
    /* The ID token wins a conflict; userinfo adds what it lacks. */
    assert_string_equal(json_string_value(json_object_get(m, "email")), "a@id");
    assert_true(json_is_array(json_object_get(m, "groups")));
    assert_string_equal(json_string_value(json_object_get(m, "nonce")), "n");
    assert_int_equal(json_object_size(m), 4);
    /* The inputs are left as they were. */
    assert_null(json_object_get(id, "groups"));
    json_decref(id);
    json_decref(ui);
}

static void merge_sub_mismatch(void **state)
{
    apr_pool_t *p = *state;
    json_t *id = obj(p, "{\"sub\":\"alice\"}");
    const char *const others[] = { "{\"sub\":\"mallory\"}", "{\"sub\":\"Alice\"}",
                                   "{\"sub\":\"alice \"}",  "{\"sub\":\"alic\"}",
                                   "{\"sub\":1}",           "{\"email\":\"x\"}" };
    json_t *m = NULL;
    const char *err = NULL;
    size_t i;

    for (i = 0; i < sizeof(others) / sizeof(others[0]); ++i) {
        json_t *ui = obj(p, others[i]);
        assert_int_equal(bff_userinfo_merge(p, id, ui, &m, &err), APR_EINVAL);
        assert_null(m);
        assert_non_null(strstr(err, "sub"));
        json_decref(ui);
    }
    json_decref(id);
}

static bff_http_opts_t opts_short(void)
{
    bff_http_opts_t o = local_opts;

    o.timeout_ms = 1000;
    o.connect_timeout_ms = 1000;
    return o;
}

static void fetch_sends_bearer(void **state)
{
    apr_pool_t *p = *state;
    srv_t *s = srv_listen(p);
    pthread_t t = srv_start(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Connection: close\r\n\r\n{\"sub\":\"alice\",\"room\":\"42\"}");
    bff_http_opts_t o = opts_short();
    json_t *c = NULL;
    const char *err = NULL;

    assert_int_equal(bff_userinfo_fetch(p, &o, apr_psprintf(p, "http://127.0.0.1:%d/me", s->port),
                                        "AT-1.x~y", &c, &err),
                     APR_SUCCESS);
    srv_join(s, t);
    assert_true(!strncmp(s->req, "GET /me HTTP/1.1\r\n", 18));
    assert_non_null(find_ci(s->req, s->req_len, "\r\nAuthorization: Bearer AT-1.x~y\r\n"));
    assert_string_equal(json_string_value(json_object_get(c, "room")), "42");

    s = srv_listen(p);
    t = srv_start(s, "HTTP/1.1 200 OK\r\nContent-Type: application/jwt\r\n"
                     "Connection: close\r\n\r\neyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln");
    assert_int_equal(bff_userinfo_fetch(p, &o, apr_psprintf(p, "http://127.0.0.1:%d/me", s->port),
                                        "AT", &c, &err),
                     APR_ENOTIMPL);
    srv_join(s, t);

    s = srv_listen(p);
    t = srv_start(s, "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n");
    assert_int_equal(bff_userinfo_fetch(p, &o, apr_psprintf(p, "http://127.0.0.1:%d/me", s->port),
                                        "AT", &c, &err),
                     APR_EGENERAL);
    srv_join(s, t);
}

static void fetch_refusals(void **state)
{
    apr_pool_t *p = *state;
    bff_http_opts_t o = opts_short();
    json_t *c = NULL;
    const char *err = NULL;

    /* A token with a line break never becomes a header. */
    assert_int_equal(bff_userinfo_fetch(p, &o, "http://127.0.0.1:1/me", "AT\r\nX-Evil: 1", &c,
                                        &err),
                     APR_EINVAL);
    assert_int_equal(bff_userinfo_fetch(p, &o, "http://127.0.0.1:1/me", "", &c, &err), APR_EINVAL);
    /* Nobody listening: the transport status passes through. */
    assert_int_equal(bff_userinfo_fetch(p, &o, "http://127.0.0.1:1/me", "AT", &c, &err),
                     APR_ECONNREFUSED);
    assert_non_null(strstr(err, "userinfo endpoint"));
}

/* An unsigned compact JWS with this payload (carry only reads it). */
static const char *jwt_of(apr_pool_t *p, const char *payload)
{
    static const char hdr[] = "{\"alg\":\"RS256\"}";
    const char *h, *b;

    h = bff_util_b64url_encode(p, (const unsigned char *)hdr, sizeof(hdr) - 1);
    b = bff_util_b64url_encode(p, (const unsigned char *)payload, strlen(payload));
    return apr_pstrcat(p, h, ".", b, ".c2ln", NULL);
}

static void carry_after_refresh(void **state)
{
    apr_pool_t *p = *state;
    const char *old_id = jwt_of(p, "{\"sub\":\"alice\",\"nonce\":\"n\",\"acr\":\"1\"}");
    /* At login: the ID token's claims plus department and email from userinfo. */
    const char *sess = "{\"sub\":\"alice\",\"nonce\":\"n\",\"acr\":\"1\","
                       "\"department\":\"R&D\",\"email\":\"a@ui\"}";
    json_t *fresh = obj(p, "{\"sub\":\"alice\",\"email\":\"a@new-id\"}");
    json_t *out = NULL;

    assert_int_equal(bff_userinfo_carry(p, sess, old_id, fresh, &out), APR_SUCCESS);
    /* Userinfo's department stays; the new ID token's email wins; nonce and
     * acr, claims of the old ID token, go with it. */
    assert_string_equal(json_string_value(json_object_get(out, "department")), "R&D");
    assert_string_equal(json_string_value(json_object_get(out, "email")), "a@new-id");
    assert_null(json_object_get(out, "nonce"));
    assert_null(json_object_get(out, "acr"));
    assert_int_equal(json_object_size(out), 3);
    assert_null(json_object_get(fresh, "department"));

    /* Nothing to keep, or inputs that cannot be read: the new claims as they are. */
    out = NULL;
    assert_int_equal(bff_userinfo_carry(p, "{\"sub\":\"alice\",\"nonce\":\"n\"}", old_id, fresh,
                                        &out),
                     APR_SUCCESS);
    assert_ptr_equal(out, fresh);
    assert_int_equal(bff_userinfo_carry(p, sess, "not-a-jwt", fresh, &out), APR_SUCCESS);
    assert_ptr_equal(out, fresh);
    assert_int_equal(bff_userinfo_carry(p, "[", old_id, fresh, &out), APR_SUCCESS);
    assert_ptr_equal(out, fresh);
    assert_int_equal(bff_userinfo_carry(p, NULL, old_id, fresh, &out), APR_SUCCESS);
    assert_ptr_equal(out, fresh);
    json_decref(fresh);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, unit_pool_setup, unit_pool_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(parse_good),         T(parse_refused),  T(merge_under_id_token), T(merge_sub_mismatch),
        T(fetch_sends_bearer), T(fetch_refusals), T(carry_after_refresh),
    };

    alarm(60);
    if (bff_http_global_init() != APR_SUCCESS) {
        return 1;
    }
    return unit_run("userinfo", tests);
}
