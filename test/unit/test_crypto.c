/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "bff_crypto.h"

static const char SECRET_A[] = "0123456789abcdef0123456789abcdef";
static const char SECRET_B[] = "another secret, long enough";
static const char SECRET_C[] = "third secret for the key ring";
static const char AAD[] = "store-key";
static const char PT[] = "{\"v\":1,\"sub\":\"alice\"}";

static bff_keyring_t *ring_of(apr_pool_t *p, const char *const *secrets, int n)
{
    bff_keyring_t *ring;
    int i;

    assert_int_equal(bff_crypto_keyring_create(p, &ring), APR_SUCCESS);
    for (i = 0; i < n; ++i) {
        assert_int_equal(bff_crypto_keyring_add(ring, secrets[i], strlen(secrets[i])), APR_SUCCESS);
    }
    assert_int_equal(bff_crypto_keyring_count(ring), n);
    return ring;
}

static bff_keyring_t *ring1(apr_pool_t *p, const char *secret)
{
    return ring_of(p, &secret, 1);
}

static void seal_pt(apr_pool_t *p, const bff_keyring_t *ring, unsigned char **rec, apr_size_t *len)
{
    assert_int_equal(bff_crypto_seal(p, ring, AAD, strlen(AAD), PT, strlen(PT), rec, len),
                     APR_SUCCESS);
    assert_int_equal(*len, strlen(PT) + BFF_CRYPTO_OVERHEAD);
}

/* Opens a heap copy of exactly len bytes, so ASan sees any over-read. */
static apr_status_t open_copy(apr_pool_t *p, const bff_keyring_t *ring, const char *aad,
                              const unsigned char *rec, apr_size_t len, int *idx)
{
    unsigned char *copy = malloc(len ? len : 1);
    static unsigned char sentinel[] = "x";
    unsigned char *pt = sentinel;
    apr_size_t ptlen = 99;
    apr_status_t rv;

    assert_non_null(copy);
    memcpy(copy, rec, len);
    rv = bff_crypto_open(p, ring, aad, aad ? strlen(aad) : 0, copy, len, &pt, &ptlen, idx);
    free(copy);
    if (rv != APR_SUCCESS) {
        assert_null(pt);
        assert_int_equal(ptlen, 0);
    }
    return rv;
}

static int contains(const unsigned char *hay, apr_size_t n, const char *needle)
{
    apr_size_t i, k = strlen(needle);

    for (i = 0; i + k <= n; ++i) {
        if (!memcmp(hay + i, needle, k)) {
            return 1;
        }
    }
    return 0;
}

static void test_round_trip(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring = ring1(p, SECRET_A);
    unsigned char *rec, *rec2, *pt;
    apr_size_t len, len2, ptlen;
    int idx = -5;

    seal_pt(p, ring, &rec, &len);
    assert_int_equal(rec[0], 0x01);
    assert_int_equal(bff_crypto_open(p, ring, AAD, strlen(AAD), rec, len, &pt, &ptlen, &idx),
                     APR_SUCCESS);
    assert_int_equal(idx, 0);
    assert_int_equal(ptlen, strlen(PT));
    assert_memory_equal(pt, PT, ptlen);
    assert_int_equal(pt[ptlen], '\0');
    /* The plaintext is not visible in the record. */
    assert_false(contains(rec, len, "alice"));

    /* A fresh IV per record: the same input never gives the same record. */
    seal_pt(p, ring, &rec2, &len2);
    assert_int_equal(len, len2);
    assert_memory_not_equal(rec + 5, rec2 + 5, len - 5);

    /* NULL key_index is allowed. */
    assert_int_equal(bff_crypto_open(p, ring, AAD, strlen(AAD), rec, len, &pt, &ptlen, NULL),
                     APR_SUCCESS);
}

static void test_empty_plaintext_and_aad(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring = ring1(p, SECRET_A);
    unsigned char *rec, *pt;
    apr_size_t len, ptlen;

    assert_int_equal(bff_crypto_seal(p, ring, NULL, 0, NULL, 0, &rec, &len), APR_SUCCESS);
    assert_int_equal(len, BFF_CRYPTO_OVERHEAD);
    assert_int_equal(bff_crypto_open(p, ring, NULL, 0, rec, len, &pt, &ptlen, NULL), APR_SUCCESS);
    assert_int_equal(ptlen, 0);
    assert_int_equal(pt[0], '\0');
    /* Empty AAD is still AAD: a record sealed without one needs none. */
    assert_int_equal(open_copy(p, ring, AAD, rec, len, NULL), APR_EGENERAL);
}

/* Fixed record computed independently (Python: HKDF-SHA256 + AES-GCM with
 * AAD = 0x01 | kid | "store-key"); pins the derivation and the format so a
 * change that would orphan every stored session is caught. */
static const unsigned char KAT_REC[] = { 0x01, 0x6d, 0x36, 0x9f, 0xda, 0x00, 0x01, 0x02, 0x03,
                                         0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x99,
                                         0x72, 0x32, 0xa3, 0x0c, 0x9c, 0x6b, 0xee, 0xcb, 0x76,
                                         0x3b, 0x41, 0xb0, 0x13, 0x18, 0x49, 0x34, 0x55, 0x2a,
                                         0x82, 0xe8, 0x24, 0xf0, 0x18, 0x4d, 0x16, 0x99, 0xe6 };

static void test_known_answer(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring = ring1(p, SECRET_A);
    unsigned char *rec, *pt;
    apr_size_t len, ptlen;

    assert_int_equal(bff_crypto_open(p, ring, AAD, strlen(AAD), KAT_REC, sizeof(KAT_REC), &pt,
                                     &ptlen, NULL),
                     APR_SUCCESS);
    assert_int_equal(ptlen, 12);
    assert_string_equal((const char *)pt, "hello, world");
    /* Our own records carry the same key id. */
    seal_pt(p, ring, &rec, &len);
    assert_memory_equal(rec, KAT_REC, 5);
    assert_string_equal(bff_crypto_store_key(p, ring, 0, "s:", "abc"),
                        "s:b8bac5e63ec973fe573e74046cb9eff2d91c2f29dd05f721ca465d13a2f823d5");
}

static void test_keyring_add(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring;
    char secret[32];
    unsigned char *rec;
    apr_size_t len;
    int i;

    assert_int_equal(bff_crypto_keyring_create(p, &ring), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_count(ring), 0);
    /* An empty ring cannot seal. */
    assert_int_equal(bff_crypto_seal(p, ring, NULL, 0, PT, strlen(PT), &rec, &len), APR_EINVAL);
    assert_null(rec);

    assert_int_equal(bff_crypto_keyring_add(ring, SECRET_A, BFF_CRYPTO_MIN_SECRET - 1), APR_EINVAL);
    assert_int_equal(bff_crypto_keyring_add(ring, SECRET_A, 0), APR_EINVAL);
    assert_int_equal(bff_crypto_keyring_add(ring, NULL, 32), APR_EINVAL);
    assert_int_equal(bff_crypto_keyring_count(ring), 0);
    assert_int_equal(bff_crypto_keyring_add(ring, SECRET_A, BFF_CRYPTO_MIN_SECRET), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_count(ring), 1);
    /* The same secret twice would give two keys with one id. */
    assert_int_equal(bff_crypto_keyring_add(ring, SECRET_A, BFF_CRYPTO_MIN_SECRET), APR_EEXIST);
    assert_int_equal(bff_crypto_keyring_count(ring), 1);

    for (i = 1; i < 16; ++i) {
        memset(secret, 'a' + i, sizeof(secret));
        assert_int_equal(bff_crypto_keyring_add(ring, secret, sizeof(secret)), APR_SUCCESS);
    }
    assert_int_equal(bff_crypto_keyring_count(ring), 16);
    memset(secret, 'z', sizeof(secret));
    assert_int_equal(bff_crypto_keyring_add(ring, secret, sizeof(secret)), APR_ENOSPC);
    assert_int_equal(bff_crypto_keyring_add_random(ring), APR_ENOSPC);
    assert_int_equal(bff_crypto_keyring_count(ring), 16);
}

static void test_random_key(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *r1, *r2;
    unsigned char *rec, *pt;
    apr_size_t len, ptlen;

    assert_int_equal(bff_crypto_keyring_create(p, &r1), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_create(p, &r2), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add_random(r1), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add_random(r2), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_count(r1), 1);
    seal_pt(p, r1, &rec, &len);
    assert_int_equal(bff_crypto_open(p, r1, AAD, strlen(AAD), rec, len, &pt, &ptlen, NULL),
                     APR_SUCCESS);
    assert_int_equal(open_copy(p, r2, AAD, rec, len, NULL), APR_ENOENT);
}

static void test_three_key_ring(void **state)
{
    apr_pool_t *p = *state;
    const char *secrets[] = { SECRET_A, SECRET_B, SECRET_C };
    bff_keyring_t *ring = ring_of(p, secrets, 3);
    unsigned char *rec, *pt;
    apr_size_t len, ptlen;
    int i, idx;

    /* Every key of the ring decrypts, reporting its position. */
    for (i = 0; i < 3; ++i) {
        seal_pt(p, ring1(p, secrets[i]), &rec, &len);
        idx = -1;
        assert_int_equal(bff_crypto_open(p, ring, AAD, strlen(AAD), rec, len, &pt, &ptlen, &idx),
                         APR_SUCCESS);
        assert_int_equal(idx, i);
        assert_memory_equal(pt, PT, ptlen);
    }
    /* Only the first encrypts. */
    seal_pt(p, ring, &rec, &len);
    assert_int_equal(open_copy(p, ring1(p, SECRET_A), AAD, rec, len, &idx), APR_SUCCESS);
    assert_int_equal(idx, 0);
    assert_int_equal(open_copy(p, ring1(p, SECRET_B), AAD, rec, len, NULL), APR_ENOENT);
    assert_int_equal(open_copy(p, ring1(p, SECRET_C), AAD, rec, len, NULL), APR_ENOENT);
}

static void test_rotation(void **state)
{
    apr_pool_t *p = *state;
    const char *rotated[] = { SECRET_B, SECRET_A };
    bff_keyring_t *old = ring1(p, SECRET_A);
    bff_keyring_t *cur = ring_of(p, rotated, 2);
    unsigned char *rec, *pt;
    apr_size_t len, ptlen;
    int idx = -1;

    seal_pt(p, old, &rec, &len);
    assert_int_equal(bff_crypto_open(p, cur, AAD, strlen(AAD), rec, len, &pt, &ptlen, &idx),
                     APR_SUCCESS);
    assert_int_equal(idx, 1);
    assert_memory_equal(pt, PT, ptlen);
    /* Re-sealed under the new ring, the old one cannot read it. */
    seal_pt(p, cur, &rec, &len);
    assert_int_equal(open_copy(p, cur, AAD, rec, len, &idx), APR_SUCCESS);
    assert_int_equal(idx, 0);
    assert_int_equal(open_copy(p, old, AAD, rec, len, NULL), APR_ENOENT);
}

/* Each thread keeps its decryption context keyed with the last key used:
 * opens that switch keys, rings, and fail in between must each use the
 * right key, including a new ring that reuses a freed ring's memory. */
static void test_open_switches_keys(void **state)
{
    apr_pool_t *p = *state, *sub;
    const char *two[] = { SECRET_A, SECRET_B };
    bff_keyring_t *ring = ring_of(p, two, 2), *other = ring1(p, SECRET_C), *gone, *fresh;
    unsigned char *ra, *rb, *rc, *rd, *pt;
    apr_size_t la, lb, lc, ld, ptlen;
    int i, idx;

    seal_pt(p, ring1(p, SECRET_A), &ra, &la);
    seal_pt(p, ring1(p, SECRET_B), &rb, &lb);
    seal_pt(p, other, &rc, &lc);
    for (i = 0; i < 6; ++i) {
        idx = -1;
        assert_int_equal(bff_crypto_open(p, ring, AAD, strlen(AAD), i % 2 ? rb : ra,
                                         i % 2 ? lb : la, &pt, &ptlen, &idx),
                         APR_SUCCESS);
        assert_int_equal(idx, i % 2);
        assert_memory_equal(pt, PT, ptlen);
        assert_int_equal(bff_crypto_open(p, other, AAD, strlen(AAD), rc, lc, &pt, &ptlen, &idx),
                         APR_SUCCESS);
        /* a failure in between (wrong AAD) must not poison the next open */
        assert_int_not_equal(open_copy(p, ring, "other aad", ra, la, NULL), APR_SUCCESS);
    }
    apr_pool_create(&sub, p);
    gone = ring1(sub, SECRET_A);
    assert_int_equal(open_copy(p, gone, AAD, ra, la, NULL), APR_SUCCESS);
    apr_pool_destroy(sub);
    apr_pool_create(&sub, p);
    fresh = ring1(sub, SECRET_B); /* often at the freed ring's address */
    seal_pt(p, fresh, &rd, &ld);
    assert_int_equal(open_copy(p, fresh, AAD, rd, ld, NULL), APR_SUCCESS);
    assert_int_equal(open_copy(p, fresh, AAD, ra, la, NULL), APR_ENOENT);
    apr_pool_destroy(sub);
}

static void test_tamper_every_byte(void **state)
{
    apr_pool_t *p = *state;
    const char *secrets[] = { SECRET_A, SECRET_B };
    bff_keyring_t *ring = ring_of(p, secrets, 2);
    static const unsigned char flips[] = { 0x01, 0x80, 0xff };
    unsigned char *rec;
    apr_size_t len, i, f;
    apr_status_t rv;

    seal_pt(p, ring, &rec, &len);
    for (i = 0; i < len; ++i) {
        for (f = 0; f < sizeof(flips); ++f) {
            rec[i] ^= flips[f];
            rv = open_copy(p, ring, AAD, rec, len, NULL);
            rec[i] ^= flips[f];
            if (i == 0) {
                assert_int_equal(rv, APR_EINVAL);
            }
            else if (i < 5) {
                assert_int_equal(rv, APR_ENOENT);
            }
            else {
                assert_int_equal(rv, APR_EGENERAL);
            }
        }
    }
    assert_int_equal(open_copy(p, ring, AAD, rec, len, NULL), APR_SUCCESS);
}

static void test_kid_of_other_key(void **state)
{
    apr_pool_t *p = *state;
    const char *secrets[] = { SECRET_A, SECRET_B };
    bff_keyring_t *ring = ring_of(p, secrets, 2);
    unsigned char *ra, *rb;
    apr_size_t la, lb;

    /* A record relabelled with another key's id must not open: the header
     * is authenticated, and the other key does not match anyway. */
    seal_pt(p, ring, &ra, &la);
    seal_pt(p, ring1(p, SECRET_B), &rb, &lb);
    memcpy(ra + 1, rb + 1, 4);
    assert_int_equal(open_copy(p, ring, AAD, ra, la, NULL), APR_EGENERAL);
}

static void test_wrong_aad(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring = ring1(p, SECRET_A);
    unsigned char *rec;
    apr_size_t len;

    seal_pt(p, ring, &rec, &len);
    assert_int_equal(open_copy(p, ring, AAD, rec, len, NULL), APR_SUCCESS);
    assert_int_equal(open_copy(p, ring, "store-kez", rec, len, NULL), APR_EGENERAL);
    assert_int_equal(open_copy(p, ring, "store-ke", rec, len, NULL), APR_EGENERAL);
    assert_int_equal(open_copy(p, ring, "store-key2", rec, len, NULL), APR_EGENERAL);
    assert_int_equal(open_copy(p, ring, "", rec, len, NULL), APR_EGENERAL);
    assert_int_equal(open_copy(p, ring, NULL, rec, len, NULL), APR_EGENERAL);
}

static void test_truncated(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring = ring1(p, SECRET_A);
    unsigned char *rec;
    apr_size_t len, n;

    seal_pt(p, ring, &rec, &len);
    for (n = 0; n < len; ++n) {
        if (n < BFF_CRYPTO_OVERHEAD) {
            assert_int_equal(open_copy(p, ring, AAD, rec, n, NULL), APR_EINVAL);
        }
        else {
            assert_int_equal(open_copy(p, ring, AAD, rec, n, NULL), APR_EGENERAL);
        }
        /* Dropping leading bytes shifts the header: never opens either. */
        assert_int_not_equal(open_copy(p, ring, AAD, rec + len - n, n, NULL), APR_SUCCESS);
    }
    /* Appended junk is as bad as missing bytes. */
    {
        unsigned char *longer = apr_palloc(p, len + 1);
        memcpy(longer, rec, len);
        longer[len] = 0;
        assert_int_equal(open_copy(p, ring, AAD, longer, len + 1, NULL), APR_EGENERAL);
    }
}

static void test_unknown_kid_and_version(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *ring = ring1(p, SECRET_A);
    unsigned char *rec;
    apr_size_t len;

    seal_pt(p, ring, &rec, &len);
    assert_int_equal(open_copy(p, ring1(p, SECRET_B), AAD, rec, len, NULL), APR_ENOENT);
    rec[0] = 0x02;
    assert_int_equal(open_copy(p, ring, AAD, rec, len, NULL), APR_EINVAL);
    rec[0] = 0x00;
    assert_int_equal(open_copy(p, ring, AAD, rec, len, NULL), APR_EINVAL);
}

static int is_lower_hex(const char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; ++i) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return s[n] == '\0';
}

static void test_store_key(void **state)
{
    apr_pool_t *p = *state;
    const char *secrets[] = { SECRET_A, SECRET_B };
    bff_keyring_t *ring = ring_of(p, secrets, 2);
    const char *id = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE";
    const char *k, *k2;

    k = bff_crypto_store_key(p, ring, 0, "bff:s:", id);
    assert_non_null(k);
    assert_int_equal(strlen(k), 6 + 64);
    assert_memory_equal(k, "bff:s:", 6);
    assert_true(is_lower_hex(k + 6, 64));
    assert_null(strstr(k, id));
    assert_null(strstr(k, "Zm9v"));

    /* Deterministic, also across rings built from the same secret (other
     * processes, other nodes). */
    assert_string_equal(bff_crypto_store_key(p, ring, 0, "bff:s:", id), k);
    assert_string_equal(bff_crypto_store_key(p, ring1(p, SECRET_A), 0, "bff:s:", id), k);

    /* Differs per key, prefix and id. */
    k2 = bff_crypto_store_key(p, ring, 1, "bff:s:", id);
    assert_non_null(k2);
    assert_string_not_equal(k2 + 6, k + 6);
    assert_string_equal(bff_crypto_store_key(p, ring1(p, SECRET_B), 0, "bff:s:", id), k2);
    k2 = bff_crypto_store_key(p, ring, 0, "bff:t:", id);
    assert_string_not_equal(k2 + 6, k + 6);
    k2 = bff_crypto_store_key(p, ring, 0, "bff:s:", "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmB");
    assert_string_not_equal(k2, k);
    k2 = bff_crypto_store_key(p, ring, 0, "bff:s:", "");
    assert_non_null(k2);
    assert_string_not_equal(k2, k);

    /* The separator keeps prefix and id apart. */
    assert_string_not_equal(bff_crypto_store_key(p, ring, 0, "ab", "c") + 2,
                            bff_crypto_store_key(p, ring, 0, "a", "bc") + 1);
    /* Whatever the id holds, the key is printable. */
    k2 = bff_crypto_store_key(p, ring, 0, "", "a b\r\n\x01\xff");
    assert_non_null(k2);
    assert_true(is_lower_hex(k2, 64));

    assert_null(bff_crypto_store_key(p, ring, 2, "bff:s:", id));
    assert_null(bff_crypto_store_key(p, ring, -1, "bff:s:", id));
    assert_null(bff_crypto_store_key(p, ring, 0, NULL, id));
    assert_null(bff_crypto_store_key(p, ring, 0, "bff:s:", NULL));
}

static void test_pool_cleanup(void **state)
{
    apr_pool_t *p = *state, *sub;
    bff_keyring_t *ring;
    unsigned char *rec, *pt;
    apr_size_t len, ptlen;

    /* A ring in a subpool goes away with it (ASan/LSan check the OpenSSL
     * objects are freed); records it sealed stay readable by a new ring. */
    assert_int_equal(apr_pool_create(&sub, p), APR_SUCCESS);
    ring = ring1(sub, SECRET_A);
    seal_pt(p, ring, &rec, &len);
    apr_pool_destroy(sub);
    assert_int_equal(bff_crypto_open(p, ring1(p, SECRET_A), AAD, strlen(AAD), rec, len, &pt, &ptlen,
                                     NULL),
                     APR_SUCCESS);
}

/* A context longer than the HKDF info buffer (a site with a very long
 * origin and client id) still gives keys of its own. */
static void test_long_context(void **state)
{
    apr_pool_t *p = *state;
    const char *secret = "a-secret-for-long-context-tests!";
    char *c1 = apr_palloc(p, 1001), *c2 = apr_palloc(p, 1001);
    bff_keyring_t *r1, *r2, *r3;
    unsigned char *rec, *pt;
    apr_size_t len, ptlen;

    memset(c1, 'a', 1000);
    c1[1000] = '\0';
    memcpy(c2, c1, 1001);
    c2[999] = 'b';
    assert_int_equal(bff_crypto_keyring_create(p, &r1), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_create(p, &r2), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_create(p, &r3), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add_ctx(r1, secret, strlen(secret), c1), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add_ctx(r2, secret, strlen(secret), c2), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add_ctx(r3, secret, strlen(secret), c1), APR_SUCCESS);
    assert_int_equal(bff_crypto_seal(p, r1, "k", 1, "hello", 5, &rec, &len), APR_SUCCESS);
    assert_int_equal(bff_crypto_open(p, r3, "k", 1, rec, len, &pt, &ptlen, NULL), APR_SUCCESS);
    assert_int_not_equal(bff_crypto_open(p, r2, "k", 1, rec, len, &pt, &ptlen, NULL), APR_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_empty_plaintext_and_aad, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_known_answer, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_keyring_add, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_random_key, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_three_key_ring, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_rotation, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_open_switches_keys, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_every_byte, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_kid_of_other_key, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_aad, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_truncated, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_kid_and_version, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_store_key, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_pool_cleanup, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_long_context, unit_pool_setup, unit_pool_teardown),
    };
    return unit_run("crypto", tests);
}
