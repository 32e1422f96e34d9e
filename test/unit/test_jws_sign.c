/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* The module's signing key (bff_jws_sign.c) and private_key_jwt client
 * assertions (bff_oidc.c): every JWS made here is checked with the
 * project's own verifier (bff_jose.c). */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "unit.h"
#include "http_srv.h"
#include "bff_jose.h"
#include "bff_jws_sign.h"
#include "bff_oidc.h"
#include "bff_util.h"

/* ---- PEM text of fresh keys (RSA generation is slow: once per run) ---- */

enum { K_RSA, K_RSA1024, K_P256, K_P384, K_ED25519, K_MAX };
static char *pems[K_MAX];

static void free_pems(void)
{
    int i;
    for (i = 0; i < K_MAX; ++i) {
        free(pems[i]);
    }
}

static char *bio_text(BIO *bio)
{
    char *data = NULL, *out;
    long n = BIO_get_mem_data(bio, &data);

    assert_true(n > 0);
    out = malloc((size_t)n + 1);
    assert_non_null(out);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    return out;
}

static EVP_PKEY *gen(int which)
{
    switch (which) {
    case K_RSA:
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    case K_RSA1024:
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    case K_P256:
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    case K_P384:
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    default:
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    }
}

static const char *pem(int which)
{
    static int registered;

    if (!pems[which]) {
        EVP_PKEY *k = gen(which);
        BIO *bio = BIO_new(BIO_s_mem());
        assert_non_null(k);
        assert_int_equal(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL), 1);
        pems[which] = bio_text(bio);
        BIO_free(bio);
        EVP_PKEY_free(k);
        if (!registered) {
            atexit(free_pems);
            registered = 1;
        }
    }
    return pems[which];
}

static bff_jws_sign_key_t *load(apr_pool_t *p, int which, const char *kid)
{
    bff_jws_sign_key_t *k = NULL;
    const char *err = NULL;
    const char *text = pem(which);

    assert_int_equal(bff_jws_sign_key_load(p, text, strlen(text), kid, &k, &err), APR_SUCCESS);
    assert_non_null(k);
    return k;
}

/* The JWS verifies with the module's own verifier against the key's public
 * JWKS, with only alg allowed. */
static bff_jws_t *verify(apr_pool_t *p, const bff_jws_sign_key_t *k, const char *jws,
                         const char *alg)
{
    const char *jwks_text = bff_jws_sign_key_jwks(k), *err = NULL;
    const char *allowed[] = { alg, NULL };
    bff_jwks_t *jwks = NULL;
    bff_jws_t *parsed = NULL;
    int skipped = 0;

    assert_int_equal(bff_jose_jwks_parse(p, jwks_text, strlen(jwks_text), &jwks, &skipped, &err),
                     APR_SUCCESS);
    assert_int_equal(skipped, 0);
    assert_int_equal(bff_jose_jwks_count(jwks), 1);
    assert_int_equal(bff_jose_jws_parse(p, jws, &parsed, &err), APR_SUCCESS);
    assert_string_equal(parsed->alg, alg);
    assert_string_equal(parsed->kid, bff_jws_sign_key_kid(k));
    assert_int_equal(bff_jose_jws_verify(p, parsed, jwks, allowed, &err), APR_SUCCESS);
    return parsed;
}

static void sign_and_verify(apr_pool_t *p, int which, const char *alg)
{
    bff_jws_sign_key_t *k = load(p, which, NULL);
    json_t *payload = json_pack("{s:s, s:i}", "hello", "world", "n", 7);
    char *out = NULL, *tampered;
    const char *err = NULL;
    bff_jws_t *parsed;
    bff_jwks_t *jwks = NULL;

    assert_int_equal(bff_jws_sign_compact(p, k, alg, "JWT", payload, &out, &err), APR_SUCCESS);
    json_decref(payload);
    parsed = verify(p, k, out, alg);
    assert_string_equal(parsed->typ, "JWT");
    assert_string_equal(json_string_value(json_object_get(parsed->payload, "hello")), "world");
    if (!strcmp(alg, "ES256")) {
        /* JOSE's r||s, not DER. */
        assert_int_equal(parsed->sig_len, 64);
    }
    /* A changed payload no longer verifies. */
    tampered = apr_pstrdup(p, out);
    tampered[strchr(tampered, '.') - tampered + 2] ^= 1;
    assert_int_equal(bff_jose_jwks_parse(p, bff_jws_sign_key_jwks(k),
                                         strlen(bff_jws_sign_key_jwks(k)), &jwks, NULL, &err),
                     APR_SUCCESS);
    if (APR_SUCCESS == bff_jose_jws_parse(p, tampered, &parsed, &err)) {
        assert_int_not_equal(bff_jose_jws_verify(p, parsed, jwks, NULL, &err), APR_SUCCESS);
    }
}

static void test_rs256(void **state)
{
    sign_and_verify(*state, K_RSA, "RS256");
}

static void test_ps256(void **state)
{
    sign_and_verify(*state, K_RSA, "PS256");
}

static void test_es256(void **state)
{
    sign_and_verify(*state, K_P256, "ES256");
}

static void test_alg_must_fit_key(void **state)
{
    apr_pool_t *p = *state;
    json_t *payload = json_object();
    char *out = NULL;
    const char *err = NULL;

    assert_int_equal(bff_jws_sign_compact(p, load(p, K_RSA, NULL), "ES256", NULL, payload, &out,
                                          &err),
                     APR_EINVAL);
    assert_int_equal(bff_jws_sign_compact(p, load(p, K_P256, NULL), "RS256", NULL, payload, &out,
                                          &err),
                     APR_EINVAL);
    assert_int_equal(bff_jws_sign_compact(p, load(p, K_RSA, NULL), "none", NULL, payload, &out,
                                          &err),
                     APR_EINVAL);
    assert_int_equal(bff_jws_sign_compact(p, load(p, K_RSA, NULL), "HS256", NULL, payload, &out,
                                          &err),
                     APR_EINVAL);
    assert_null(out);
    json_decref(payload);
}

/* ---- what is refused, and why ---- */

static void refused(apr_pool_t *p, const char *text, const char *why)
{
    bff_jws_sign_key_t *k = NULL;
    const char *err = NULL;

    assert_int_equal(bff_jws_sign_key_load(p, text, strlen(text), NULL, &k, &err), APR_EINVAL);
    assert_null(k);
    assert_non_null(err);
    if (!strstr(err, why)) {
        fail_msg("'%s' does not say '%s'", err, why);
    }
    /* The message never quotes the key. */
    assert_null(strstr(err, "MII"));
}

static void test_refuses_weak_or_other_keys(void **state)
{
    apr_pool_t *p = *state;

    refused(p, pem(K_RSA1024), "RSA of 1024 bits");
    refused(p, pem(K_P384), "EC on secp384r1");
    refused(p, pem(K_ED25519), "of type ED25519");
    refused(p, "not a key", "no unencrypted private key");
    refused(p, "", "no unencrypted private key");
}

static void test_refuses_public_and_encrypted(void **state)
{
    apr_pool_t *p = *state;
    const char *text = pem(K_P256);
    BIO *in = BIO_new_mem_buf(text, (int)strlen(text)), *out;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
    char *pub, *enc;

    assert_non_null(k);
    out = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(out, k), 1);
    pub = bio_text(out);
    BIO_free(out);
    out = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PKCS8PrivateKey(out, k, EVP_aes_256_cbc(), "pass", 4, NULL,
                                                   NULL),
                     1);
    enc = bio_text(out);
    BIO_free(out);
    refused(p, pub, "no unencrypted private key");
    refused(p, enc, "no unencrypted private key");
    free(pub);
    free(enc);
    EVP_PKEY_free(k);
    BIO_free(in);
}

static void test_kid_checked(void **state)
{
    apr_pool_t *p = *state;
    bff_jws_sign_key_t *k = NULL;
    const char *err = NULL, *text = pem(K_P256);

    assert_int_equal(bff_jws_sign_key_load(p, text, strlen(text), "has space", &k, &err),
                     APR_EINVAL);
    assert_int_equal(bff_jws_sign_key_load(p, text, strlen(text), "", &k, &err), APR_EINVAL);
    assert_string_equal(bff_jws_sign_key_kid(load(p, K_P256, "key-2026")), "key-2026");
}

/* ---- the public JWKS ---- */

static json_t *the_jwk(const bff_jws_sign_key_t *k)
{
    json_error_t jerr;
    json_t *doc = json_loads(bff_jws_sign_key_jwks(k), 0, &jerr), *jwk;

    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "keys")), 1);
    jwk = json_incref(json_array_get(json_object_get(doc, "keys"), 0));
    json_decref(doc);
    return jwk;
}

/* Only these members; none of RFC 7518's private ones. */
static void only_public(json_t *jwk, const char *const *allowed)
{
    static const char *const priv[] = { "d", "p", "q", "dp", "dq", "qi", "oth", "k", NULL };
    const char *name;
    json_t *v;
    int i, ok;

    for (i = 0; priv[i]; ++i) {
        assert_null(json_object_get(jwk, priv[i]));
    }
    json_object_foreach(jwk, name, v)
    {
        (void)v;
        for (ok = 0, i = 0; allowed[i]; ++i) {
            ok |= !strcmp(allowed[i], name);
        }
        if (!ok) {
            fail_msg("unexpected JWK member %s", name);
        }
    }
}

/* RFC 7638 computed here independently of the code under test. */
static const char *thumb(apr_pool_t *p, const char *canonical)
{
    unsigned char md[32];

    assert_int_equal(bff_util_sha256(canonical, strlen(canonical), md), APR_SUCCESS);
    return bff_util_b64url_encode(p, md, sizeof(md));
}

static void test_jwks_rsa(void **state)
{
    apr_pool_t *p = *state;
    bff_jws_sign_key_t *k = load(p, K_RSA, NULL);
    json_t *jwk = the_jwk(k);
    static const char *const allowed[] = { "kty", "use", "kid", "n", "e", NULL };
    const char *n = json_string_value(json_object_get(jwk, "n"));
    const char *e = json_string_value(json_object_get(jwk, "e"));

    only_public(jwk, allowed);
    assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "RSA");
    assert_string_equal(json_string_value(json_object_get(jwk, "use")), "sig");
    assert_string_equal(e, "AQAB");
    assert_int_equal(strlen(n), 342); /* 256 bytes */
    assert_string_equal(bff_jws_sign_key_kid(k),
                        thumb(p, apr_psprintf(p, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e,
                                              n)));
    assert_string_equal(json_string_value(json_object_get(jwk, "kid")), bff_jws_sign_key_kid(k));
    assert_string_equal(bff_jws_sign_key_desc(k), "RSA 2048 bits");
    json_decref(jwk);
}

static void test_jwks_ec(void **state)
{
    apr_pool_t *p = *state;
    bff_jws_sign_key_t *k = load(p, K_P256, "ec-1");
    json_t *jwk = the_jwk(k);
    static const char *const allowed[] = { "kty", "use", "kid", "alg", "crv", "x", "y", NULL };

    only_public(jwk, allowed);
    assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "EC");
    assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "P-256");
    assert_string_equal(json_string_value(json_object_get(jwk, "alg")), "ES256");
    assert_string_equal(json_string_value(json_object_get(jwk, "kid")), "ec-1");
    assert_int_equal(strlen(json_string_value(json_object_get(jwk, "x"))), 43);
    assert_int_equal(strlen(json_string_value(json_object_get(jwk, "y"))), 43);
    assert_string_equal(bff_jws_sign_key_desc(k), "EC P-256");
    json_decref(jwk);
}

/* ---- the algorithm from the provider's list ---- */

static void test_choose_alg(void **state)
{
    apr_pool_t *p = *state;
    bff_jws_sign_key_t *rsa = load(p, K_RSA, NULL), *ec = load(p, K_P256, NULL);
    const char *both[] = { "HS256", "RS256", "PS256", "ES256", NULL };
    const char *rs[] = { "RS256", NULL };
    const char *es[] = { "ES256", NULL };
    const char *none[] = { "HS256", "EdDSA", "PS384", NULL };

    assert_string_equal(bff_jws_sign_choose_alg(rsa, both), "PS256");
    assert_string_equal(bff_jws_sign_choose_alg(rsa, rs), "RS256");
    assert_null(bff_jws_sign_choose_alg(rsa, es));
    assert_null(bff_jws_sign_choose_alg(rsa, none));
    assert_string_equal(bff_jws_sign_choose_alg(rsa, NULL), "RS256");
    assert_string_equal(bff_jws_sign_choose_alg(ec, both), "ES256");
    assert_null(bff_jws_sign_choose_alg(ec, rs));
    assert_null(bff_jws_sign_choose_alg(ec, none));
    assert_string_equal(bff_jws_sign_choose_alg(ec, NULL), "ES256");
}

/* ---- the client assertion ---- */

static bff_oidc_meta_t *meta_with(apr_pool_t *p, const char *const *algs)
{
    bff_oidc_meta_t *m = apr_pcalloc(p, sizeof(*m));

    m->issuer = "https://op.example";
    m->token_endpoint = "https://op.example/token";
    m->token_auth_algs = algs;
    return m;
}

static void check_assertion(apr_pool_t *p, int which, const char *const *algs, const char *alg)
{
    bff_oidc_client_t client = { .client_id = "bff-client",
                                 .auth = BFF_CLIENT_AUTH_PRIVATE_KEY_JWT,
                                 .key = load(p, which, NULL) };
    char *a = NULL, *b = NULL;
    const char *err = NULL;
    bff_jws_t *jws;
    json_t *c;

    assert_int_equal(bff_oidc_client_assertion(p, meta_with(p, algs), &client, 1700000000, &a,
                                               &err),
                     APR_SUCCESS);
    jws = verify(p, client.key, a, alg);
    assert_string_equal(jws->typ, "JWT");
    c = jws->payload;
    assert_string_equal(json_string_value(json_object_get(c, "iss")), "bff-client");
    assert_string_equal(json_string_value(json_object_get(c, "sub")), "bff-client");
    assert_string_equal(json_string_value(json_object_get(c, "aud")), "https://op.example");
    assert_int_equal(json_integer_value(json_object_get(c, "iat")), 1700000000);
    /* exp at most 60 s after iat. */
    assert_true(json_integer_value(json_object_get(c, "exp")) > 1700000000);
    assert_true(json_integer_value(json_object_get(c, "exp")) <= 1700000000 + 60);
    assert_true(json_string_length(json_object_get(c, "jti")) >= 43);
    assert_int_equal(json_object_size(c), 6);
    /* A fresh jti every time. */
    assert_int_equal(bff_oidc_client_assertion(p, meta_with(p, algs), &client, 1700000000, &b,
                                               &err),
                     APR_SUCCESS);
    jws = verify(p, client.key, b, alg);
    assert_string_not_equal(json_string_value(json_object_get(c, "jti")),
                            json_string_value(json_object_get(jws->payload, "jti")));
}

static void test_assertion_claims(void **state)
{
    apr_pool_t *p = *state;
    const char *all[] = { "RS256", "PS256", "ES256", NULL };
    const char *rs[] = { "RS256", NULL };

    check_assertion(p, K_RSA, all, "PS256");
    check_assertion(p, K_RSA, rs, "RS256");
    check_assertion(p, K_P256, all, "ES256");
    check_assertion(p, K_P256, NULL, "ES256");
}

static void test_assertion_no_acceptable_alg(void **state)
{
    apr_pool_t *p = *state;
    const char *hs[] = { "HS256", "EdDSA", NULL };
    bff_oidc_client_t client = { .client_id = "bff-client",
                                 .auth = BFF_CLIENT_AUTH_PRIVATE_KEY_JWT,
                                 .key = load(p, K_P256, NULL) };
    char *a = NULL;
    const char *err = NULL;

    assert_int_equal(bff_oidc_client_assertion(p, meta_with(p, hs), &client, 1700000000, &a, &err),
                     APR_EINVAL);
    assert_null(a);
    assert_non_null(strstr(err, "HS256 EdDSA"));
    assert_non_null(strstr(err, "EC P-256"));
}

/* The provider's list as discovery gives it; a malformed one fails only
 * private_key_jwt, not discovery. */
static void test_meta_token_auth_algs(void **state)
{
    apr_pool_t *p = *state;
    const char *base = "{\"issuer\":\"https://op.example\","
                       "\"authorization_endpoint\":\"https://op.example/auth\","
                       "\"token_endpoint\":\"https://op.example/token\","
                       "\"jwks_uri\":\"https://op.example/jwks\"";
    bff_oidc_meta_t *m = NULL;
    const char *err = NULL, *doc;
    bff_oidc_client_t client = { .client_id = "bff-client",
                                 .auth = BFF_CLIENT_AUTH_PRIVATE_KEY_JWT,
                                 .key = load(p, K_RSA, NULL) };
    char *jwt = NULL;

    doc = apr_pstrcat(p, base, "}", NULL);
    assert_int_equal(bff_oidc_meta_parse(p, doc, strlen(doc), "https://op.example", 0, &m, &err),
                     APR_SUCCESS);
    assert_null(m->token_auth_algs);

    doc = apr_pstrcat(p, base,
                      ",\"token_endpoint_auth_signing_alg_values_supported\":"
                      "[\"HS256\",\"RS256\",\"PS256\"]}",
                      NULL);
    assert_int_equal(bff_oidc_meta_parse(p, doc, strlen(doc), "https://op.example", 0, &m, &err),
                     APR_SUCCESS);
    assert_string_equal(m->token_auth_algs[0], "HS256");
    assert_string_equal(m->token_auth_algs[2], "PS256");
    assert_null(m->token_auth_algs[3]);
    assert_string_equal(bff_jws_sign_choose_alg(client.key, m->token_auth_algs), "PS256");

    doc = apr_pstrcat(p, base, ",\"token_endpoint_auth_signing_alg_values_supported\":\"RS256\"}",
                      NULL);
    assert_int_equal(bff_oidc_meta_parse(p, doc, strlen(doc), "https://op.example", 0, &m, &err),
                     APR_SUCCESS);
    assert_non_null(m->token_auth_algs);
    assert_null(m->token_auth_algs[0]);
    assert_int_equal(bff_oidc_client_assertion(p, m, &client, 1700000000, &jwt, &err), APR_EINVAL);
    assert_non_null(strstr(err, "token_endpoint_auth_signing_alg_values_supported: none"));
}

/* ---- on the wire: the form of the token and revocation calls ---- */

#define TOKEN_OK \
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" \
    "{\"access_token\":\"AT\",\"token_type\":\"Bearer\"}"

static const char *form_value(apr_pool_t *p, const char *body, const char *name)
{
    const char *at = strstr(body, apr_pstrcat(p, name, "=", NULL));
    const char *end;
    char *out = NULL;

    if (!at) {
        return NULL;
    }
    at += strlen(name) + 1;
    end = strchr(at, '&');
    assert_int_equal(bff_util_url_decode(p, at, end ? (apr_size_t)(end - at) : strlen(at), &out),
                     APR_SUCCESS);
    return out;
}

static void check_form(apr_pool_t *p, srv_t *s, const bff_oidc_client_t *client)
{
    const char *body = req_body(s);
    const char *a = form_value(p, body, "client_assertion");
    bff_jws_t *jws;

    assert_null(find_ci(s->req, s->req_len, "Authorization:"));
    assert_null(strstr(body, "client_secret"));
    assert_string_equal(form_value(p, body, "client_assertion_type"),
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    assert_string_equal(form_value(p, body, "client_id"), "bff-client");
    assert_non_null(a);
    jws = verify(p, client->key, a, "PS256");
    assert_string_equal(json_string_value(json_object_get(jws->payload, "aud")),
                        apr_psprintf(p, "http://127.0.0.1:%d", s->port));
}

static void test_calls_carry_assertion(void **state)
{
    apr_pool_t *p = *state;
    const char *algs[] = { "RS256", "PS256", NULL };
    bff_oidc_client_t client = { .client_id = "bff-client",
                                 .auth = BFF_CLIENT_AUTH_PRIVATE_KEY_JWT,
                                 .key = load(p, K_RSA, NULL) };
    bff_oidc_tokens_t *tk = NULL;
    const char *err = NULL;
    bff_oidc_meta_t *m;
    srv_t *s;
    pthread_t t;

    s = srv_listen(p);
    t = srv_start(s, TOKEN_OK);
    m = meta_with(p, algs);
    m->issuer = apr_psprintf(p, "http://127.0.0.1:%d", s->port);
    m->token_endpoint = apr_psprintf(p, "%s/token", m->issuer);
    assert_int_equal(bff_oidc_exchange_code(p, &local_opts, m, &client, "code", "verif",
                                            "https://app/cb", &tk, &err),
                     APR_SUCCESS);
    srv_join(s, t);
    check_form(p, s, &client);

    s = srv_listen(p);
    t = srv_start(s, TOKEN_OK);
    m->issuer = apr_psprintf(p, "http://127.0.0.1:%d", s->port);
    m->token_endpoint = apr_psprintf(p, "%s/token", m->issuer);
    assert_int_equal(bff_oidc_refresh(p, &local_opts, m, &client, "RT", &tk, &err), APR_SUCCESS);
    srv_join(s, t);
    check_form(p, s, &client);

    s = srv_listen(p);
    t = srv_start(s, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    m->issuer = apr_psprintf(p, "http://127.0.0.1:%d", s->port);
    m->revocation_endpoint = apr_psprintf(p, "%s/revoke", m->issuer);
    assert_int_equal(bff_oidc_revoke(p, &local_opts, m, &client, "RT", "refresh_token", &err),
                     APR_SUCCESS);
    srv_join(s, t);
    check_form(p, s, &client);
}

/* No key, or no algorithm: nothing is sent. */
static void test_calls_fail_without_assertion(void **state)
{
    apr_pool_t *p = *state;
    const char *es[] = { "ES256", NULL };
    bff_oidc_client_t client = { .client_id = "bff-client",
                                 .auth = BFF_CLIENT_AUTH_PRIVATE_KEY_JWT };
    bff_oidc_tokens_t *tk = NULL;
    const char *err = NULL;
    bff_oidc_meta_t *m = meta_with(p, es);

    m->token_endpoint = "http://127.0.0.1:9/token";
    assert_int_equal(bff_oidc_refresh(p, &local_opts, m, &client, "RT", &tk, &err), APR_EINVAL);
    assert_string_equal(err, "token endpoint: client key not configured");
    client.key = load(p, K_RSA, NULL);
    assert_int_equal(bff_oidc_refresh(p, &local_opts, m, &client, "RT", &tk, &err), APR_EINVAL);
    assert_non_null(strstr(err, "token endpoint: client assertion: the provider takes none"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, unit_pool_setup, unit_pool_teardown)
        T(test_rs256),
        T(test_ps256),
        T(test_es256),
        T(test_alg_must_fit_key),
        T(test_refuses_weak_or_other_keys),
        T(test_refuses_public_and_encrypted),
        T(test_kid_checked),
        T(test_jwks_rsa),
        T(test_jwks_ec),
        T(test_choose_alg),
        T(test_assertion_claims),
        T(test_assertion_no_acceptable_alg),
        T(test_meta_token_auth_algs),
        T(test_calls_carry_assertion),
        T(test_calls_fail_without_assertion),
#undef T
    };
    return unit_run("jws_sign", tests);
}
