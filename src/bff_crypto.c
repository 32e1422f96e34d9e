/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the key ring (HKDF-SHA256 per secret and site into AES-256-GCM and HMAC keys), sealing
 * and opening records, and HMAC store keys, with OpenSSL 3.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <apr_atomic.h>
#include <apr_strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "bff_crypto.h"
#include "bff_util.h"

#define BFF_CRYPTO_VERSION 0x01
#define BFF_CRYPTO_MAX_KEYS 16
#define BFF_KEY_LEN 32
#define BFF_KID_LEN 4
#define BFF_IV_LEN 12
#define BFF_TAG_LEN 16
#define BFF_HDR_LEN (1 + BFF_KID_LEN)
#define BFF_HMAC_LEN 32

/* Changing any of these invalidates every stored record and store key. */
#define BFF_HKDF_SALT "mod_bff v1"
#define BFF_HKDF_INFO_ENC "mod_bff record encryption"
#define BFF_HKDF_INFO_STORE "mod_bff store key"

typedef struct {
    unsigned char enc[BFF_KEY_LEN];
    unsigned char mac[BFF_KEY_LEN];
    unsigned char kid[BFF_KID_LEN];
    /* Keyed once; each store key duplicates it, which skips the HMAC key
     * schedule and parameter parsing on the per-request path. */
    EVP_MAC_CTX *mac_ctx;
} bff_key_t;

struct bff_keyring_t {
    apr_uint32_t id; /* unique per process, never reused */
    int nkeys;
    bff_key_t keys[BFF_CRYPTO_MAX_KEYS];
    /* Fetched once: fetching per call costs a provider lookup, and both
     * objects are read-only and safe to share between threads. */
    EVP_CIPHER *cipher;
    EVP_MAC *hmac;
};

/* OSSL_PARAM constructors and the GCM tag ctrl take non-const pointers
 * but only read through them. */
static void *unconst(const void *ptr)
{
    return (void *)(uintptr_t)ptr;
}

static apr_status_t keyring_cleanup(void *data)
{
    bff_keyring_t *ring = data;

    int i;

    for (i = 0; i < ring->nkeys; ++i) {
        EVP_MAC_CTX_free(ring->keys[i].mac_ctx);
    }
    OPENSSL_cleanse(ring->keys, sizeof(ring->keys));
    ring->nkeys = 0;
    EVP_CIPHER_free(ring->cipher);
    ring->cipher = NULL;
    EVP_MAC_free(ring->hmac);
    ring->hmac = NULL;
    return APR_SUCCESS;
}

static apr_uint32_t keyring_ids;

apr_status_t bff_crypto_keyring_create(apr_pool_t *p, bff_keyring_t **pring)
{
    bff_keyring_t *ring;

    *pring = NULL;
    ring = apr_pcalloc(p, sizeof(*ring));
    ring->id = apr_atomic_inc32(&keyring_ids) + 1;
    apr_pool_cleanup_register(p, ring, keyring_cleanup, apr_pool_cleanup_null);
    ring->cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    ring->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!ring->cipher || !ring->hmac) {
        return APR_EGENERAL;
    }
    *pring = ring;
    return APR_SUCCESS;
}

static apr_status_t hkdf(const void *secret, apr_size_t len, const char *info, apr_size_t infolen,
                         unsigned char out[BFF_KEY_LEN])
{
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[5];
    apr_status_t rv = APR_EGENERAL;

    if (!(kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) || !(kctx = EVP_KDF_CTX_new(kdf))) {
        goto leave;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, unconst("SHA256"), 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, unconst(secret), len);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, unconst(BFF_HKDF_SALT),
                                                  sizeof(BFF_HKDF_SALT) - 1);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, unconst(info), infolen);
    params[4] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kctx, out, BFF_KEY_LEN, params) == 1) {
        rv = APR_SUCCESS;
    }
leave:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rv;
}

/* HKDF info: the purpose, then (after a NUL, which no purpose holds) the
 * caller's context, so each context gets keys of its own. */
static apr_status_t derive(const void *secret, apr_size_t len, const char *purpose,
                           const char *context, unsigned char out[BFF_KEY_LEN])
{
    char info[512];
    apr_size_t plen = strlen(purpose), clen = context ? strlen(context) : 0;

    if (!context) {
        return hkdf(secret, len, purpose, plen, out);
    }
    if (plen + 2 + 32 > sizeof(info)) {
        return APR_EINVAL;
    }
    memcpy(info, purpose, plen);
    info[plen] = '\0';
    if (plen + 1 + clen <= sizeof(info)) {
        memcpy(info + plen + 1, context, clen);
        return hkdf(secret, len, info, plen + 1 + clen, out);
    }
    /* A very long context (a site of an origin and client id of hundreds of
     * bytes) is hashed; 0x01 cannot start a context as given (bff_ns_site
     * starts with a length), so the two forms never meet. */
    info[plen + 1] = '\x01';
    if (APR_SUCCESS != bff_util_sha256(context, clen, (unsigned char *)info + plen + 2)) {
        return APR_EGENERAL;
    }
    return hkdf(secret, len, info, plen + 2 + 32, out);
}

apr_status_t bff_crypto_keyring_add(bff_keyring_t *ring, const void *secret, apr_size_t len)
{
    return bff_crypto_keyring_add_ctx(ring, secret, len, NULL);
}

apr_status_t bff_crypto_keyring_add_ctx(bff_keyring_t *ring, const void *secret, apr_size_t len,
                                        const char *context)
{
    bff_key_t key;
    unsigned char digest[32];
    unsigned int dlen = 0;
    apr_status_t rv;
    int i;

    if (!ring || !secret || len < BFF_CRYPTO_MIN_SECRET) {
        return APR_EINVAL;
    }
    if (ring->nkeys >= BFF_CRYPTO_MAX_KEYS) {
        return APR_ENOSPC;
    }
    if (APR_SUCCESS != (rv = derive(secret, len, BFF_HKDF_INFO_ENC, context, key.enc))
        || APR_SUCCESS != (rv = derive(secret, len, BFF_HKDF_INFO_STORE, context, key.mac))) {
        goto leave;
    }
    if (EVP_Digest(key.enc, sizeof(key.enc), digest, &dlen, EVP_sha256(), NULL) != 1
        || dlen != sizeof(digest)) {
        rv = APR_EGENERAL;
        goto leave;
    }
    memcpy(key.kid, digest, BFF_KID_LEN);
    /* Key ids must be unique for open to pick one key without trial: a
     * repeated secret (or a 2^-32 collision) is refused, not shadowed. */
    for (i = 0; i < ring->nkeys; ++i) {
        if (!memcmp(ring->keys[i].kid, key.kid, BFF_KID_LEN)) {
            rv = APR_EEXIST;
            goto leave;
        }
    }
    {
        OSSL_PARAM params[2];
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, unconst("SHA256"), 0);
        params[1] = OSSL_PARAM_construct_end();
        /* Without a keyed context store keys still work, only slower. */
        if ((key.mac_ctx = EVP_MAC_CTX_new(ring->hmac))
            && EVP_MAC_init(key.mac_ctx, key.mac, BFF_KEY_LEN, params) != 1) {
            EVP_MAC_CTX_free(key.mac_ctx);
            key.mac_ctx = NULL;
        }
    }
    ring->keys[ring->nkeys++] = key;
    rv = APR_SUCCESS;
leave:
    OPENSSL_cleanse(&key, sizeof(key));
    OPENSSL_cleanse(digest, sizeof(digest));
    return rv;
}

apr_status_t bff_crypto_keyring_add_random(bff_keyring_t *ring)
{
    unsigned char secret[32];
    apr_status_t rv;

    if (APR_SUCCESS == (rv = bff_util_random(secret, sizeof(secret)))) {
        rv = bff_crypto_keyring_add(ring, secret, sizeof(secret));
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    return rv;
}

int bff_crypto_keyring_count(const bff_keyring_t *ring)
{
    return ring ? ring->nkeys : 0;
}

/* The version and key id are bound to the ciphertext by feeding them to
 * GCM as AAD ahead of the caller's: both have a fixed length, so the
 * concatenation is unambiguous. */
static int gcm_aad(EVP_CIPHER_CTX *ctx, int enc, const unsigned char *hdr, const void *aad,
                   apr_size_t aadlen)
{
    int n;
    int (*update)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *,
                  int) = enc ? EVP_EncryptUpdate : EVP_DecryptUpdate;

    if (update(ctx, NULL, &n, hdr, BFF_HDR_LEN) != 1) {
        return 0;
    }
    if (aadlen && update(ctx, NULL, &n, aad, (int)aadlen) != 1) {
        return 0;
    }
    return 1;
}

apr_status_t bff_crypto_seal(apr_pool_t *p, const bff_keyring_t *ring, const void *aad,
                             apr_size_t aadlen, const void *pt, apr_size_t ptlen,
                             unsigned char **out, apr_size_t *outlen)
{
    EVP_CIPHER_CTX *ctx = NULL;
    const bff_key_t *key;
    unsigned char *buf = NULL, *iv, *ct;
    apr_size_t total = 0;
    int n, fin;
    apr_status_t rv = APR_EGENERAL;

    *out = NULL;
    *outlen = 0;
    if (!ring || ring->nkeys < 1 || !ring->cipher) {
        return APR_EINVAL;
    }
    if ((aadlen && !aad) || (ptlen && !pt) || aadlen > INT_MAX
        || ptlen > (apr_size_t)INT_MAX - BFF_CRYPTO_OVERHEAD) {
        return APR_EINVAL;
    }
    key = &ring->keys[0];
    total = BFF_CRYPTO_OVERHEAD + ptlen;
    buf = apr_palloc(p, total);
    buf[0] = BFF_CRYPTO_VERSION;
    memcpy(buf + 1, key->kid, BFF_KID_LEN);
    iv = buf + BFF_HDR_LEN;
    ct = iv + BFF_IV_LEN;
    /* Random 96-bit IVs: safe for far more records than a session store
     * writes under one key before it is rotated (NIST limit 2^32). */
    if (APR_SUCCESS != (rv = bff_util_random(iv, BFF_IV_LEN))) {
        goto leave;
    }
    rv = APR_EGENERAL;
    if (!(ctx = EVP_CIPHER_CTX_new())
        || EVP_EncryptInit_ex2(ctx, ring->cipher, key->enc, iv, NULL) != 1
        || !gcm_aad(ctx, 1, buf, aad, aadlen)) {
        goto leave;
    }
    n = 0;
    if (ptlen && EVP_EncryptUpdate(ctx, ct, &n, pt, (int)ptlen) != 1) {
        goto leave;
    }
    fin = 0;
    if (EVP_EncryptFinal_ex(ctx, ct + n, &fin) != 1 || (apr_size_t)n + (apr_size_t)fin != ptlen
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, BFF_TAG_LEN, ct + ptlen) != 1) {
        goto leave;
    }
    *out = buf;
    *outlen = total;
    rv = APR_SUCCESS;
leave:
    EVP_CIPHER_CTX_free(ctx);
    return rv;
}

static const bff_key_t *find_key(const bff_keyring_t *ring, const unsigned char *kid, int *idx)
{
    int i;

    for (i = 0; i < ring->nkeys; ++i) {
        if (!memcmp(ring->keys[i].kid, kid, BFF_KID_LEN)) {
            *idx = i;
            return &ring->keys[i];
        }
    }
    return NULL;
}

/* Opening happens on every request: each thread keeps its decryption
 * context keyed with the last key it used, so most opens only set the IV
 * (OpenSSL's GCM key schedule and table set-up cost more than decrypting a
 * session record). Keyed by the ring's unique id and the key's index, so a
 * ring freed and another allocated at the same address never match. */
static __thread struct {
    apr_uint32_t ring_id;
    int key_index;
    EVP_CIPHER_CTX *ctx;
} open_cache;

static EVP_CIPHER_CTX *thread_open_ctx(const bff_keyring_t *ring, int idx, const unsigned char *iv)
{
    EVP_CIPHER_CTX *ctx = open_cache.ctx;

    if (ctx && open_cache.ring_id == ring->id && open_cache.key_index == idx) {
        return EVP_DecryptInit_ex2(ctx, NULL, NULL, iv, NULL) == 1 ? ctx : NULL;
    }
    if (!ctx && !(ctx = open_cache.ctx = EVP_CIPHER_CTX_new())) {
        return NULL;
    }
    open_cache.ring_id = 0;
    if (EVP_DecryptInit_ex2(ctx, ring->cipher, ring->keys[idx].enc, iv, NULL) != 1) {
        return NULL;
    }
    open_cache.ring_id = ring->id;
    open_cache.key_index = idx;
    return ctx;
}

static void thread_open_reset(void)
{
    /* Start clean after a failure. */
    EVP_CIPHER_CTX_free(open_cache.ctx);
    open_cache.ctx = NULL;
    open_cache.ring_id = 0;
}

apr_status_t bff_crypto_open(apr_pool_t *p, const bff_keyring_t *ring, const void *aad,
                             apr_size_t aadlen, const unsigned char *in, apr_size_t inlen,
                             unsigned char **pt, apr_size_t *ptlen, int *key_index)
{
    EVP_CIPHER_CTX *ctx = NULL;
    const bff_key_t *key;
    const unsigned char *iv, *ct, *tag;
    unsigned char *buf = NULL;
    apr_size_t ctlen = 0;
    int idx = -1, n, fin;
    apr_status_t rv = APR_EGENERAL;

    *pt = NULL;
    *ptlen = 0;
    if (key_index) {
        *key_index = -1;
    }
    if (!ring || !ring->cipher || !in || (aadlen && !aad) || aadlen > INT_MAX) {
        return APR_EINVAL;
    }
    if (inlen < BFF_CRYPTO_OVERHEAD || inlen > (apr_size_t)INT_MAX || in[0] != BFF_CRYPTO_VERSION) {
        return APR_EINVAL;
    }
    if (!(key = find_key(ring, in + 1, &idx))) {
        return APR_ENOENT;
    }
    iv = in + BFF_HDR_LEN;
    ct = iv + BFF_IV_LEN;
    ctlen = inlen - BFF_CRYPTO_OVERHEAD;
    tag = ct + ctlen;
    buf = apr_palloc(p, ctlen + 1);
    if (!(ctx = thread_open_ctx(ring, idx, iv)) || !gcm_aad(ctx, 0, in, aad, aadlen)) {
        goto leave;
    }
    n = 0;
    if (ctlen && EVP_DecryptUpdate(ctx, buf, &n, ct, (int)ctlen) != 1) {
        goto leave;
    }
    /* OpenSSL compares the tag in constant time (CRYPTO_memcmp). */
    fin = 0;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, BFF_TAG_LEN, unconst(tag)) != 1
        || EVP_DecryptFinal_ex(ctx, buf + n, &fin) != 1
        || (apr_size_t)n + (apr_size_t)fin != ctlen) {
        goto leave;
    }
    buf[ctlen] = '\0';
    *pt = buf;
    *ptlen = ctlen;
    if (key_index) {
        *key_index = idx;
    }
    rv = APR_SUCCESS;
leave:
    if (rv != APR_SUCCESS && buf) {
        /* Unauthenticated plaintext never leaves this function. */
        OPENSSL_cleanse(buf, ctlen + 1);
    }
    if (rv != APR_SUCCESS) {
        thread_open_reset();
    }
    return rv;
}

/* Store keys are computed on every request: each thread keeps one keyed
 * HMAC context and re-initialises it (which reuses the key schedule)
 * instead of allocating a context per call. Keyed by the ring's unique id,
 * so a ring freed and another allocated at the same address never match. */
static __thread struct {
    apr_uint32_t ring_id;
    int key_index;
    EVP_MAC_CTX *ctx;
} mac_cache;

static EVP_MAC_CTX *thread_mac(const bff_keyring_t *ring, int key_index)
{
    if (mac_cache.ctx && mac_cache.ring_id == ring->id && mac_cache.key_index == key_index) {
        if (EVP_MAC_init(mac_cache.ctx, NULL, 0, NULL) == 1) {
            return mac_cache.ctx;
        }
    }
    EVP_MAC_CTX_free(mac_cache.ctx);
    mac_cache.ctx = NULL;
    if (!ring->keys[key_index].mac_ctx
        || !(mac_cache.ctx = EVP_MAC_CTX_dup(ring->keys[key_index].mac_ctx))) {
        return NULL;
    }
    mac_cache.ring_id = ring->id;
    mac_cache.key_index = key_index;
    return mac_cache.ctx;
}

const char *bff_crypto_store_key(apr_pool_t *p, const bff_keyring_t *ring, int key_index,
                                 const char *prefix, const char *id)
{
    EVP_MAC_CTX *mctx = NULL, *cached = NULL;
    OSSL_PARAM params[2];
    unsigned char mac[BFF_HMAC_LEN];
    size_t mlen = 0;
    const char *hex, *res = NULL;
    static const unsigned char sep = 0;

    if (!ring || !ring->hmac || !prefix || !id || key_index < 0 || key_index >= ring->nkeys) {
        return NULL;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, unconst("SHA256"), 0);
    params[1] = OSSL_PARAM_construct_end();
    if ((cached = thread_mac(ring, key_index))) {
        mctx = cached;
    }
    else if ((mctx = EVP_MAC_CTX_new(ring->hmac))
             && EVP_MAC_init(mctx, ring->keys[key_index].mac, BFF_KEY_LEN, params) != 1) {
        EVP_MAC_CTX_free(mctx);
        mctx = NULL;
    }
    if (!mctx || EVP_MAC_update(mctx, (const unsigned char *)prefix, strlen(prefix)) != 1
        || EVP_MAC_update(mctx, &sep, 1) != 1
        || EVP_MAC_update(mctx, (const unsigned char *)id, strlen(id)) != 1
        || EVP_MAC_final(mctx, mac, &mlen, sizeof(mac)) != 1 || mlen != sizeof(mac)) {
        goto leave;
    }
    if ((hex = bff_util_hex(p, mac, sizeof(mac)))) {
        res = apr_pstrcat(p, prefix, hex, NULL);
    }
leave:
    if (mctx != cached) {
        EVP_MAC_CTX_free(mctx);
    }
    OPENSSL_cleanse(mac, sizeof(mac));
    return res;
}

void bff_crypto_thread_cleanup(void)
{
    thread_open_reset();
    EVP_MAC_CTX_free(mac_cache.ctx);
    mac_cache.ctx = NULL;
    mac_cache.ring_id = 0;
}
