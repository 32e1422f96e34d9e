/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "unit.h"
#include "bff_idtoken.h"
#include "bff_jose.h"
#include "bff_util.h"

#define ISS "https://op.example"
#define CLIENT "bff-client"
#define NONCE "n-0S6_WzA2Mj"
#define NOW ((apr_int64_t)1700000000)
#define LEEWAY 60
#define MAX_AGE 600

static bff_idtoken_expect_t expect_default(void)
{
    bff_idtoken_expect_t e;

    memset(&e, 0, sizeof(e));
    e.issuer = ISS;
    e.client_id = CLIENT;
    e.nonce = NONCE;
    e.now = NOW;
    e.leeway = LEEWAY;
    e.max_age = MAX_AGE;
    return e;
}

static json_t *good_claims(void)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "iss", ISS, "sub", "alice", "aud",
                          CLIENT, "exp", (json_int_t)(NOW + 300), "iat", (json_int_t)(NOW - 5),
                          "nonce", NONCE);
    assert_non_null(c);
    return c;
}

static const char *const trusted[] = { "api", "other", NULL };

/* OIDC Core 3.1.3.7 item 3: an audience besides ours that we do not trust
 * makes the token unacceptable, azp or not (issue 9, 4.7). */
static void test_untrusted_audience(void **state)
{
    bff_idtoken_expect_t e = expect_default();
    json_t *c = good_claims();
    const char *err = NULL;

    json_object_set_new(c, "aud", json_pack("[s,s]", CLIENT, "other"));
    json_object_set_new(c, "azp", json_string(CLIENT));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    assert_string_equal(err, "aud claim names an audience that is not trusted");
    /* Trusted: accepted; a third, untrusted one still spoils it. */
    e.trusted_audiences = trusted;
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_SUCCESS);
    json_object_set_new(c, "aud", json_pack("[s,s,s]", "api", CLIENT, "evil"));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    assert_string_equal(err, "aud claim names an audience that is not trusted");
    /* A trusted audience never stands in for the client itself. */
    json_object_set_new(c, "aud", json_pack("[s,s]", "api", "other"));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    assert_string_equal(err, "aud claim does not contain the client_id");
    /* Nor is a prefix of a trusted audience trusted. */
    json_object_set_new(c, "aud", json_pack("[s,s]", CLIENT, "ap"));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    /* The refreshed-ID-token path does the same. */
    e.trusted_audiences = NULL;
    json_object_set_new(c, "aud", json_pack("[s,s]", CLIENT, "other"));
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "alice", &err), APR_EINVAL);
    assert_string_equal(err, "aud claim names an audience that is not trusted");
    json_decref(c);
}

static void test_valid(void **state)
{
    bff_idtoken_expect_t e = expect_default();
    json_t *c = good_claims();
    const char *err = "x";

    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_SUCCESS);
    assert_null(err);

    /* aud as a one-element array, no azp needed. */
    json_object_set_new(c, "aud", json_pack("[s]", CLIENT));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_SUCCESS);
    /* Several audiences with azp = us, the other one trusted (BFFTrustedAudience). */
    json_object_set_new(c, "aud", json_pack("[s,s]", "other", CLIENT));
    json_object_set_new(c, "azp", json_string(CLIENT));
    e.trusted_audiences = trusted;
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_SUCCESS);
    /* Real-valued times are truncated. */
    json_object_set_new(c, "exp", json_real((double)NOW + 10.9));
    json_object_set_new(c, "iat", json_real((double)NOW - 0.5));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_SUCCESS);
    /* Just inside the leeway on both ends. */
    json_object_set_new(c, "exp", json_integer(NOW - LEEWAY + 1));
    json_object_set_new(c, "iat", json_integer(NOW + LEEWAY));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_SUCCESS);
    json_object_set_new(c, "iat", json_integer(NOW - MAX_AGE - LEEWAY));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_SUCCESS);
    /* No nonce expected: a missing nonce is fine. */
    e.nonce = NULL;
    json_object_del(c, "nonce");
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_SUCCESS);
    json_decref(c);
}

typedef struct {
    const char *name;
    const char *key;
    json_t *value; /* NULL: delete the claim */
} mutation_t;

static const char *refuse(const mutation_t *m, const bff_idtoken_expect_t *e)
{
    json_t *c = good_claims();
    const char *err = NULL;

    if (m->value) {
        json_object_set(c, m->key, m->value);
    }
    else {
        json_object_del(c, m->key);
    }
    print_message("%s\n", m->name);
    assert_int_equal(bff_idtoken_validate(c, e, &err), APR_EINVAL);
    assert_non_null(err);
    json_decref(c);
    return err;
}

static void test_each_check(void **state)
{
    bff_idtoken_expect_t e = expect_default();
    mutation_t m[] = {
        { "wrong iss", "iss", json_string("https://evil.example") },
        { "aud without client", "aud", json_string("other") },
        { "aud array, other audience, no azp", "aud", json_pack("[s,s]", CLIENT, "other") },
        { "azp mismatch", "azp", json_string("other") },
        { "expired", "exp", json_integer(NOW - LEEWAY) },
        { "exp string", "exp", json_string("1700000300") },
        { "iat missing", "iat", NULL },
        { "iat in the future", "iat", json_integer(NOW + LEEWAY + 1) },
        { "iat too old", "iat", json_integer(NOW - MAX_AGE - LEEWAY - 1) },
        { "nonce wrong", "nonce", json_string("n-0S6_WzA2Mk") },
        { "nonce missing", "nonce", NULL },
        { "sub missing", "sub", NULL },
        { "sub empty", "sub", json_string("") },
    };
    const char *errs[sizeof(m) / sizeof(m[0])];
    size_t i, j, n = sizeof(m) / sizeof(m[0]);

    for (i = 0; i < n; ++i) {
        errs[i] = refuse(&m[i], &e);
        for (j = 0; j < i; ++j) {
            assert_string_not_equal(errs[i], errs[j]);
        }
    }
    for (i = 0; i < n; ++i) {
        json_decref(m[i].value);
    }
}

static void test_more_refusals(void **state)
{
    bff_idtoken_expect_t e = expect_default();
    mutation_t m[] = {
        { "iss missing", "iss", NULL },
        { "iss prefix", "iss", json_string("https://op.example/") },
        { "iss case", "iss", json_string("https://OP.example") },
        { "iss array", "iss", json_pack("[s]", ISS) },
        { "aud missing", "aud", NULL },
        { "aud empty array", "aud", json_array() },
        { "aud number", "aud", json_integer(1) },
        { "aud array with number", "aud", json_pack("[s,i]", CLIENT, 1) },
        { "aud prefix", "aud", json_string("bff-clien") },
        { "azp number", "azp", json_integer(1) },
        { "exp missing", "exp", NULL },
        { "exp bool", "exp", json_true() },
        { "exp null", "exp", json_null() },
        { "exp huge negative", "exp", json_real(-1e300) },
        { "iat string", "iat", json_string("1700000000") },
        { "iat huge", "iat", json_real(1e300) },
        { "nonce number", "nonce", json_integer(1) },
        { "nonce prefix", "nonce", json_string("n-0S6_WzA2M") },
        { "nonce longer", "nonce", json_string(NONCE "x") },
        { "sub number", "sub", json_integer(1) },
    };
    size_t i, n = sizeof(m) / sizeof(m[0]);
    json_t *c;
    const char *err;

    for (i = 0; i < n; ++i) {
        refuse(&m[i], &e);
        json_decref(m[i].value);
    }

    /* Hostile numbers near the limits must not overflow the arithmetic. */
    c = good_claims();
    json_object_set_new(c, "exp", json_integer(LLONG_MAX));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_SUCCESS);
    json_object_set_new(c, "iat", json_integer(LLONG_MAX));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    json_object_set_new(c, "iat", json_integer(LLONG_MIN));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    json_decref(c);

    /* An azp equal to us is fine even with aud a string; an embedded NUL is not a match. */
    c = good_claims();
    json_object_set_new(c, "azp", json_string(CLIENT));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_SUCCESS);
    json_object_set_new(c, "aud", json_stringn(CLIENT "\0x", strlen(CLIENT) + 2));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    json_decref(c);

    /* An array of other audiences does not become ours because azp says so. */
    c = good_claims();
    json_object_set_new(c, "aud", json_pack("[s,s]", "a", "b"));
    json_object_set_new(c, "azp", json_string(CLIENT));
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    assert_string_equal(err, "aud claim does not contain the client_id");
    json_decref(c);

    /* Not an object; no expectations. */
    c = json_pack("[s]", "iss");
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    json_decref(c);
    c = good_claims();
    e.issuer = NULL;
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    json_decref(c);
}

/* ---- end to end with a real signature ---- */

static EVP_PKEY *ec_key;

static void free_key(void)
{
    EVP_PKEY_free(ec_key);
}

static char *b64u(apr_pool_t *p, const void *d, apr_size_t n)
{
    char *s = bff_util_b64url_encode(p, d, n);
    assert_non_null(s);
    return s;
}

static char *coord(apr_pool_t *p, const char *name)
{
    BIGNUM *bn = NULL;
    unsigned char buf[32];

    assert_int_equal(EVP_PKEY_get_bn_param(ec_key, name, &bn), 1);
    assert_int_equal(BN_bn2binpad(bn, buf, 32), 32);
    BN_free(bn);
    return b64u(p, buf, 32);
}

static bff_jwks_t *load_jwks(apr_pool_t *p)
{
    bff_jwks_t *jwks = NULL;
    const char *err;
    char *json;

    if (!ec_key) {
        ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        assert_non_null(ec_key);
        atexit(free_key);
    }
    json = apr_psprintf(p,
                        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k1\","
                        "\"use\":\"sig\",\"x\":\"%s\",\"y\":\"%s\"}]}",
                        coord(p, OSSL_PKEY_PARAM_EC_PUB_X), coord(p, OSSL_PKEY_PARAM_EC_PUB_Y));
    assert_int_equal(bff_jose_jwks_parse(p, json, strlen(json), &jwks, NULL, &err), APR_SUCCESS);
    assert_int_equal(bff_jose_jwks_count(jwks), 1);
    return jwks;
}

static char *sign_es256_hdr(apr_pool_t *p, const char *hdr, json_t *claims)
{
    char *payload = json_dumps(claims, JSON_COMPACT);
    char *input = apr_pstrcat(p, b64u(p, hdr, strlen(hdr)), ".", b64u(p, payload, strlen(payload)),
                              NULL);
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    unsigned char der[80], rs[64];
    size_t derlen = sizeof(der);
    const unsigned char *q = der;
    ECDSA_SIG *es;

    free(payload);
    assert_non_null(mctx);
    assert_int_equal(EVP_DigestSignInit_ex(mctx, NULL, "SHA256", NULL, NULL, ec_key, NULL), 1);
    assert_int_equal(EVP_DigestSign(mctx, der, &derlen, (const unsigned char *)input,
                                    strlen(input)),
                     1);
    EVP_MD_CTX_free(mctx);
    es = d2i_ECDSA_SIG(NULL, &q, (long)derlen);
    assert_non_null(es);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32), 32);
    ECDSA_SIG_free(es);
    return apr_pstrcat(p, input, ".", b64u(p, rs, 64), NULL);
}

static char *sign_es256(apr_pool_t *p, const char *kid, json_t *claims)
{
    return sign_es256_hdr(p,
                          apr_psprintf(p,
                                       "{\"alg\":\"ES256\",\"typ\":\"JWT\","
                                       "\"kid\":\"%s\"}",
                                       kid),
                          claims);
}

static void test_verify(void **state)
{
    apr_pool_t *p = *state;
    bff_jwks_t *jwks = load_jwks(p);
    bff_idtoken_expect_t e = expect_default();
    const char *algs[] = { "RS256", "ES256", NULL };
    const char *rs_only[] = { "RS256", NULL };
    json_t *c = good_claims(), *claims = NULL;
    const char *err = NULL;
    char *tok = sign_es256(p, "k1", c), *bad;

    assert_int_equal(bff_idtoken_verify(p, tok, jwks, algs, &e, &claims, &err), APR_SUCCESS);
    assert_non_null(claims);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), "alice");

    /* Signature fine, claims not. */
    e.nonce = "other-nonce";
    assert_int_equal(bff_idtoken_verify(p, tok, jwks, algs, &e, &claims, &err), APR_EINVAL);
    assert_null(claims);
    e.nonce = NONCE;

    /* Alg not allowed by the provider's metadata. */
    assert_int_equal(bff_idtoken_verify(p, tok, jwks, rs_only, &e, &claims, &err), APR_EINVAL);

    /* Unknown kid: the caller should refetch. */
    assert_int_equal(bff_idtoken_verify(p, sign_es256(p, "k2", c), jwks, algs, &e, &claims, &err),
                     APR_NOTFOUND);

    /* Bad signature. */
    bad = apr_pstrdup(p, tok);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(bff_idtoken_verify(p, bad, jwks, algs, &e, &claims, &err), APR_EGENERAL);
    assert_null(claims);

    /* Malformed. */
    assert_int_equal(bff_idtoken_verify(p, "a.b", jwks, algs, &e, &claims, &err), APR_EINVAL);

    /* Signed but expired. */
    json_object_set_new(c, "exp", json_integer(NOW - 3600));
    assert_int_equal(bff_idtoken_verify(p, sign_es256(p, "k1", c), jwks, algs, &e, &claims, &err),
                     APR_EINVAL);
    assert_string_equal(err, "token expired (exp)");
    json_decref(c);
}

/* ---- refreshed ID tokens ---- */

static void test_refreshed(void **state)
{
    bff_idtoken_expect_t e = expect_default();
    json_t *c = good_claims();
    const char *err = NULL;

    e.nonce = NULL;
    /* Same sub, nonce carried over or not: fine. */
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "alice", &err), APR_SUCCESS);
    assert_null(err);
    json_object_del(c, "nonce");
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "alice", &err), APR_SUCCESS);
    /* An iat long past is fine for a refresh (the login was hours ago). */
    json_object_set_new(c, "iat", json_integer(NOW - 86400));
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "alice", &err), APR_SUCCESS);
    /* ... but bff_idtoken_validate would refuse it. */
    assert_int_equal(bff_idtoken_validate(c, &e, &err), APR_EINVAL);
    assert_string_equal(err, "iat claim is too old");

    /* Another user. */
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "bob", &err), APR_EINVAL);
    assert_string_equal(err, "sub claim differs from the session's original sub");
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "alic", &err), APR_EINVAL);
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "Alice", &err), APR_EINVAL);
    json_object_set_new(c, "sub", json_stringn("alice\0x", 7));
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "alice", &err), APR_EINVAL);
    assert_string_equal(err, "sub claim differs from the session's original sub");
    json_object_del(c, "sub");
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "alice", &err), APR_EINVAL);
    assert_string_equal(err, "sub claim missing or not a string");
    json_object_set_new(c, "sub", json_string("alice"));
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, NULL, &err), APR_EINVAL);
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "", &err), APR_EINVAL);

    /* The other ID token rules still hold. */
    json_object_set_new(c, "iat", json_integer(NOW + LEEWAY + 1));
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "alice", &err), APR_EINVAL);
    assert_string_equal(err, "iat claim is in the future");
    json_object_del(c, "iat");
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "alice", &err), APR_EINVAL);
    assert_string_equal(err, "iat claim missing or not a number");
    json_object_set_new(c, "iat", json_integer(NOW));
    json_object_set_new(c, "exp", json_integer(NOW - LEEWAY));
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "alice", &err), APR_EINVAL);
    assert_string_equal(err, "token expired (exp)");
    json_object_set_new(c, "exp", json_integer(NOW + 300));
    json_object_set_new(c, "iss", json_string("https://evil.example"));
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "alice", &err), APR_EINVAL);
    assert_string_equal(err, "iss claim is not the expected issuer");
    json_object_set_new(c, "iss", json_string(ISS));
    json_object_set_new(c, "aud", json_string("other"));
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "alice", &err), APR_EINVAL);
    assert_string_equal(err, "aud claim does not contain the client_id");
    json_object_set_new(c, "aud", json_string(CLIENT));
    /* A nonce, when the caller does expect one, is still compared. */
    e.nonce = NONCE;
    assert_int_equal(bff_idtoken_validate_refreshed(c, &e, "alice", &err), APR_EINVAL);
    assert_string_equal(err, "nonce claim missing or not a string");
    json_decref(c);
}

static void test_verify_refreshed(void **state)
{
    apr_pool_t *p = *state;
    bff_jwks_t *jwks = load_jwks(p);
    bff_idtoken_expect_t e = expect_default();
    const char *algs[] = { "ES256", NULL };
    json_t *c = good_claims(), *claims = NULL;
    const char *err = NULL;
    char *tok;

    e.nonce = NULL;
    json_object_del(c, "nonce");
    json_object_set_new(c, "iat", json_integer(NOW - 7200));
    tok = sign_es256(p, "k1", c);
    assert_int_equal(bff_idtoken_verify_refreshed(p, tok, jwks, algs, &e, "alice", &claims, &err),
                     APR_SUCCESS);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), "alice");
    assert_int_equal(bff_idtoken_verify_refreshed(p, tok, jwks, algs, &e, "bob", &claims, &err),
                     APR_EINVAL);
    assert_null(claims);
    assert_int_equal(bff_idtoken_verify_refreshed(p, sign_es256(p, "k9", c), jwks, algs, &e,
                                                  "alice", &claims, &err),
                     APR_NOTFOUND);
    /* A logout token is never an ID token. */
    tok = sign_es256_hdr(p, "{\"alg\":\"ES256\",\"typ\":\"logout+jwt\",\"kid\":\"k1\"}", c);
    assert_int_equal(bff_idtoken_verify_refreshed(p, tok, jwks, algs, &e, "alice", &claims, &err),
                     APR_EINVAL);
    assert_string_equal(err, "JWS typ is logout+jwt, not an ID token");
    json_decref(c);
}

/* ---- back-channel logout tokens ---- */

#define BCL_EVENT "http://schemas.openid.net/event/backchannel-logout"

static json_t *logout_claims(const char *sub, const char *sid)
{
    json_t *c = json_pack("{s:s, s:s, s:I, s:I, s:s, s:{s:{}}}", "iss", ISS, "aud", CLIENT, "iat",
                          (json_int_t)(NOW - 5), "exp", (json_int_t)(NOW + 120), "jti", "bWJq",
                          "events", BCL_EVENT);
    assert_non_null(c);
    if (sub) {
        json_object_set_new(c, "sub", json_string(sub));
    }
    if (sid) {
        json_object_set_new(c, "sid", json_string(sid));
    }
    return c;
}

static void test_logout_valid(void **state)
{
    bff_idtoken_expect_t e = expect_default();
    const char *err = "x";
    char jti[257];
    json_t *c;

    c = logout_claims(NULL, "08a5019c-17e1-4977-8f42-65a12843ea02");
    assert_int_equal(bff_idtoken_validate_logout(c, &e, &err), APR_SUCCESS);
    assert_null(err);
    json_decref(c);
    c = logout_claims("alice", NULL);
    assert_int_equal(bff_idtoken_validate_logout(c, &e, &err), APR_SUCCESS);
    json_decref(c);
    c = logout_claims("alice", "sid-1");
    assert_int_equal(bff_idtoken_validate_logout(c, &e, &err), APR_SUCCESS);
    /* exp is optional; the event object may carry members; extra events are fine;
     * expect->nonce plays no part. */
    json_object_del(c, "exp");
    json_object_set_new(json_object_get(c, "events"), "urn:other", json_true());
    json_object_set_new(json_object_get(json_object_get(c, "events"), BCL_EVENT), "x",
                        json_integer(1));
    e.nonce = NULL;
    assert_int_equal(bff_idtoken_validate_logout(c, &e, &err), APR_SUCCESS);
    /* Limits, just inside. */
    json_object_set_new(c, "iat", json_integer(NOW - MAX_AGE - LEEWAY));
    json_object_set_new(c, "exp", json_integer(NOW - LEEWAY + 1));
    memset(jti, 'j', 256);
    jti[256] = '\0';
    json_object_set_new(c, "jti", json_string(jti));
    assert_int_equal(bff_idtoken_validate_logout(c, &e, &err), APR_SUCCESS);
    json_object_set_new(c, "iat", json_integer(NOW + LEEWAY));
    assert_int_equal(bff_idtoken_validate_logout(c, &e, &err), APR_SUCCESS);
    /* Several audiences with azp = us: only when the other one is trusted. */
    json_object_set_new(c, "aud", json_pack("[s,s]", "other", CLIENT));
    json_object_set_new(c, "azp", json_string(CLIENT));
    assert_int_equal(bff_idtoken_validate_logout(c, &e, &err), APR_EINVAL);
    assert_string_equal(err, "aud claim names an audience that is not trusted");
    e.trusted_audiences = trusted;
    assert_int_equal(bff_idtoken_validate_logout(c, &e, &err), APR_SUCCESS);
    json_decref(c);
}

static const char *refuse_logout(const mutation_t *m, const bff_idtoken_expect_t *e)
{
    json_t *c = logout_claims("alice", "sid-1");
    const char *err = NULL;

    if (m->value) {
        json_object_set(c, m->key, m->value);
    }
    else {
        json_object_del(c, m->key);
    }
    print_message("%s\n", m->name);
    assert_int_equal(bff_idtoken_validate_logout(c, e, &err), APR_EINVAL);
    assert_non_null(err);
    json_decref(c);
    return err;
}

static void test_logout_each_check(void **state)
{
    bff_idtoken_expect_t e = expect_default();
    char long_jti[258];
    mutation_t m[] = {
        { "wrong iss", "iss", json_string("https://evil.example") },
        { "iss missing", "iss", NULL },
        { "wrong aud", "aud", json_string("other") },
        { "aud missing", "aud", NULL },
        { "aud array, other audience, no azp", "aud", json_pack("[s,s]", CLIENT, "other") },
        { "azp mismatch", "azp", json_string("other") },
        { "iat missing", "iat", NULL },
        { "iat in the future", "iat", json_integer(NOW + LEEWAY + 1) },
        { "iat stale", "iat", json_integer(NOW - MAX_AGE - LEEWAY - 1) },
        { "exp past", "exp", json_integer(NOW - LEEWAY) },
        { "exp not a number", "exp", json_string("1700000300") },
        { "jti missing", "jti", NULL },
        { "jti too long", "jti", NULL /* set below */ },
        { "jti with NUL", "jti", json_stringn("ab\0c", 4) },
        { "events missing", "events", NULL },
        { "events not an object", "events", json_pack("[s]", BCL_EVENT) },
        { "events without the member", "events", json_pack("{s:{}}", "urn:other") },
        { "member value not an object", "events", json_pack("{s:b}", BCL_EVENT, 1) },
        { "nonce present", "nonce", json_string(NONCE) },
        { "sub not a non-empty string", "sub", json_string("") },
        { "sid not a non-empty string", "sid", json_integer(7) },
    };
    const char *errs[sizeof(m) / sizeof(m[0])];
    size_t i, j, n = sizeof(m) / sizeof(m[0]);
    json_t *c;
    const char *err;

    /* 257 bytes, one over the limit. */
    memset(long_jti, 'j', 257);
    long_jti[257] = '\0';
    for (i = 0; i < n; ++i) {
        if (!strcmp(m[i].name, "jti too long")) {
            m[i].value = json_string(long_jti);
        }
    }

    for (i = 0; i < n; ++i) {
        errs[i] = refuse_logout(&m[i], &e);
    }
    /* Distinct text per failure. */
    for (i = 0; i < n; ++i) {
        for (j = 0; j < i; ++j) {
            assert_string_not_equal(errs[i], errs[j]);
        }
    }
    for (i = 0; i < n; ++i) {
        json_decref(m[i].value);
    }

    /* Neither sub nor sid. */
    c = logout_claims(NULL, NULL);
    assert_int_equal(bff_idtoken_validate_logout(c, &e, &err), APR_EINVAL);
    assert_string_equal(err, "logout token: neither sub nor sid claim present");
    /* An empty jti is as good as none. */
    json_object_set_new(c, "sid", json_string("s"));
    json_object_set_new(c, "jti", json_string(""));
    assert_int_equal(bff_idtoken_validate_logout(c, &e, &err), APR_EINVAL);
    assert_string_equal(err, "logout token: jti claim missing or not a non-empty string");
    json_decref(c);

    /* An ID token is not a logout token. */
    c = good_claims();
    assert_int_equal(bff_idtoken_validate_logout(c, &e, &err), APR_EINVAL);
    json_decref(c);
    /* Not an object; no expectations. */
    c = json_array();
    assert_int_equal(bff_idtoken_validate_logout(c, &e, &err), APR_EINVAL);
    json_decref(c);
    assert_int_equal(bff_idtoken_validate_logout(NULL, NULL, &err), APR_EINVAL);
}

static void test_logout_errors_named(void **state)
{
    /* The brief's named refusals, each with its own message. */
    bff_idtoken_expect_t e = expect_default();
    const struct {
        const char *key;
        json_t *value;
        const char *err;
    } cases[] = {
        { "events", NULL, "logout token: events claim missing" },
        { "events", json_string("x"), "logout token: events claim is not a JSON object" },
        { "events", json_object(),
          "logout token: events claim lacks the back-channel logout event" },
        { "events", json_pack("{s:s}", BCL_EVENT, "x"),
          "logout token: back-channel logout event is not a JSON object" },
        { "nonce", json_string("n"), "logout token: nonce claim is present" },
        { "jti", NULL, "logout token: jti claim missing or not a non-empty string" },
        { "iat", json_integer(NOW - 3600), "iat claim is too old" },
        { "iat", json_integer(NOW + 3600), "iat claim is in the future" },
        { "exp", json_integer(NOW - 3600), "token expired (exp)" },
        { "iss", json_string(ISS "/"), "iss claim is not the expected issuer" },
        { "aud", json_pack("[s]", "other"), "aud claim does not contain the client_id" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        json_t *c = logout_claims(NULL, "sid-1");
        const char *err = NULL;

        if (cases[i].value) {
            json_object_set_new(c, cases[i].key, cases[i].value);
        }
        else {
            json_object_del(c, cases[i].key);
        }
        assert_int_equal(bff_idtoken_validate_logout(c, &e, &err), APR_EINVAL);
        assert_string_equal(err, cases[i].err);
        json_decref(c);
    }
}

static void test_verify_logout(void **state)
{
    apr_pool_t *p = *state;
    bff_jwks_t *jwks = load_jwks(p);
    bff_idtoken_expect_t e = expect_default();
    const char *algs[] = { "RS256", "ES256", NULL };
    const char *rs_only[] = { "RS256", NULL };
    const char *typ_ok[] = {
        "logout+jwt", "Logout+JWT", "application/logout+jwt", "APPLICATION/LOGOUT+JWT",
        "JWT",        "jwt",        "application/jwt"
    };
    const char *typ_bad[] = {
        "at+jwt",      "JOSE", "logout", "application/", "", "jwt ", "application/application/jwt",
        "secevent+jwt"
    };
    json_t *c = logout_claims("alice", "sid-1"), *claims = NULL, *idt;
    const char *err = NULL;
    char *tok, *bad;
    size_t i;

    /* No typ at all is accepted. */
    tok = sign_es256_hdr(p, "{\"alg\":\"ES256\",\"kid\":\"k1\"}", c);
    assert_int_equal(bff_idtoken_verify_logout(p, tok, jwks, algs, &e, &claims, &err), APR_SUCCESS);
    assert_string_equal(json_string_value(json_object_get(claims, "sid")), "sid-1");
    for (i = 0; i < sizeof(typ_ok) / sizeof(typ_ok[0]); ++i) {
        tok = sign_es256_hdr(p,
                             apr_psprintf(p,
                                          "{\"alg\":\"ES256\",\"typ\":\"%s\","
                                          "\"kid\":\"k1\"}",
                                          typ_ok[i]),
                             c);
        claims = NULL;
        assert_int_equal(bff_idtoken_verify_logout(p, tok, jwks, algs, &e, &claims, &err),
                         APR_SUCCESS);
        assert_non_null(claims);
    }
    for (i = 0; i < sizeof(typ_bad) / sizeof(typ_bad[0]); ++i) {
        tok = sign_es256_hdr(p,
                             apr_psprintf(p,
                                          "{\"alg\":\"ES256\",\"typ\":\"%s\","
                                          "\"kid\":\"k1\"}",
                                          typ_bad[i]),
                             c);
        print_message("typ %s\n", typ_bad[i]);
        assert_int_equal(bff_idtoken_verify_logout(p, tok, jwks, algs, &e, &claims, &err),
                         APR_EINVAL);
        assert_null(claims);
        assert_string_equal(err, "logout token: JWS typ is neither logout+jwt nor JWT");
    }
    /* A typ with an embedded NUL is not "JWT". */
    tok = sign_es256_hdr(p, "{\"alg\":\"ES256\",\"typ\":\"JWT\\u0000x\",\"kid\":\"k1\"}", c);
    assert_int_equal(bff_idtoken_verify_logout(p, tok, jwks, algs, &e, &claims, &err), APR_EINVAL);
    /* A typ that is not a string (refused by the JWS parser). */
    tok = sign_es256_hdr(p, "{\"alg\":\"ES256\",\"typ\":[\"JWT\"],\"kid\":\"k1\"}", c);
    assert_int_equal(bff_idtoken_verify_logout(p, tok, jwks, algs, &e, &claims, &err), APR_EINVAL);

    tok = sign_es256_hdr(p, "{\"alg\":\"ES256\",\"typ\":\"logout+jwt\",\"kid\":\"k1\"}", c);
    /* Unknown kid: the caller refetches. */
    assert_int_equal(
        bff_idtoken_verify_logout(p,
                                  sign_es256_hdr(p,
                                                 "{\"alg\":\"ES256\","
                                                 "\"typ\":\"logout+jwt\",\"kid\":\"k2\"}",
                                                 c),
                                  jwks, algs, &e, &claims, &err),
        APR_NOTFOUND);
    /* Alg not allowed. */
    assert_int_equal(bff_idtoken_verify_logout(p, tok, jwks, rs_only, &e, &claims, &err),
                     APR_EINVAL);
    /* Bad signature. */
    bad = apr_pstrdup(p, tok);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(bff_idtoken_verify_logout(p, bad, jwks, algs, &e, &claims, &err),
                     APR_EGENERAL);
    assert_null(claims);
    /* Signed, claims wrong. */
    json_object_set_new(c, "nonce", json_string(NONCE));
    assert_int_equal(
        bff_idtoken_verify_logout(p,
                                  sign_es256_hdr(p,
                                                 "{\"alg\":\"ES256\","
                                                 "\"typ\":\"logout+jwt\",\"kid\":\"k1\"}",
                                                 c),
                                  jwks, algs, &e, &claims, &err),
        APR_EINVAL);
    assert_string_equal(err, "logout token: nonce claim is present");
    assert_null(claims);
    /* A signed ID token is refused as a logout token. */
    idt = good_claims();
    assert_int_equal(bff_idtoken_verify_logout(p, sign_es256(p, "k1", idt), jwks, algs, &e, &claims,
                                               &err),
                     APR_EINVAL);
    assert_null(claims);
    json_decref(idt);
    /* Malformed. */
    assert_int_equal(bff_idtoken_verify_logout(p, "a.b", jwks, algs, &e, &claims, &err),
                     APR_EINVAL);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_untrusted_audience, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_each_check, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_more_refusals, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_verify, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_refreshed, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_verify_refreshed, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_logout_valid, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_logout_each_check, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_logout_errors_named, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_verify_logout, unit_pool_setup, unit_pool_teardown),
    };
    return unit_run("idtoken", tests);
}
