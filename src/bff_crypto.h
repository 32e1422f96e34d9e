/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the key ring (per-secret, per-site keys), sealed records (AES-256-GCM) and HMAC store
 * keys.
 */
#ifndef BFF_CRYPTO_H
#define BFF_CRYPTO_H

#include <apr_pools.h>
#include <apr_errno.h>

/* A ring of keys: the first encrypts, all decrypt. Each configured secret
 * (any length >= 16 bytes) is expanded with HKDF-SHA256 into an AES-256-GCM
 * key and an HMAC key for store keys; a 4-byte key id (truncated SHA-256 of
 * the derived encryption key) tags each record so decryption picks the right
 * key without trial. The ring lives in the pool it was created in. */
typedef struct bff_keyring_t bff_keyring_t;

#define BFF_CRYPTO_MIN_SECRET 16

apr_status_t bff_crypto_keyring_create(apr_pool_t *p, bff_keyring_t **ring);
/* APR_EINVAL when the secret is shorter than BFF_CRYPTO_MIN_SECRET,
 * APR_ENOSPC when the ring already holds 16 keys, APR_EEXIST when the
 * secret's key id is already in the ring (the same secret given twice). */
apr_status_t bff_crypto_keyring_add(bff_keyring_t *ring, const void *secret, apr_size_t len);
/* The same, with keys of their own for one context (HKDF info: purpose,
 * NUL, context; at most ~450 bytes): mod_bff gives each site (origin and
 * client id, bff_ns_site()) its own keys, so two virtual hosts configured
 * with one secret cannot open each other's records. NULL context: the keys
 * of bff_crypto_keyring_add(). */
apr_status_t bff_crypto_keyring_add_ctx(bff_keyring_t *ring, const void *secret, apr_size_t len,
                                        const char *context);
/* A random 32-byte secret (tests and tools: without BFFCryptoKey the module
 * adds a random secret kept in httpd's retained data, see mod_bff_store.c). */
apr_status_t bff_crypto_keyring_add_random(bff_keyring_t *ring);
int bff_crypto_keyring_count(const bff_keyring_t *ring);

/* Record format: 0x01 | key id (4) | IV (12) | ciphertext | GCM tag (16).
 * aad (for example the store key) is authenticated, not stored: a record
 * moved under another key fails to open. Output in p. */
#define BFF_CRYPTO_OVERHEAD (1 + 4 + 12 + 16)
apr_status_t bff_crypto_seal(apr_pool_t *p, const bff_keyring_t *ring, const void *aad,
                             apr_size_t aadlen, const void *pt, apr_size_t ptlen,
                             unsigned char **out, apr_size_t *outlen);

/* APR_EINVAL for a short/malformed record or unknown version, APR_ENOENT
 * for a key id not in the ring, APR_EGENERAL for a failed authentication.
 * *key_index (may be NULL) is the ring position that opened it (0 = current).
 * Plaintext is NUL-terminated (not counted). */
apr_status_t bff_crypto_open(apr_pool_t *p, const bff_keyring_t *ring, const void *aad,
                             apr_size_t aadlen, const unsigned char *in, apr_size_t inlen,
                             unsigned char **pt, apr_size_t *ptlen, int *key_index);

/* Store key for an identifier: "<prefix>" + hex(HMAC-SHA256(store-key of
 * ring entry key_index, prefix || 0x00 || id)), 64 hex digits after the
 * prefix. Short, printable and safe for memcached whatever id holds. */
const char *bff_crypto_store_key(apr_pool_t *p, const bff_keyring_t *ring, int key_index,
                                 const char *prefix, const char *id);

/* Frees the calling thread's cached OpenSSL contexts (bff_crypto_open and
 * bff_crypto_store_key keep one each per thread). For threads that end
 * before their process (the unit tests' threads): httpd's threads live as
 * long as their child. */
void bff_crypto_thread_cleanup(void);

#endif /* BFF_CRYPTO_H */
