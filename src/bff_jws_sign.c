/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the module's own signing key for private_key_jwt: PEM loading with the key-size and
 * curve checks, the public JWK(S) and RFC 7638 thumbprint, the algorithm choice, compact JWS
 * signing (ECDSA signatures converted from DER to JOSE's r||s).
 */
#include <string.h>

#include <apr_strings.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "bff_jws_sign.h"
#include "bff_util.h"

#define KID_MAX 128
#define P256_COORD 32

typedef enum { KEY_RSA, KEY_EC } key_kind_e;

struct bff_jws_sign_key_t {
    EVP_PKEY *pkey;
    key_kind_e kind;
    int bits;
    const char *kid;
    const char *desc; /* "RSA 2048 bits", "EC P-256" */
    const char *jwks; /* the public JWKS document */
};

static apr_status_t pkey_cleanup(void *data)
{
    EVP_PKEY_free(data);
    return APR_SUCCESS;
}

/* No prompt, ever: an encrypted key fails to load instead of waiting for a
 * passphrase on the terminal httpd started from. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static char *bn_b64url(apr_pool_t *p, const EVP_PKEY *pkey, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char *buf;
    char *out = NULL;
    int n;

    if (!EVP_PKEY_get_bn_param(pkey, name, &bn)) {
        return NULL;
    }
    n = pad ? pad : BN_num_bytes(bn);
    buf = apr_palloc(p, (apr_size_t)(n ? n : 1));
    if (BN_bn2binpad(bn, buf, n) == n) {
        out = bff_util_b64url_encode(p, buf, (apr_size_t)n);
    }
    BN_free(bn);
    return out;
}

/* The public members in RFC 7638's order (lexicographic), which is also
 * the thumbprint's input. */
static json_t *public_members(apr_pool_t *p, const bff_jws_sign_key_t *k)
{
    if (k->kind == KEY_RSA) {
        const char *n = bn_b64url(p, k->pkey, OSSL_PKEY_PARAM_RSA_N, 0);
        const char *e = bn_b64url(p, k->pkey, OSSL_PKEY_PARAM_RSA_E, 0);
        return n && e ? json_pack("{s:s, s:s, s:s}", "e", e, "kty", "RSA", "n", n) : NULL;
    }
    else {
        const char *x = bn_b64url(p, k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, P256_COORD);
        const char *y = bn_b64url(p, k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, P256_COORD);
        return x && y
                   ? json_pack("{s:s, s:s, s:s, s:s}", "crv", "P-256", "kty", "EC", "x", x, "y", y)
                   : NULL;
    }
}

/* RFC 7638: base64url(SHA-256(the required members, sorted, no spaces)). */
static const char *thumbprint(apr_pool_t *p, json_t *members)
{
    char *text = json_dumps(members, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char md[32];
    const char *out = NULL;

    if (text && APR_SUCCESS == bff_util_sha256(text, strlen(text), md)) {
        out = bff_util_b64url_encode(p, md, sizeof(md));
    }
    free(text);
    return out;
}

/* {"keys":[{kty, use, kid, [alg,] public members}]}: built from the public
 * members only, so no private parameter can slip in. */
static const char *jwks_document(apr_pool_t *p, const bff_jws_sign_key_t *k, json_t *members)
{
    json_t *jwk = json_object(), *doc;
    char *text;
    const char *out = NULL;

    if (!jwk) {
        return NULL;
    }
    json_object_set_new(jwk, "kty", json_string(k->kind == KEY_RSA ? "RSA" : "EC"));
    json_object_set_new(jwk, "use", json_string("sig"));
    json_object_set_new(jwk, "kid", json_string(k->kid));
    if (k->kind == KEY_EC) {
        json_object_set_new(jwk, "alg", json_string("ES256"));
    }
    json_object_update_missing(jwk, members);
    doc = json_pack("{s:[o]}", "keys", jwk);
    if (!doc) {
        return NULL;
    }
    if ((text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
        out = apr_pstrdup(p, text);
        free(text);
    }
    json_decref(doc);
    return out;
}

static int is_p256(const EVP_PKEY *pkey, char *group, apr_size_t size)
{
    size_t len = 0;

    group[0] = '\0';
    if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, size, &len)) {
        apr_cpystrn(group, "an unnamed curve", size);
        return 0;
    }
    return !strcmp(group, "prime256v1") || !strcmp(group, "P-256");
}

/* What the key is, and whether we take it. */
static apr_status_t check_kind(apr_pool_t *p, bff_jws_sign_key_t *k, const char **err)
{
    char group[64];

    k->bits = EVP_PKEY_get_bits(k->pkey);
    /* EVP_PKEY_is_a "RSA" is false for an RSA-PSS-restricted key, which
     * could not sign RS256: refused with the rest. */
    if (EVP_PKEY_is_a(k->pkey, "RSA")) {
        k->kind = KEY_RSA;
        if (k->bits < BFF_JWS_SIGN_RSA_MIN_BITS) {
            *err = apr_psprintf(p,
                                "the key is RSA of %d bits; private_key_jwt needs RSA of at "
                                "least %d bits or EC P-256",
                                k->bits, BFF_JWS_SIGN_RSA_MIN_BITS);
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    }
    if (EVP_PKEY_is_a(k->pkey, "EC")) {
        k->kind = KEY_EC;
        if (!is_p256(k->pkey, group, sizeof(group))) {
            *err = apr_psprintf(p,
                                "the key is EC on %s (%d bits); private_key_jwt needs EC "
                                "P-256 (prime256v1) or RSA of at least %d bits",
                                group, k->bits, BFF_JWS_SIGN_RSA_MIN_BITS);
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    }
    *err = apr_psprintf(p,
                        "the key is of type %s; private_key_jwt needs RSA of at least %d "
                        "bits or EC P-256",
                        EVP_PKEY_get0_type_name(k->pkey) ? EVP_PKEY_get0_type_name(k->pkey)
                                                         : "unknown",
                        BFF_JWS_SIGN_RSA_MIN_BITS);
    return APR_EINVAL;
}

static apr_status_t check_kid(apr_pool_t *p, const char *kid, const char **err)
{
    const char *c;

    if (!*kid || strlen(kid) > KID_MAX) {
        *err = apr_psprintf(p, "the key id must be 1 to %d characters", KID_MAX);
        return APR_EINVAL;
    }
    for (c = kid; *c; ++c) {
        if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e) {
            *err = "the key id must be printable ASCII without spaces";
            return APR_EINVAL;
        }
    }
    return APR_SUCCESS;
}

static EVP_PKEY *read_pem(const char *pem, apr_size_t len)
{
    BIO *bio;
    EVP_PKEY *pkey;

    if (len > (apr_size_t)0x7fffffff || !(bio = BIO_new_mem_buf(pem, (int)len))) {
        return NULL;
    }
    pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    /* OpenSSL's error queue may describe the input; it is not ours to keep. */
    ERR_clear_error();
    return pkey;
}

apr_status_t bff_jws_sign_key_load(apr_pool_t *p, const char *pem, apr_size_t len, const char *kid,
                                   bff_jws_sign_key_t **key, const char **err)
{
    bff_jws_sign_key_t *k;
    json_t *members = NULL;
    apr_status_t rv;

    *key = NULL;
    *err = NULL;
    if (kid && APR_SUCCESS != (rv = check_kid(p, kid, err))) {
        return rv;
    }
    k = apr_pcalloc(p, sizeof(*k));
    if (!pem || !(k->pkey = read_pem(pem, len))) {
        *err = "no unencrypted private key in PEM form (-----BEGIN PRIVATE KEY-----, "
               "RSA PRIVATE KEY or EC PRIVATE KEY) could be read";
        return APR_EINVAL;
    }
    apr_pool_cleanup_register(p, k->pkey, pkey_cleanup, apr_pool_cleanup_null);
    if (APR_SUCCESS != (rv = check_kind(p, k, err))) {
        return rv;
    }
    k->desc = k->kind == KEY_EC ? "EC P-256" : apr_psprintf(p, "RSA %d bits", k->bits);
    if (!(members = public_members(p, k))) {
        *err = "the public key could not be read from the private key";
        return APR_EGENERAL;
    }
    k->kid = kid ? apr_pstrdup(p, kid) : thumbprint(p, members);
    k->jwks = k->kid ? jwks_document(p, k, members) : NULL;
    json_decref(members);
    if (!k->jwks) {
        *err = "the public JWKS could not be built";
        return APR_EGENERAL;
    }
    *key = k;
    return APR_SUCCESS;
}

const char *bff_jws_sign_key_kid(const bff_jws_sign_key_t *key)
{
    return key->kid;
}

const char *bff_jws_sign_key_desc(const bff_jws_sign_key_t *key)
{
    return key->desc;
}

const char *bff_jws_sign_key_jwks(const bff_jws_sign_key_t *key)
{
    return key->jwks;
}

static int listed(const char *const *algs, const char *alg)
{
    int i;

    for (i = 0; algs[i]; ++i) {
        if (!strcmp(algs[i], alg)) {
            return 1;
        }
    }
    return 0;
}

const char *bff_jws_sign_choose_alg(const bff_jws_sign_key_t *key, const char *const *advertised)
{
    if (key->kind == KEY_EC) {
        return !advertised || listed(advertised, "ES256") ? "ES256" : NULL;
    }
    if (!advertised) {
        return "RS256";
    }
    /* PSS has a security proof PKCS#1 v1.5 lacks (RFC 8017 8). */
    if (listed(advertised, "PS256")) {
        return "PS256";
    }
    return listed(advertised, "RS256") ? "RS256" : NULL;
}

static int alg_fits(const bff_jws_sign_key_t *key, const char *alg)
{
    if (key->kind == KEY_EC) {
        return !strcmp(alg, "ES256");
    }
    return !strcmp(alg, "RS256") || !strcmp(alg, "PS256");
}

/* ECDSA in DER (SEQUENCE of two INTEGERs) to JOSE's fixed-size r||s
 * (RFC 7518 3.4). */
static apr_status_t ecdsa_der_to_jose(const unsigned char *der, size_t len, unsigned char *out)
{
    const unsigned char *q = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &q, (long)len);
    const BIGNUM *r, *s;
    apr_status_t rv = APR_EGENERAL;

    if (!sig) {
        return APR_EGENERAL;
    }
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, out, P256_COORD) == P256_COORD
        && BN_bn2binpad(s, out + P256_COORD, P256_COORD) == P256_COORD) {
        rv = APR_SUCCESS;
    }
    ECDSA_SIG_free(sig);
    return rv;
}

/* The raw signature of input, in JOSE's form. */
static apr_status_t sign_input(apr_pool_t *p, const bff_jws_sign_key_t *key, const char *alg,
                               const char *input, unsigned char **sig, size_t *sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL;
    size_t len = 0;
    apr_status_t rv = APR_EGENERAL;

    if (!md || EVP_DigestSignInit_ex(md, &pctx, "SHA256", NULL, NULL, key->pkey, NULL) != 1) {
        goto leave;
    }
    if (!strcmp(alg, "PS256")
        && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1
            || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) {
        goto leave;
    }
    if (EVP_DigestSign(md, NULL, &len, (const unsigned char *)input, strlen(input)) != 1) {
        goto leave;
    }
    der = apr_palloc(p, len);
    if (EVP_DigestSign(md, der, &len, (const unsigned char *)input, strlen(input)) != 1) {
        goto leave;
    }
    if (key->kind == KEY_EC) {
        *sig = apr_palloc(p, 2 * P256_COORD);
        *sig_len = 2 * P256_COORD;
        rv = ecdsa_der_to_jose(der, len, *sig);
    }
    else {
        *sig = der;
        *sig_len = len;
        rv = APR_SUCCESS;
    }
leave:
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return rv;
}

static char *b64url_json(apr_pool_t *p, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *out = NULL;

    if (text) {
        out = bff_util_b64url_encode(p, (const unsigned char *)text, strlen(text));
        free(text);
    }
    return out;
}

apr_status_t bff_jws_sign_compact(apr_pool_t *p, const bff_jws_sign_key_t *key, const char *alg,
                                  const char *typ, json_t *payload, char **out, const char **err)
{
    json_t *header;
    const char *h, *b;
    char *input;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    *out = NULL;
    *err = NULL;
    if (!key || !alg || !json_is_object(payload) || !alg_fits(key, alg)) {
        *err = apr_psprintf(p, "cannot sign %s with this key", alg ? alg : "(no alg)");
        return APR_EINVAL;
    }
    header = json_pack("{s:s, s:s}", "alg", alg, "kid", key->kid);
    if (header && typ) {
        json_object_set_new(header, "typ", json_string(typ));
    }
    h = header ? b64url_json(p, header) : NULL;
    json_decref(header);
    b = b64url_json(p, payload);
    if (!h || !b) {
        *err = "the JWS header or payload could not be encoded";
        return APR_EGENERAL;
    }
    input = apr_pstrcat(p, h, ".", b, NULL);
    if (APR_SUCCESS != sign_input(p, key, alg, input, &sig, &sig_len)) {
        *err = apr_psprintf(p, "signing with %s failed", alg);
        return APR_EGENERAL;
    }
    *out = apr_pstrcat(p, input, ".", bff_util_b64url_encode(p, sig, sig_len), NULL);
    return APR_SUCCESS;
}
