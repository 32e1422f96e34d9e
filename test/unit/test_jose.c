/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "unit.h"
#include "bff_jose.h"
#include "bff_util.h"

/* ---- keys, generated once per run (RSA generation is slow) ---- */

enum { K_RSA, K_RSA2, K_RSA1024, K_P256, K_P384, K_P521, K_ED25519, K_ED448, K_MAX };
static EVP_PKEY *keys[K_MAX];

static void free_keys(void)
{
    int i;
    for (i = 0; i < K_MAX; ++i) {
        EVP_PKEY_free(keys[i]);
    }
}

static EVP_PKEY *key(int which)
{
    static int registered;

    if (!keys[which]) {
        switch (which) {
        case K_RSA:
        case K_RSA2:
            keys[which] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
            break;
        case K_RSA1024:
            keys[which] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
            break;
        case K_P256:
            keys[which] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
            break;
        case K_P384:
            keys[which] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
            break;
        case K_P521:
            keys[which] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
            break;
        case K_ED25519:
            keys[which] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
            break;
        case K_ED448:
            keys[which] = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
            break;
        }
        if (!registered) {
            atexit(free_keys);
            registered = 1;
        }
    }
    assert_non_null(keys[which]);
    return keys[which];
}

static char *b64u(apr_pool_t *p, const void *d, apr_size_t n)
{
    char *s = bff_util_b64url_encode(p, d, n);
    assert_non_null(s);
    return s;
}

#define B64S(p, s) b64u((p), (s), strlen(s))

static char *bn_param_b64(apr_pool_t *p, EVP_PKEY *k, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char *buf;
    int n;

    assert_int_equal(EVP_PKEY_get_bn_param(k, name, &bn), 1);
    n = pad ? pad : BN_num_bytes(bn);
    buf = apr_palloc(p, (apr_size_t)n);
    assert_int_equal(BN_bn2binpad(bn, buf, n), n);
    BN_free(bn);
    return b64u(p, buf, (apr_size_t)n);
}

static int ec_coord_len(EVP_PKEY *k)
{
    return (EVP_PKEY_get_bits(k) + 7) / 8;
}

/* The public JWK of k as JSON text; extra is more members ("\"alg\":\"RS256\"") or NULL. */
static char *jwk_json(apr_pool_t *p, EVP_PKEY *k, const char *kid, const char *extra)
{
    const char *body;
    const char *kidm = kid ? apr_psprintf(p, ",\"kid\":\"%s\"", kid) : "";
    const char *ex = extra ? apr_pstrcat(p, ",", extra, NULL) : "";

    if (EVP_PKEY_is_a(k, "RSA")) {
        body = apr_psprintf(p, "\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"",
                            bn_param_b64(p, k, OSSL_PKEY_PARAM_RSA_N, 0),
                            bn_param_b64(p, k, OSSL_PKEY_PARAM_RSA_E, 0));
    }
    else if (EVP_PKEY_is_a(k, "EC")) {
        int c = ec_coord_len(k);
        const char *crv = c == 32 ? "P-256" : c == 48 ? "P-384" : "P-521";
        body = apr_psprintf(p, "\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"", crv,
                            bn_param_b64(p, k, OSSL_PKEY_PARAM_EC_PUB_X, c),
                            bn_param_b64(p, k, OSSL_PKEY_PARAM_EC_PUB_Y, c));
    }
    else {
        unsigned char raw[64];
        size_t len = sizeof(raw);
        int ed448 = EVP_PKEY_is_a(k, "ED448");
        assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &len), 1);
        body = apr_psprintf(p, "\"kty\":\"OKP\",\"crv\":\"%s\",\"x\":\"%s\"",
                            ed448 ? "Ed448" : "Ed25519", b64u(p, raw, len));
    }
    return apr_psprintf(p, "{%s%s%s}", body, kidm, ex);
}

static char *jwks_of(apr_pool_t *p, const char *k1, const char *k2, const char *k3)
{
    return apr_pstrcat(p, "{\"keys\":[", k1 ? k1 : "", k2 ? "," : "", k2 ? k2 : "", k3 ? "," : "",
                       k3 ? k3 : "", "]}", NULL);
}

static bff_jwks_t *jwks_load(apr_pool_t *p, const char *json, int want_count, int want_skipped)
{
    bff_jwks_t *jwks = NULL;
    const char *err = NULL;
    int skipped = -1;

    assert_int_equal(bff_jose_jwks_parse(p, json, strlen(json), &jwks, &skipped, &err),
                     APR_SUCCESS);
    assert_non_null(jwks);
    assert_int_equal(bff_jose_jwks_count(jwks), want_count);
    assert_int_equal(skipped, want_skipped);
    return jwks;
}

/* ---- signing ---- */

static const char *alg_md(const char *alg)
{
    if (!strcmp(alg, "EdDSA")) {
        return NULL;
    }
    if (!strcmp(alg + 2, "256")) {
        return "SHA256";
    }
    return !strcmp(alg + 2, "384") ? "SHA384" : "SHA512";
}

/* PSS salt length used when signing; tests change it to check we insist on hLen. */
static int pss_saltlen = RSA_PSS_SALTLEN_DIGEST;

static char *sign_input(apr_pool_t *p, EVP_PKEY *k, const char *alg, const char *input,
                        apr_size_t *siglen)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *sig;
    size_t len = 0;

    assert_non_null(mctx);
    assert_int_equal(EVP_DigestSignInit_ex(mctx, &pctx, alg_md(alg), NULL, NULL, k, NULL), 1);
    if (alg[0] == 'P') {
        assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0);
        assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, pss_saltlen) > 0);
    }
    assert_int_equal(EVP_DigestSign(mctx, NULL, &len, (const unsigned char *)input, strlen(input)),
                     1);
    sig = apr_palloc(p, len);
    assert_int_equal(EVP_DigestSign(mctx, sig, &len, (const unsigned char *)input, strlen(input)),
                     1);
    EVP_MD_CTX_free(mctx);

    if (alg[0] == 'E' && alg[1] == 'S') {
        /* DER ECDSA-Sig-Value to JOSE's fixed-size r||s. */
        const unsigned char *q = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)len);
        int c = ec_coord_len(k);
        unsigned char *rs = apr_palloc(p, 2 * (apr_size_t)c);
        assert_non_null(es);
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, c), c);
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + c, c), c);
        ECDSA_SIG_free(es);
        sig = rs;
        len = 2 * (size_t)c;
    }
    *siglen = len;
    return (char *)sig;
}

static char *sign_jws(apr_pool_t *p, EVP_PKEY *k, const char *alg, const char *header,
                      const char *payload)
{
    char *input = apr_pstrcat(p, b64u(p, header, strlen(header)), ".",
                              b64u(p, payload, strlen(payload)), NULL);
    apr_size_t siglen;
    char *sig = sign_input(p, k, alg, input, &siglen);
    return apr_pstrcat(p, input, ".", b64u(p, sig, siglen), NULL);
}

static const char *PAYLOAD = "{\"iss\":\"https://op.example\",\"sub\":\"alice\",\"n\":1}";

static char *make_jwt(apr_pool_t *p, EVP_PKEY *k, const char *alg, const char *kid)
{
    const char *hdr = kid ? apr_psprintf(p, "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", alg,
                                         kid)
                          : apr_psprintf(p, "{\"alg\":\"%s\"}", alg);
    return sign_jws(p, k, alg, hdr, PAYLOAD);
}

/* Parse and verify; the first failure's status. */
static apr_status_t check(apr_pool_t *p, const char *token, const bff_jwks_t *jwks,
                          const char *const *allowed, const char **err)
{
    bff_jws_t *jws = NULL;
    apr_status_t rv;

    *err = NULL;
    if (APR_SUCCESS != (rv = bff_jose_jws_parse(p, token, &jws, err))) {
        assert_null(jws);
        assert_non_null(*err);
        return rv;
    }
    rv = bff_jose_jws_verify(p, jws, jwks, allowed, err);
    if (rv != APR_SUCCESS) {
        assert_non_null(*err);
    }
    return rv;
}

static char *part(apr_pool_t *p, const char *token, int idx)
{
    char *copy = apr_pstrdup(p, token), *last = NULL, *s;
    int i;

    s = apr_strtok(copy, ".", &last);
    for (i = 0; i < idx && s; ++i) {
        s = apr_strtok(NULL, ".", &last);
    }
    assert_non_null(s);
    return s;
}

static char *flip_sig(apr_pool_t *p, const char *token)
{
    char *t = apr_pstrdup(p, token);
    char *s = strrchr(t, '.') + 1;
    s[0] = s[0] == 'A' ? 'B' : 'A';
    return t;
}

/* ---- tests ---- */

static const struct {
    const char *alg;
    int key;
} ALL[] = {
    { "RS256", K_RSA },  { "RS384", K_RSA },     { "RS512", K_RSA },   { "PS256", K_RSA },
    { "PS384", K_RSA },  { "PS512", K_RSA },     { "ES256", K_P256 },  { "ES384", K_P384 },
    { "ES512", K_P521 }, { "EdDSA", K_ED25519 }, { "EdDSA", K_ED448 },
};

static void test_every_alg(void **state)
{
    apr_pool_t *p = *state;
    size_t i;

    for (i = 0; i < sizeof(ALL) / sizeof(ALL[0]); ++i) {
        EVP_PKEY *k = key(ALL[i].key);
        const char *alg = ALL[i].alg;
        bff_jwks_t *jwks =
            jwks_load(p, jwks_of(p, jwk_json(p, k, "k1", "\"use\":\"sig\""), NULL, NULL), 1, 0);
        char *tok = make_jwt(p, k, alg, "k1");
        const char *only[] = { alg, NULL };
        const char *other[] = { strcmp(alg, "RS256") ? "RS256" : "ES256", NULL };
        const char *err;
        char *altered;

        print_message("alg %s\n", alg);
        assert_int_equal(check(p, tok, jwks, NULL, &err), APR_SUCCESS);
        assert_null(err);
        assert_int_equal(check(p, tok, jwks, only, &err), APR_SUCCESS);
        assert_int_equal(check(p, tok, jwks, other, &err), APR_EINVAL);

        assert_int_equal(check(p, flip_sig(p, tok), jwks, NULL, &err), APR_EGENERAL);

        altered = apr_pstrcat(p, part(p, tok, 0), ".", B64S(p, "{\"sub\":\"mallory\"}"), ".",
                              part(p, tok, 2), NULL);
        assert_int_equal(check(p, altered, jwks, NULL, &err), APR_EGENERAL);
    }
}

static void test_pss_salt_length(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *k = key(K_RSA);
    bff_jwks_t *jwks = jwks_load(p, jwks_of(p, jwk_json(p, k, "k1", NULL), NULL, NULL), 1, 0);
    const char *err;
    char *tok;

    pss_saltlen = RSA_PSS_SALTLEN_MAX;
    tok = make_jwt(p, k, "PS256", "k1");
    pss_saltlen = 0;
    assert_int_equal(check(p, tok, jwks, NULL, &err), APR_EGENERAL);
    tok = make_jwt(p, k, "PS384", "k1");
    pss_saltlen = RSA_PSS_SALTLEN_DIGEST;
    assert_int_equal(check(p, tok, jwks, NULL, &err), APR_EGENERAL);
    /* The same key and alg with the JWA salt length verifies. */
    assert_int_equal(check(p, make_jwt(p, k, "PS384", "k1"), jwks, NULL, &err), APR_SUCCESS);
}

static void test_parse_fields(void **state)
{
    apr_pool_t *p = *state;
    char *tok = make_jwt(p, key(K_P256), "ES256", "kid-1");
    bff_jws_t *jws = NULL;
    const char *err = NULL;

    assert_int_equal(bff_jose_jws_parse(p, tok, &jws, &err), APR_SUCCESS);
    assert_string_equal(jws->alg, "ES256");
    assert_string_equal(jws->kid, "kid-1");
    assert_string_equal(jws->typ, "JWT");
    assert_int_equal(jws->sig_len, 64);
    assert_int_equal(jws->signing_input_len, strrchr(tok, '.') - tok);
    assert_memory_equal(jws->signing_input, tok, jws->signing_input_len);
    assert_string_equal(json_string_value(json_object_get(jws->payload, "sub")), "alice");

    tok = make_jwt(p, key(K_P256), "ES256", NULL);
    assert_int_equal(bff_jose_jws_parse(p, tok, &jws, &err), APR_SUCCESS);
    assert_null(jws->kid);
    assert_null(jws->typ);
}

static void test_alg_supported(void **state)
{
    const char *yes[] = { "RS256", "RS384", "RS512", "PS256", "PS384",
                          "PS512", "ES256", "ES384", "ES512", "EdDSA" };
    const char *no[] = { "none",   "None",  "HS256", "HS384",    "HS512", "RS1",
                         "ES256K", "rs256", "",      "RSA-OAEP", "dir" };
    size_t i;

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); ++i) {
        assert_true(bff_jose_alg_supported(yes[i]));
    }
    for (i = 0; i < sizeof(no) / sizeof(no[0]); ++i) {
        assert_false(bff_jose_alg_supported(no[i]));
    }
    assert_false(bff_jose_alg_supported(NULL));
}

static void test_alg_none(void **state)
{
    apr_pool_t *p = *state;
    bff_jwks_t *jwks = jwks_load(p, jwks_of(p, jwk_json(p, key(K_RSA), "k1", NULL), NULL, NULL), 1,
                                 0);
    const char *allow_none[] = { "none", "RS256", NULL };
    const char *hdr = "{\"alg\":\"none\",\"kid\":\"k1\"}";
    char *input = apr_pstrcat(p, b64u(p, hdr, strlen(hdr)), ".", b64u(p, PAYLOAD, strlen(PAYLOAD)),
                              NULL);
    const char *err;

    assert_int_equal(check(p, apr_pstrcat(p, input, ".", NULL), jwks, NULL, &err), APR_EINVAL);
    assert_int_equal(check(p, apr_pstrcat(p, input, ".", NULL), jwks, allow_none, &err),
                     APR_EINVAL);
    assert_int_equal(check(p, apr_pstrcat(p, input, ".AAAA", NULL), jwks, NULL, &err), APR_EINVAL);
    assert_int_equal(check(p, apr_pstrcat(p, input, ".AAAA", NULL), jwks, allow_none, &err),
                     APR_EINVAL);
}

static void test_hs256_key_confusion(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *k = key(K_RSA);
    bff_jwks_t *jwks = jwks_load(p, jwks_of(p, jwk_json(p, k, "k1", NULL), NULL, NULL), 1, 0);
    const char *allow_hs[] = { "HS256", "RS256", NULL };
    const char *hdr = "{\"alg\":\"HS256\",\"kid\":\"k1\"}";
    char *input = apr_pstrcat(p, b64u(p, hdr, strlen(hdr)), ".", b64u(p, PAYLOAD, strlen(PAYLOAD)),
                              NULL);
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem;
    long pemlen;
    unsigned char mac[32];
    size_t maclen = 0;
    char *tok;
    const char *err;

    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_PUBKEY(bio, k), 1);
    pemlen = BIO_get_mem_data(bio, &pem);
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, pem, (size_t)pemlen,
                              (const unsigned char *)input, strlen(input), mac, sizeof(mac),
                              &maclen));
    BIO_free(bio);
    tok = apr_pstrcat(p, input, ".", b64u(p, mac, maclen), NULL);

    assert_int_equal(check(p, tok, jwks, NULL, &err), APR_EINVAL);
    assert_int_equal(check(p, tok, jwks, allow_hs, &err), APR_EINVAL);
}

static void test_alg_key_mismatch(void **state)
{
    apr_pool_t *p = *state;
    bff_jwks_t *jwks = jwks_load(p,
                                 jwks_of(p, jwk_json(p, key(K_RSA), "rsa", NULL),
                                         jwk_json(p, key(K_P256), "p256", NULL),
                                         jwk_json(p, key(K_ED25519), "ed", NULL)),
                                 3, 0);
    const char *err;

    /* ES256 header pointing at the RSA key. */
    assert_int_equal(check(p, make_jwt(p, key(K_P256), "ES256", "rsa"), jwks, NULL, &err),
                     APR_EINVAL);
    /* RS256 header pointing at the EC key. */
    assert_int_equal(check(p, make_jwt(p, key(K_RSA), "RS256", "p256"), jwks, NULL, &err),
                     APR_EINVAL);
    /* EdDSA header pointing at the EC key. */
    assert_int_equal(check(p, make_jwt(p, key(K_ED25519), "EdDSA", "p256"), jwks, NULL, &err),
                     APR_EINVAL);
    /* Curve mismatch: ES384 with a P-256 key. */
    assert_int_equal(check(p, make_jwt(p, key(K_P384), "ES384", "p256"), jwks, NULL, &err),
                     APR_EINVAL);
    /* And the right pairings still work. */
    assert_int_equal(check(p, make_jwt(p, key(K_P256), "ES256", "p256"), jwks, NULL, &err),
                     APR_SUCCESS);
    assert_int_equal(check(p, make_jwt(p, key(K_ED25519), "EdDSA", "ed"), jwks, NULL, &err),
                     APR_SUCCESS);
}

static void test_jwk_alg(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *k = key(K_RSA);
    bff_jwks_t *jwks = jwks_load(p,
                                 jwks_of(p, jwk_json(p, k, "k1", "\"alg\":\"RS256\""), NULL, NULL),
                                 1, 0);
    const char *err;

    assert_int_equal(check(p, make_jwt(p, k, "RS256", "k1"), jwks, NULL, &err), APR_SUCCESS);
    assert_int_equal(check(p, make_jwt(p, k, "RS512", "k1"), jwks, NULL, &err), APR_EINVAL);
    assert_int_equal(check(p, make_jwt(p, k, "PS256", "k1"), jwks, NULL, &err), APR_EINVAL);
    assert_int_equal(check(p, make_jwt(p, k, "PS256", NULL), jwks, NULL, &err), APR_EINVAL);
}

static void test_kid(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *k = key(K_RSA);
    bff_jwks_t *jwks = jwks_load(p,
                                 jwks_of(p, jwk_json(p, k, "k1", NULL),
                                         jwk_json(p, key(K_P256), "k2", NULL), NULL),
                                 2, 0);
    bff_jwks_t *nokid = jwks_load(p,
                                  jwks_of(p, jwk_json(p, key(K_RSA2), NULL, NULL),
                                          jwk_json(p, key(K_P256), NULL, NULL),
                                          jwk_json(p, k, NULL, NULL)),
                                  3, 0);
    const char *err;

    assert_true(bff_jose_jwks_has_kid(jwks, "k1"));
    assert_true(bff_jose_jwks_has_kid(jwks, "k2"));
    assert_false(bff_jose_jwks_has_kid(jwks, "k3"));
    assert_false(bff_jose_jwks_has_kid(jwks, NULL));
    assert_false(bff_jose_jwks_has_kid(nokid, "k1"));

    /* Unknown kid: NOTFOUND, so the caller refetches, even if another key would verify. */
    assert_int_equal(check(p, make_jwt(p, k, "RS256", "k3"), jwks, NULL, &err), APR_NOTFOUND);
    assert_int_equal(check(p, make_jwt(p, k, "RS256", "k1"), nokid, NULL, &err), APR_NOTFOUND);
    /* A kid pointing at the wrong (fitting) key is a bad signature. */
    jwks = jwks_load(p,
                     jwks_of(p, jwk_json(p, k, "k1", NULL), jwk_json(p, key(K_RSA2), "k2", NULL),
                             NULL),
                     2, 0);
    assert_int_equal(check(p, make_jwt(p, k, "RS256", "k2"), jwks, NULL, &err), APR_EGENERAL);
    /* No kid: every key that fits is tried, here the last one. */
    assert_int_equal(check(p, make_jwt(p, k, "RS256", NULL), nokid, NULL, &err), APR_SUCCESS);
    assert_int_equal(check(p, make_jwt(p, key(K_P256), "ES256", NULL), nokid, NULL, &err),
                     APR_SUCCESS);
    /* No kid and no fitting key. */
    assert_int_equal(check(p, make_jwt(p, key(K_P384), "ES384", NULL), nokid, NULL, &err),
                     APR_EINVAL);
    /* No kid, fitting keys, none verifies. */
    assert_int_equal(check(p, make_jwt(p, key(K_RSA1024), "RS256", NULL), nokid, NULL, &err),
                     APR_EGENERAL);
}

static void test_duplicate_kid(void **state)
{
    apr_pool_t *p = *state;
    bff_jwks_t *jwks = jwks_load(p,
                                 jwks_of(p, jwk_json(p, key(K_P256), "same", NULL),
                                         jwk_json(p, key(K_RSA2), "same", NULL),
                                         jwk_json(p, key(K_RSA), "same", NULL)),
                                 3, 0);
    const char *err;

    assert_int_equal(check(p, make_jwt(p, key(K_RSA), "RS256", "same"), jwks, NULL, &err),
                     APR_SUCCESS);
    assert_int_equal(check(p, make_jwt(p, key(K_P256), "ES256", "same"), jwks, NULL, &err),
                     APR_SUCCESS);
    assert_int_equal(check(p, make_jwt(p, key(K_P384), "ES384", "same"), jwks, NULL, &err),
                     APR_EINVAL);
}

static void test_ecdsa_sig_length(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *k = key(K_P256);
    bff_jwks_t *jwks = jwks_load(p, jwks_of(p, jwk_json(p, k, "k", NULL), NULL, NULL), 1, 0);
    char *tok = make_jwt(p, k, "ES256", "k");
    char *input = part(p, tok, 0);
    unsigned char *sig, *longer;
    apr_size_t siglen;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    unsigned char der[80];
    size_t derlen = sizeof(der);
    const char *err;

    input = apr_pstrcat(p, input, ".", part(p, tok, 1), NULL);
    assert_int_equal(bff_util_b64url_decode(p, part(p, tok, 2), strlen(part(p, tok, 2)), &sig,
                                            &siglen),
                     APR_SUCCESS);
    assert_int_equal(siglen, 64);
    assert_int_equal(check(p, tok, jwks, NULL, &err), APR_SUCCESS);

    /* One byte short, one byte long (leading zero), empty-ish. */
    assert_int_equal(check(p, apr_pstrcat(p, input, ".", b64u(p, sig, 63), NULL), jwks, NULL, &err),
                     APR_EGENERAL);
    longer = apr_palloc(p, 65);
    longer[0] = 0;
    memcpy(longer + 1, sig, 64);
    assert_int_equal(check(p, apr_pstrcat(p, input, ".", b64u(p, longer, 65), NULL), jwks, NULL,
                           &err),
                     APR_EGENERAL);
    /* Trailing junk after a valid r||s. */
    memcpy(longer, sig, 64);
    longer[64] = 0;
    assert_int_equal(check(p, apr_pstrcat(p, input, ".", b64u(p, longer, 65), NULL), jwks, NULL,
                           &err),
                     APR_EGENERAL);
    assert_int_equal(check(p, apr_pstrcat(p, input, ".", b64u(p, sig, 1), NULL), jwks, NULL, &err),
                     APR_EGENERAL);

    /* A DER signature (what OpenSSL produces) is not a JOSE signature. */
    assert_non_null(mctx);
    assert_int_equal(EVP_DigestSignInit_ex(mctx, NULL, "SHA256", NULL, NULL, k, NULL), 1);
    assert_int_equal(EVP_DigestSign(mctx, der, &derlen, (const unsigned char *)input,
                                    strlen(input)),
                     1);
    EVP_MD_CTX_free(mctx);
    assert_int_equal(check(p, apr_pstrcat(p, input, ".", b64u(p, der, derlen), NULL), jwks, NULL,
                           &err),
                     APR_EGENERAL);

    /* r = 0, s = 0. */
    memset(sig, 0, 64);
    assert_int_equal(check(p, apr_pstrcat(p, input, ".", b64u(p, sig, 64), NULL), jwks, NULL, &err),
                     APR_EGENERAL);
}

static void test_crit(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *k = key(K_P256);
    bff_jwks_t *jwks = jwks_load(p, jwks_of(p, jwk_json(p, k, "k", NULL), NULL, NULL), 1, 0);
    const char *err;
    char *tok = sign_jws(p, k, "ES256",
                         "{\"alg\":\"ES256\",\"kid\":\"k\",\"crit\":[\"exp\"],"
                         "\"exp\":1}",
                         PAYLOAD);

    assert_int_equal(check(p, tok, jwks, NULL, &err), APR_EINVAL);
    tok = sign_jws(p, k, "ES256", "{\"alg\":\"ES256\",\"kid\":\"k\",\"crit\":[]}", PAYLOAD);
    assert_int_equal(check(p, tok, jwks, NULL, &err), APR_EINVAL);
    tok = sign_jws(p, k, "ES256", "{\"alg\":\"ES256\",\"b64\":false,\"crit\":[\"b64\"]}", PAYLOAD);
    assert_int_equal(check(p, tok, jwks, NULL, &err), APR_EINVAL);
}

static void test_parse_malformed(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *k = key(K_P256);
    char *tok = make_jwt(p, k, "ES256", "k");
    char *h = part(p, tok, 0), *pl = part(p, tok, 1), *s = part(p, tok, 2);
    const char *hdr_ok = "{\"alg\":\"ES256\"}";
    const char *sg = "AAAA";
    bff_jws_t *jws;
    const char *err;
    char *huge;
    const char *bad[] = {
        "",
        ".",
        "..",
        "...",
        apr_pstrcat(p, h, ".", pl, NULL),                 /* 2 parts */
        apr_pstrcat(p, h, ".", pl, ".", s, ".", s, NULL), /* 4 parts */
        apr_pstrcat(p, h, ".", pl, ".", s, ".", NULL),    /* trailing dot */
        apr_pstrcat(p, h, "..", s, NULL),                 /* empty payload */
        apr_pstrcat(p, ".", pl, ".", s, NULL),            /* empty header */
        apr_pstrcat(p, h, ".", pl, ".", NULL),            /* empty signature */
        apr_pstrcat(p, h, "=.", pl, ".", s, NULL),        /* padding */
        apr_pstrcat(p, h, ".", pl, ".", s, "=", NULL),
        apr_pstrcat(p, h, ".", pl, "*.", s, NULL),         /* bad alphabet */
        apr_pstrcat(p, h, " .", pl, ".", s, NULL),         /* whitespace */
        apr_pstrcat(p, "+", h + 1, ".", pl, ".", s, NULL), /* std base64 */
        apr_pstrcat(p, h, ".", pl, ".", s, "\n", NULL),
        apr_pstrcat(p, B64S(p, "[1]"), ".", pl, ".", sg, NULL), /* header array */
        apr_pstrcat(p, B64S(p, "{\"alg\":1}"), ".", pl, ".", sg, NULL),
        apr_pstrcat(p, B64S(p, "{\"typ\":\"JWT\"}"), ".", pl, ".", sg, NULL),
        apr_pstrcat(p, B64S(p, "{\"alg\":\"ES256\",\"kid\":7}"), ".", pl, ".", sg, NULL),
        apr_pstrcat(p, B64S(p, "{\"alg\":\"ES256\",\"alg\":\"none\"}"), ".", pl, ".", sg,
                    NULL), /* duplicate */
        apr_pstrcat(p, B64S(p, "{\"alg\":\"ES256\"} x"), ".", pl, ".", sg, NULL),
        apr_pstrcat(p, b64u(p, hdr_ok, strlen(hdr_ok)), ".", B64S(p, "\"x\""), ".", sg,
                    NULL), /* payload string */
        apr_pstrcat(p, b64u(p, hdr_ok, strlen(hdr_ok)), ".", B64S(p, "not json"), ".", sg, NULL),
        apr_pstrcat(p, b64u(p, hdr_ok, strlen(hdr_ok)), ".", B64S(p, "{\"a\":1,\"a\":2}"), ".", sg,
                    NULL),
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        print_message("case %d\n", (int)i);
        jws = (bff_jws_t *)(uintptr_t)1;
        err = NULL;
        assert_int_equal(bff_jose_jws_parse(p, bad[i], &jws, &err), APR_EINVAL);
        assert_null(jws);
        assert_non_null(err);
    }
    assert_int_equal(bff_jose_jws_parse(p, NULL, &jws, &err), APR_EINVAL);

    /* Huge: a valid shape past 64 KiB. */
    huge = apr_palloc(p, 70000);
    memset(huge, 'A', 69999);
    huge[69999] = 0;
    tok = apr_pstrcat(p, h, ".", pl, ".", huge, NULL);
    assert_int_equal(bff_jose_jws_parse(p, tok, &jws, &err), APR_EINVAL);
    assert_null(jws);

    /* The same token is fine. */
    assert_int_equal(bff_jose_jws_parse(p, apr_pstrcat(p, h, ".", pl, ".", s, NULL), &jws, &err),
                     APR_SUCCESS);
}

static void test_jwks_junk(void **state)
{
    apr_pool_t *p = *state;
    bff_jwks_t *jwks;
    const char *err;
    int skipped;
    char *big;
    const char *refused[] = {
        "not json",
        "[]",
        "\"keys\"",
        "{}",
        "{\"keys\":{}}",
        "{\"keys\":\"x\"}",
        "{\"keys\":null}",
        "{\"keys\":[]} trailing",
        "{\"keys\":[],\"keys\":[]}",
    };
    size_t i;

    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); ++i) {
        jwks = (bff_jwks_t *)(uintptr_t)1;
        err = NULL;
        assert_int_equal(bff_jose_jwks_parse(p, refused[i], strlen(refused[i]), &jwks, &skipped,
                                             &err),
                         APR_EINVAL);
        assert_null(jwks);
        assert_non_null(err);
    }
    assert_int_equal(bff_jose_jwks_parse(p, "{\"keys\":[]}", 0, &jwks, NULL, &err), APR_EINVAL);

    /* Over 256 KiB, even if it is well-formed. */
    big = apr_palloc(p, 300000);
    memset(big, ' ', 300000);
    memcpy(big, "{\"keys\":[]}", 11);
    assert_int_equal(bff_jose_jwks_parse(p, big, 300000, &jwks, NULL, &err), APR_EINVAL);
    assert_int_equal(bff_jose_jwks_parse(p, big, 200000, &jwks, NULL, &err), APR_SUCCESS);
    assert_int_equal(bff_jose_jwks_count(jwks), 0);

    /* An empty set is a valid (useless) JWKS. */
    jwks = jwks_load(p, "{\"keys\":[]}", 0, 0);
    assert_int_equal(check(p, make_jwt(p, key(K_P256), "ES256", NULL), jwks, NULL, &err),
                     APR_EINVAL);
}

static void test_jwks_skips(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *rsa = key(K_RSA), *ec = key(K_P256);
    char *good_ec = jwk_json(p, ec, "ec", NULL);
    char *x = bn_param_b64(p, ec, OSSL_PKEY_PARAM_EC_PUB_X, 32);
    char *y = bn_param_b64(p, ec, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    char *n = bn_param_b64(p, rsa, OSSL_PKEY_PARAM_RSA_N, 0);
    unsigned char bad_y[32];
    const char *skip[] = {
        "1",
        "\"key\"",
        "{}",
        "{\"kty\":\"RSA\",\"e\":\"AQAB\"}",                                      /* no n */
        apr_psprintf(p, "{\"kty\":\"RSA\",\"n\":\"%s\"}", n),                    /* no e */
        apr_psprintf(p, "{\"kty\":\"RSA\",\"n\":\"%s=\",\"e\":\"AQAB\"}", n),    /* padded */
        apr_psprintf(p, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}", n + 1), /* bad b64 */
        apr_psprintf(p, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAA\"}", n),     /* even e */
        apr_psprintf(p, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":1}", n),
        apr_psprintf(p, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\",\"use\":\"enc\"}", n),
        apr_psprintf(p, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\",\"use\":1}", n),
        apr_psprintf(p,
                     "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\","
                     "\"key_ops\":[\"encrypt\",\"sign\"]}",
                     n),
        apr_psprintf(p, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\",\"key_ops\":\"verify\"}", n),
        apr_psprintf(p, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\",\"alg\":\"HS256\"}", n),
        apr_psprintf(p, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\",\"alg\":\"ES256\"}", n),
        apr_psprintf(p, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\",\"kid\":5}", n),
        jwk_json(p, key(K_RSA1024), "small", NULL), /* 1024 bits */
        apr_psprintf(p, "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"%s\",\"y\":\"%s\"}", x, y),
        apr_psprintf(p, "{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"%s\",\"y\":\"%s\"}", x, y),
        apr_psprintf(p, "{\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y),
        apr_psprintf(p, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\"}", x),
        apr_psprintf(p, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}",
                     B64S(p, "0123456789012345678901234567890"), y), /* short x */
        apr_psprintf(p,
                     "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\","
                     "\"alg\":\"ES384\"}",
                     x, y),
        NULL, /* off-curve point, below */
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}",
        "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
        "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}",
        "{\"kty\":\"DSA\"}",
    };
    const char *keep[] = {
        good_ec,
        jwk_json(p, rsa, "r1", "\"use\":\"sig\",\"key_ops\":[\"verify\"],\"alg\":\"PS256\""),
        jwk_json(p, key(K_ED25519), NULL, "\"key_ops\":[\"sign\",\"verify\"]"),
    };
    char *json = apr_pstrdup(p, "{\"keys\":[");
    bff_jwks_t *jwks;
    size_t i;

    memcpy(bad_y, "not a point on the curve at all", 32);
    skip[23] = apr_psprintf(p, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", x,
                            b64u(p, bad_y, 32));
    for (i = 0; i < sizeof(skip) / sizeof(skip[0]); ++i) {
        const char *one = apr_psprintf(p, "{\"keys\":[%s]}", skip[i]);
        print_message("skip case %d\n", (int)i);
        jwks_load(p, one, 0, 1);
        json = apr_pstrcat(p, json, skip[i], ",", NULL);
    }
    for (i = 0; i < sizeof(keep) / sizeof(keep[0]); ++i) {
        json = apr_pstrcat(p, json, keep[i], i + 1 < sizeof(keep) / sizeof(keep[0]) ? "," : "",
                           NULL);
    }
    json = apr_pstrcat(p, json, "]}", NULL);
    jwks = jwks_load(p, json, 3, (int)(sizeof(skip) / sizeof(skip[0])));
    assert_true(bff_jose_jwks_has_kid(jwks, "ec"));
    assert_true(bff_jose_jwks_has_kid(jwks, "r1"));
    assert_false(bff_jose_jwks_has_kid(jwks, "small"));
}

static void test_rsa1024_refused(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *k = key(K_RSA1024);
    bff_jwks_t *jwks = jwks_load(p, jwks_of(p, jwk_json(p, k, "small", NULL), NULL, NULL), 0, 1);
    const char *err;

    assert_int_equal(check(p, make_jwt(p, k, "RS256", "small"), jwks, NULL, &err), APR_NOTFOUND);
    assert_int_equal(check(p, make_jwt(p, k, "RS256", NULL), jwks, NULL, &err), APR_EINVAL);
}

static void test_verify_null(void **state)
{
    apr_pool_t *p = *state;
    bff_jws_t *jws;
    const char *err;

    assert_int_equal(bff_jose_jws_parse(p, make_jwt(p, key(K_P256), "ES256", NULL), &jws, &err),
                     APR_SUCCESS);
    assert_int_equal(bff_jose_jws_verify(p, jws, NULL, NULL, &err), APR_EINVAL);
    assert_int_equal(bff_jose_jws_verify(p, NULL, NULL, NULL, &err), APR_EINVAL);
    assert_int_equal(bff_jose_jwks_count(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_alg, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_pss_salt_length, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_parse_fields, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_alg_supported, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_alg_none, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_hs256_key_confusion, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_alg_key_mismatch, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_jwk_alg, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_kid, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_kid, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_ecdsa_sig_length, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_crit, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_parse_malformed, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_jwks_junk, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_jwks_skips, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_rsa1024_refused, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_verify_null, unit_pool_setup, unit_pool_teardown),
    };
    return unit_run("jose", tests);
}
