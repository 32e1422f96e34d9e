/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: JWKS parsing and compact JWS verification (RSA, RSA-PSS, ECDSA, EdDSA) with OpenSSL 3;
 * never none or HMAC.
 */
#include <string.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "bff_jose.h"
#include "bff_log.h"
#include "bff_util.h"

#define JWKS_MAX_LEN (256 * 1024)
#define JWS_MAX_LEN (64 * 1024)
#define RSA_MIN_BITS 2048
/* Bounds the cost of one verification a hostile JWKS can make us do. */
#define RSA_MAX_BITS 16384
#define RSA_MAX_E_LEN 8

typedef enum { KT_RSA, KT_EC, KT_OKP } bff_kty_e;

typedef struct {
    const char *name;
    bff_kty_e kty;
    const char *md; /* NULL for EdDSA (the algorithm hashes itself) */
    int pss;
    const char *crv;      /* EC: the one curve the alg allows */
    apr_size_t coord_len; /* EC: bytes per coordinate, r and s */
} bff_alg_t;

static const bff_alg_t ALGS[] = {
    { "RS256", KT_RSA, "SHA256", 0, NULL, 0 },    { "RS384", KT_RSA, "SHA384", 0, NULL, 0 },
    { "RS512", KT_RSA, "SHA512", 0, NULL, 0 },    { "PS256", KT_RSA, "SHA256", 1, NULL, 0 },
    { "PS384", KT_RSA, "SHA384", 1, NULL, 0 },    { "PS512", KT_RSA, "SHA512", 1, NULL, 0 },
    { "ES256", KT_EC, "SHA256", 0, "P-256", 32 }, { "ES384", KT_EC, "SHA384", 0, "P-384", 48 },
    { "ES512", KT_EC, "SHA512", 0, "P-521", 66 }, { "EdDSA", KT_OKP, NULL, 0, NULL, 0 },
};

typedef struct {
    const char *crv;
    const char *group;
    apr_size_t coord_len;
} bff_curve_t;

static const bff_curve_t CURVES[] = {
    { "P-256", "prime256v1", 32 },
    { "P-384", "secp384r1", 48 },
    { "P-521", "secp521r1", 66 },
};

typedef struct {
    const char *kid; /* NULL when absent */
    const char *kty;
    const char *crv; /* NULL for RSA */
    const char *alg; /* NULL when absent */
    bff_kty_e type;
    EVP_PKEY *pkey;
} bff_jwk_t;

struct bff_jwks_t {
    apr_array_header_t *keys; /* of bff_jwk_t */
};

static const bff_alg_t *alg_lookup(const char *alg)
{
    apr_size_t i;

    if (!alg) {
        return NULL;
    }
    for (i = 0; i < sizeof(ALGS) / sizeof(ALGS[0]); ++i) {
        if (!strcmp(ALGS[i].name, alg)) {
            return &ALGS[i];
        }
    }
    return NULL;
}

int bff_jose_alg_supported(const char *alg)
{
    return alg_lookup(alg) != NULL;
}

static apr_status_t pkey_cleanup(void *data)
{
    EVP_PKEY_free(data);
    return APR_SUCCESS;
}

static apr_status_t json_cleanup(void *data)
{
    json_decref(data);
    return APR_SUCCESS;
}

/* A member that must be a string when present: NULL when absent, *bad set
 * when present with another type. */
static const char *opt_string(json_t *obj, const char *name, int *bad)
{
    json_t *v = json_object_get(obj, name);

    if (!v) {
        return NULL;
    }
    if (!json_is_string(v)) {
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

static apr_status_t b64_member(apr_pool_t *p, json_t *obj, const char *name, unsigned char **out,
                               apr_size_t *outlen)
{
    json_t *v = json_object_get(obj, name);

    if (!json_is_string(v) || json_string_length(v) == 0) {
        return APR_EINVAL;
    }
    return bff_util_b64url_decode(p, json_string_value(v), json_string_length(v), out, outlen);
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (!(params = OSSL_PARAM_BLD_to_param(bld))
        || !(ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL)) || EVP_PKEY_fromdata_init(ctx) <= 0
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static const char *rsa_key(apr_pool_t *p, json_t *jk, EVP_PKEY **ppkey)
{
    unsigned char *nb, *eb;
    apr_size_t nlen, elen;
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    const char *why = NULL;
    int bits;

    if (APR_SUCCESS != b64_member(p, jk, "n", &nb, &nlen)) {
        return "RSA key without a valid \"n\"";
    }
    if (APR_SUCCESS != b64_member(p, jk, "e", &eb, &elen)) {
        return "RSA key without a valid \"e\"";
    }
    if (elen > RSA_MAX_E_LEN) {
        return "RSA exponent too large";
    }
    /* One spare byte for a (non-canonical) leading zero. */
    if (nlen > RSA_MAX_BITS / 8 + 1) {
        return "RSA modulus too large";
    }
    if (!(n = BN_bin2bn(nb, (int)nlen, NULL)) || !(e = BN_bin2bn(eb, (int)elen, NULL))) {
        why = "out of memory";
        goto leave;
    }
    bits = BN_num_bits(n);
    if (bits > RSA_MAX_BITS) {
        why = "RSA modulus too large";
        goto leave;
    }
    if (bits < RSA_MIN_BITS) {
        why = "RSA key shorter than 2048 bits";
        goto leave;
    }
    if (!BN_is_odd(n) || !BN_is_odd(e) || BN_is_one(e)) {
        why = "RSA key with impossible n or e";
        goto leave;
    }
    if (!(bld = OSSL_PARAM_BLD_new()) || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n)
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)
        || !(*ppkey = pkey_fromdata("RSA", bld))) {
        why = "RSA key rejected by OpenSSL";
    }
leave:
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return why;
}

static const char *ec_key(apr_pool_t *p, json_t *jk, const char *crv, EVP_PKEY **ppkey)
{
    const bff_curve_t *curve = NULL;
    unsigned char *x, *y, *pub;
    apr_size_t xlen, ylen, i;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY_CTX *cctx = NULL;
    const char *why = NULL;

    for (i = 0; crv && i < sizeof(CURVES) / sizeof(CURVES[0]); ++i) {
        if (!strcmp(CURVES[i].crv, crv)) {
            curve = &CURVES[i];
        }
    }
    if (!curve) {
        return "EC key with an unsupported or missing \"crv\"";
    }
    if (APR_SUCCESS != b64_member(p, jk, "x", &x, &xlen)
        || APR_SUCCESS != b64_member(p, jk, "y", &y, &ylen)) {
        return "EC key without valid \"x\" and \"y\"";
    }
    if (xlen != curve->coord_len || ylen != curve->coord_len) {
        return "EC key coordinates of the wrong length";
    }
    pub = apr_palloc(p, 1 + 2 * curve->coord_len);
    pub[0] = 0x04;
    memcpy(pub + 1, x, xlen);
    memcpy(pub + 1 + xlen, y, ylen);

    if (!(bld = OSSL_PARAM_BLD_new())
        || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve->group, 0)
        || !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                             1 + 2 * curve->coord_len)
        || !(*ppkey = pkey_fromdata("EC", bld))) {
        why = "EC key rejected by OpenSSL (point not on the curve?)";
        goto leave;
    }
    /* Point on the curve, not infinity, in the right subgroup. */
    if (!(cctx = EVP_PKEY_CTX_new_from_pkey(NULL, *ppkey, NULL))
        || EVP_PKEY_public_check(cctx) != 1) {
        EVP_PKEY_free(*ppkey);
        *ppkey = NULL;
        why = "EC key fails the public key check";
    }
leave:
    EVP_PKEY_CTX_free(cctx);
    OSSL_PARAM_BLD_free(bld);
    return why;
}

static const char *okp_key(apr_pool_t *p, json_t *jk, const char *crv, EVP_PKEY **ppkey)
{
    unsigned char *x;
    apr_size_t xlen, want;
    int type;

    if (crv && !strcmp(crv, "Ed25519")) {
        type = EVP_PKEY_ED25519;
        want = 32;
    }
    else if (crv && !strcmp(crv, "Ed448")) {
        type = EVP_PKEY_ED448;
        want = 57;
    }
    else {
        return "OKP key with an unsupported or missing \"crv\"";
    }
    if (APR_SUCCESS != b64_member(p, jk, "x", &x, &xlen)) {
        return "OKP key without a valid \"x\"";
    }
    if (xlen != want) {
        return "OKP key of the wrong length";
    }
    if (!(*ppkey = EVP_PKEY_new_raw_public_key(type, NULL, x, xlen))) {
        return "OKP key rejected by OpenSSL";
    }
    return NULL;
}

/* Does the key say it may verify signatures? "use" and "key_ops" are both
 * optional; when present they must allow it. */
static const char *key_usage(json_t *jk)
{
    json_t *use = json_object_get(jk, "use");
    json_t *ops = json_object_get(jk, "key_ops");
    size_t i;

    if (use && !(json_is_string(use) && !strcmp(json_string_value(use), "sig"))) {
        return "key \"use\" is not \"sig\"";
    }
    if (ops) {
        if (!json_is_array(ops)) {
            return "key \"key_ops\" is not an array";
        }
        for (i = 0; i < json_array_size(ops); ++i) {
            json_t *op = json_array_get(ops, i);
            if (json_is_string(op) && !strcmp(json_string_value(op), "verify")) {
                return NULL;
            }
        }
        return "key \"key_ops\" lacks \"verify\"";
    }
    return NULL;
}

static const char *parse_key(apr_pool_t *p, json_t *jk, bff_jwk_t *k)
{
    const char *kty, *kid, *crv, *alg, *why;
    const bff_alg_t *ai = NULL;
    int bad = 0;

    memset(k, 0, sizeof(*k));
    if (!json_is_object(jk)) {
        return "key is not a JSON object";
    }
    kty = opt_string(jk, "kty", &bad);
    kid = opt_string(jk, "kid", &bad);
    crv = opt_string(jk, "crv", &bad);
    alg = opt_string(jk, "alg", &bad);
    if (bad || !kty) {
        return "key with a missing \"kty\" or a non-string kty/kid/crv/alg";
    }
    if ((why = key_usage(jk))) {
        return why;
    }
    /* A key bound to an alg we will never accept can never verify anything. */
    if (alg && !(ai = alg_lookup(alg))) {
        return "key \"alg\" is not one we support";
    }

    if (!strcmp(kty, "RSA")) {
        k->type = KT_RSA;
        crv = NULL;
        why = rsa_key(p, jk, &k->pkey);
    }
    else if (!strcmp(kty, "EC")) {
        k->type = KT_EC;
        why = ec_key(p, jk, crv, &k->pkey);
    }
    else if (!strcmp(kty, "OKP")) {
        k->type = KT_OKP;
        why = okp_key(p, jk, crv, &k->pkey);
    }
    else {
        return "unsupported \"kty\"";
    }
    if (!why && ai && (ai->kty != k->type || (ai->crv && strcmp(ai->crv, crv)))) {
        why = "key \"alg\" does not fit its kty/crv";
    }
    if (why) {
        EVP_PKEY_free(k->pkey);
        k->pkey = NULL;
        return why;
    }
    apr_pool_cleanup_register(p, k->pkey, pkey_cleanup, apr_pool_cleanup_null);
    k->kty = apr_pstrdup(p, kty);
    k->kid = kid ? apr_pstrdup(p, kid) : NULL;
    k->crv = crv ? apr_pstrdup(p, crv) : NULL;
    k->alg = alg ? apr_pstrdup(p, alg) : NULL;
    return NULL;
}

apr_status_t bff_jose_jwks_parse(apr_pool_t *p, const char *json, apr_size_t len, bff_jwks_t **jwks,
                                 int *skipped, const char **err)
{
    json_t *doc = NULL, *keys;
    json_error_t jerr;
    bff_jwks_t *set;
    apr_status_t rv = APR_EINVAL;
    int nskipped = 0;
    size_t i;

    *jwks = NULL;
    *err = NULL;
    if (skipped) {
        *skipped = 0;
    }
    if (!json || len == 0 || len > JWKS_MAX_LEN) {
        *err = "JWKS empty or larger than 256 KiB";
        goto leave;
    }
    if (!(doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr)) || !json_is_object(doc)) {
        *err = "JWKS is not a JSON object";
        goto leave;
    }
    keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        *err = "JWKS has no \"keys\" array";
        goto leave;
    }

    set = apr_pcalloc(p, sizeof(*set));
    set->keys = apr_array_make(p, (int)json_array_size(keys) + 1, sizeof(bff_jwk_t));
    for (i = 0; i < json_array_size(keys); ++i) {
        bff_jwk_t k;
        const char *why = parse_key(p, json_array_get(keys, i), &k);

        if (why) {
            ++nskipped;
            BFF_LOG(BFF_LOG_DEBUG, APR_SUCCESS, "BFF00801: JWKS key #%d skipped: %s", (int)i, why);
            ERR_clear_error();
            continue;
        }
        APR_ARRAY_PUSH(set->keys, bff_jwk_t) = k;
    }
    if (skipped) {
        *skipped = nskipped;
    }
    *jwks = set;
    rv = APR_SUCCESS;
leave:
    json_decref(doc);
    return rv;
}

int bff_jose_jwks_count(const bff_jwks_t *jwks)
{
    return jwks ? jwks->keys->nelts : 0;
}

int bff_jose_jwks_has_kid(const bff_jwks_t *jwks, const char *kid)
{
    int i;

    if (!jwks || !kid) {
        return 0;
    }
    for (i = 0; i < jwks->keys->nelts; ++i) {
        const bff_jwk_t *k = &APR_ARRAY_IDX(jwks->keys, i, bff_jwk_t);
        if (k->kid && !strcmp(k->kid, kid)) {
            return 1;
        }
    }
    return 0;
}

static apr_status_t b64_json_object(apr_pool_t *p, const char *s, apr_size_t slen, json_t **obj)
{
    unsigned char *raw;
    apr_size_t rawlen;
    json_error_t jerr;
    json_t *v;

    *obj = NULL;
    if (slen == 0 || APR_SUCCESS != bff_util_b64url_decode(p, s, slen, &raw, &rawlen)) {
        return APR_EINVAL;
    }
    /* Duplicate members are refused: two parsers must not read two different tokens. */
    if (!(v = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, &jerr))) {
        return APR_EINVAL;
    }
    apr_pool_cleanup_register(p, v, json_cleanup, apr_pool_cleanup_null);
    if (!json_is_object(v)) {
        return APR_EINVAL;
    }
    *obj = v;
    return APR_SUCCESS;
}

apr_status_t bff_jose_jws_parse(apr_pool_t *p, const char *compact, bff_jws_t **pjws,
                                const char **err)
{
    const char *dot1, *dot2, *sig_b64;
    apr_size_t len, hlen, plen, slen;
    unsigned char *sig;
    bff_jws_t *jws;
    int bad = 0;

    *pjws = NULL;
    *err = NULL;
    if (!compact) {
        *err = "JWS missing";
        return APR_EINVAL;
    }
    len = strnlen(compact, JWS_MAX_LEN + 1);
    if (len > JWS_MAX_LEN) {
        *err = "JWS larger than 64 KiB";
        return APR_EINVAL;
    }
    if (!(dot1 = memchr(compact, '.', len))
        || !(dot2 = memchr(dot1 + 1, '.', len - (apr_size_t)(dot1 + 1 - compact)))
        || memchr(dot2 + 1, '.', len - (apr_size_t)(dot2 + 1 - compact))) {
        *err = "JWS does not have exactly three parts";
        return APR_EINVAL;
    }
    hlen = (apr_size_t)(dot1 - compact);
    plen = (apr_size_t)(dot2 - dot1 - 1);
    sig_b64 = dot2 + 1;
    slen = len - (apr_size_t)(sig_b64 - compact);

    jws = apr_pcalloc(p, sizeof(*jws));
    if (APR_SUCCESS != b64_json_object(p, compact, hlen, &jws->header)) {
        *err = "JWS header is not base64url of a JSON object";
        return APR_EINVAL;
    }
    if (APR_SUCCESS != b64_json_object(p, dot1 + 1, plen, &jws->payload)) {
        *err = "JWS payload is not base64url of a JSON object";
        return APR_EINVAL;
    }
    /* We are an unsigned-token-never implementation: no signature, no token. */
    if (slen == 0 || APR_SUCCESS != bff_util_b64url_decode(p, sig_b64, slen, &sig, &jws->sig_len)
        || jws->sig_len == 0) {
        *err = "JWS signature missing or not base64url";
        return APR_EINVAL;
    }
    jws->sig = sig;

    jws->alg = opt_string(jws->header, "alg", &bad);
    jws->kid = opt_string(jws->header, "kid", &bad);
    jws->typ = opt_string(jws->header, "typ", &bad);
    if (bad || !jws->alg) {
        *err = "JWS header alg missing, or alg/kid/typ not a string";
        return APR_EINVAL;
    }
    /* We understand no extension, so RFC 7515 4.1.11 says: reject. */
    if (json_object_get(jws->header, "crit")) {
        *err = "JWS header has \"crit\"";
        return APR_EINVAL;
    }
    jws->signing_input_len = hlen + 1 + plen;
    jws->signing_input = apr_pstrmemdup(p, compact, jws->signing_input_len);
    *pjws = jws;
    return APR_SUCCESS;
}

static int key_fits(const bff_jwk_t *k, const bff_alg_t *ai)
{
    if (k->type != ai->kty) {
        return 0;
    }
    if (ai->crv && (!k->crv || strcmp(ai->crv, k->crv))) {
        return 0;
    }
    if (k->alg && strcmp(k->alg, ai->name)) {
        return 0;
    }
    return 1;
}

/* JOSE carries ECDSA signatures as fixed-length r||s; OpenSSL wants DER. */
static unsigned char *ecdsa_to_der(apr_pool_t *p, const unsigned char *sig, apr_size_t coord_len,
                                   apr_size_t *derlen)
{
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *der = NULL, *tmp = NULL;
    int n;

    if (!(es = ECDSA_SIG_new()) || !(r = BN_bin2bn(sig, (int)coord_len, NULL))
        || !(s = BN_bin2bn(sig + coord_len, (int)coord_len, NULL))) {
        goto leave;
    }
    if (!ECDSA_SIG_set0(es, r, s)) {
        goto leave;
    }
    r = s = NULL; /* owned by es now */
    if ((n = i2d_ECDSA_SIG(es, &tmp)) <= 0) {
        goto leave;
    }
    der = apr_pmemdup(p, tmp, (apr_size_t)n);
    *derlen = (apr_size_t)n;
leave:
    OPENSSL_free(tmp);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return der;
}

static int verify_one(apr_pool_t *p, const bff_jws_t *jws, const bff_alg_t *ai, const bff_jwk_t *k)
{
    EVP_MD_CTX *mctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    const unsigned char *sig = jws->sig;
    apr_size_t sig_len = jws->sig_len;
    int ok = 0;

    if (ai->kty == KT_EC) {
        if (sig_len != 2 * ai->coord_len
            || !(sig = ecdsa_to_der(p, jws->sig, ai->coord_len, &sig_len))) {
            return 0;
        }
    }
    if (!(mctx = EVP_MD_CTX_new())
        || EVP_DigestVerifyInit_ex(mctx, &pctx, ai->md, NULL, NULL, k->pkey, NULL) != 1) {
        goto leave;
    }
    if (ai->pss
        && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0
            || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0
            || EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, ai->md, NULL) <= 0)) {
        goto leave;
    }
    else if (ai->kty == KT_RSA && !ai->pss
             && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) {
        goto leave;
    }
    ok = EVP_DigestVerify(mctx, sig, sig_len, (const unsigned char *)jws->signing_input,
                          jws->signing_input_len)
         == 1;
leave:
    EVP_MD_CTX_free(mctx);
    ERR_clear_error();
    return ok;
}

static int alg_allowed(const char *alg, const char *const *allowed)
{
    if (!allowed) {
        return 1;
    }
    for (; *allowed; ++allowed) {
        if (!strcmp(*allowed, alg)) {
            return 1;
        }
    }
    return 0;
}

apr_status_t bff_jose_jws_verify(apr_pool_t *p, const bff_jws_t *jws, const bff_jwks_t *jwks,
                                 const char *const *allowed_algs, const char **err)
{
    const bff_alg_t *ai;
    int i, kid_seen = 0, tried = 0;

    *err = NULL;
    if (!jws || !jwks || !jws->alg || !jws->sig || !jws->signing_input) {
        *err = "nothing to verify";
        return APR_EINVAL;
    }
    if (!(ai = alg_lookup(jws->alg))) {
        *err = "JWS alg not supported";
        return APR_EINVAL;
    }
    if (!alg_allowed(ai->name, allowed_algs)) {
        *err = "JWS alg not allowed";
        return APR_EINVAL;
    }
    for (i = 0; i < jwks->keys->nelts; ++i) {
        const bff_jwk_t *k = &APR_ARRAY_IDX(jwks->keys, i, bff_jwk_t);

        if (jws->kid) {
            if (!k->kid || strcmp(k->kid, jws->kid)) {
                continue;
            }
            kid_seen = 1;
        }
        if (!key_fits(k, ai)) {
            continue;
        }
        ++tried;
        if (verify_one(p, jws, ai, k)) {
            return APR_SUCCESS;
        }
    }
    if (jws->kid && !kid_seen) {
        *err = "JWS kid not in the JWKS";
        return APR_NOTFOUND;
    }
    if (!tried) {
        *err = "no key in the JWKS fits the JWS alg";
        return APR_EINVAL;
    }
    *err = "JWS signature invalid";
    return APR_EGENERAL;
}
