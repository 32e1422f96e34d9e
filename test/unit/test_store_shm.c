/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_global_mutex.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "bff_log.h"
#include "bff_store.h"
#include "bff_store_shm.h"
#include "log_capture.h"
#include "store_contract.h"

#define SMALL_SIZE ((apr_size_t)64 * 1024)

/* ---- helpers ---- */

static bff_store_t *mkstore(apr_pool_t *p, apr_size_t size)
{
    apr_global_mutex_t *m;
    bff_store_t *st;

    assert_int_equal(apr_global_mutex_create(&m, NULL, APR_LOCK_DEFAULT, p), APR_SUCCESS);
    assert_int_equal(bff_store_shm_create(p, size, m, &st), APR_SUCCESS);
    assert_non_null(st);
    assert_string_equal(st->name, "shm");
    return st;
}

static void verify_ok(bff_store_t *st, apr_pool_t *p)
{
    const char *err = NULL;
    apr_status_t rv = bff_store_shm_verify(st, p, &err);

    if (rv != APR_SUCCESS) {
        fail_msg("store inconsistent: %s", err ? err : "?");
    }
}

static bff_store_shm_stats_t stats_of(bff_store_t *st)
{
    bff_store_shm_stats_t s;

    assert_int_equal(bff_store_shm_stats(st, &s), APR_SUCCESS);
    return s;
}

static apr_uint32_t blocks_for(apr_size_t len, apr_size_t payload)
{
    return (apr_uint32_t)((len + payload - 1) / payload);
}

/* ---- semantics ---- */

/* Entries and blocks are counted as values come and go: an empty value
 * holds an entry and no block, a refused key holds nothing. */
static void test_accounting(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, 1024 * 1024);
    apr_int64_t exp = store_now() + 3600;
    char longkey[129];
    bff_store_shm_stats_t s;

    assert_int_equal(bff_store_set(st, p, "a", (const unsigned char *)"one", 3, exp), APR_SUCCESS);
    assert_int_equal(bff_store_remove(st, p, "a"), APR_SUCCESS);
    assert_int_equal(bff_store_add(st, p, "b", (const unsigned char *)"two", 3, exp), APR_SUCCESS);
    assert_int_equal(bff_store_set(st, p, "empty", (const unsigned char *)"", 0, exp), APR_SUCCESS);
    memset(longkey, 'k', sizeof(longkey));
    longkey[127] = '\0';
    assert_int_equal(bff_store_set(st, p, longkey, (const unsigned char *)"L", 1, exp),
                     APR_SUCCESS);
    longkey[127] = 'k';
    longkey[128] = '\0';
    assert_int_equal(bff_store_set(st, p, longkey, (const unsigned char *)"L", 1, exp), APR_EINVAL);

    s = stats_of(st);
    assert_int_equal(s.entries_used, 3);
    assert_int_equal(s.blocks_used, 2);
    assert_int_equal(s.evictions, 0);
    verify_ok(st, p);
}

/* Expired entries are counted when they are found and reclaimed. */
static void test_expiry_stats(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, 1024 * 1024);
    apr_int64_t t = store_now();
    bff_store_shm_stats_t s;

    assert_int_equal(bff_store_set(st, p, "old", (const unsigned char *)"v", 1, t - 10),
                     APR_SUCCESS);
    store_expect_gone(st, p, "old");
    s = stats_of(st);
    assert_int_equal(s.entries_used, 0);
    assert_int_equal(s.expired, 1);

    assert_int_equal(bff_store_set(st, p, "k", (const unsigned char *)"old", 3, t - 1),
                     APR_SUCCESS);
    assert_int_equal(bff_store_add(st, p, "k", (const unsigned char *)"new", 3, t + 60),
                     APR_SUCCESS);
    assert_int_equal(bff_store_set(st, p, "r", (const unsigned char *)"v", 1, t - 1), APR_SUCCESS);
    assert_int_equal(bff_store_remove(st, p, "r"), APR_NOTFOUND);
    s = stats_of(st);
    assert_int_equal(s.entries_used, 1);
    assert_int_equal(s.expired, 3);

    /* a replace with a past expiry ends the entry: once found expired, its
     * entry and blocks are free */
    assert_int_equal(bff_store_replace(st, p, "k", store_pattern(p, 5000, 3), 5000, t + 60),
                     APR_SUCCESS);
    assert_int_equal(stats_of(st).blocks_used, blocks_for(5000, s.block_payload));
    assert_int_equal(bff_store_replace(st, p, "k", (const unsigned char *)"v", 1, t - 10),
                     APR_SUCCESS);
    store_expect_gone(st, p, "k");
    s = stats_of(st);
    assert_int_equal(s.entries_used, 0);
    assert_int_equal(s.blocks_used, 0);
    verify_ok(st, p);
}

static void test_replace(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, 1024 * 1024);
    apr_int64_t exp = store_now() + 3600;
    bff_store_shm_stats_t s = stats_of(st);
    apr_size_t pl = s.block_payload, sizes[] = { 10, 5000, 504, 505, 1, 20000, 0, 3 * 504 };
    unsigned char *v;
    apr_size_t i;

    assert_int_equal(pl, 504);
    assert_int_equal(bff_store_set(st, p, "other", store_pattern(p, 700, 99), 700, exp),
                     APR_SUCCESS);
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        v = store_pattern(p, sizes[i], (unsigned)i);
        assert_int_equal(bff_store_set(st, p, "k", v, sizes[i], exp), APR_SUCCESS);
        store_expect_val(st, p, "k", v, sizes[i]);
        s = stats_of(st);
        assert_int_equal(s.entries_used, 2);
        /* Old blocks went back: only the new value and "other" hold blocks. */
        assert_int_equal(s.blocks_used, blocks_for(sizes[i], pl) + blocks_for(700, pl));
        verify_ok(st, p);
    }
    store_expect_val(st, p, "other", store_pattern(p, 700, 99), 700);
}

/* Fill every entry, live ones first (so they sit at the LRU tail) then
 * expired ones: making room must reclaim the expired ones behind the live
 * tail rather than evict. With more live entries than the bounded tail scan
 * looks at, only the full sweep finds them. */
static void expired_before_eviction(apr_pool_t *p, apr_size_t size, apr_uint32_t live)
{
    bff_store_t *st = mkstore(p, size);
    bff_store_shm_stats_t s = stats_of(st);
    apr_int64_t t = store_now();
    apr_uint32_t i;
    char key[32];

    for (i = 0; i < s.entries_max; i++) {
        apr_snprintf(key, sizeof(key), "e%u", i);
        assert_int_equal(bff_store_set(st, p, key, (const unsigned char *)"v", 1,
                                       i < live ? t + 3600 : t - 5),
                         APR_SUCCESS);
    }
    log_start();
    for (i = 0; i < s.entries_max - live; i++) {
        apr_snprintf(key, sizeof(key), "n%u", i);
        assert_int_equal(bff_store_set(st, p, key, (const unsigned char *)"w", 1, t + 3600),
                         APR_SUCCESS);
    }
    log_stop();
    s = stats_of(st);
    assert_int_equal(s.evictions, 0);
    assert_int_equal(s.expired, s.entries_max - live);
    assert_int_equal(log_has("BFF00501", NULL), 0);
    for (i = 0; i < live; i++) {
        apr_snprintf(key, sizeof(key), "e%u", i);
        store_expect_val(st, p, key, (const unsigned char *)"v", 1);
    }
    verify_ok(st, p);
}

static void test_expired_reclaimed_before_eviction(void **state)
{
    expired_before_eviction(*state, SMALL_SIZE, 4);
}

static void test_expired_full_sweep(void **state)
{
    expired_before_eviction(*state, 1024 * 1024, 100);
}

/* ---- eviction ---- */

static void test_lru_entries(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, SMALL_SIZE);
    bff_store_shm_stats_t s = stats_of(st);
    apr_int64_t exp = store_now() + 3600;
    apr_uint32_t i;
    char key[32];

    assert_int_equal(s.entries_max, 16);
    for (i = 0; i < s.entries_max; i++) {
        apr_snprintf(key, sizeof(key), "k%u", i);
        assert_int_equal(bff_store_set(st, p, key, (const unsigned char *)key, strlen(key), exp),
                         APR_SUCCESS);
    }
    /* Touch the oldest; k1 becomes the least recently used. */
    store_expect_val(st, p, "k0", (const unsigned char *)"k0", 2);
    log_start();
    assert_int_equal(bff_store_set(st, p, "new1", (const unsigned char *)"n", 1, exp), APR_SUCCESS);
    store_expect_val(st, p, "k0", (const unsigned char *)"k0", 2);
    store_expect_gone(st, p, "k1");
    store_expect_val(st, p, "k2", (const unsigned char *)"k2", 2);
    s = stats_of(st);
    assert_int_equal(s.evictions, 1);
    assert_int_equal(s.entries_used, 16);
    assert_int_equal(log_count, 1);
    assert_int_equal(log_has("BFF00501", "evicted 1 least recently used"), 1);
    assert_int_equal(log_has("BFF00501", "raise BFFSessionStore shm:<size>"), 1);

    /* Replacing an entry does not need a new one: no eviction. */
    assert_int_equal(bff_store_set(st, p, "k5", (const unsigned char *)"K5", 2, exp), APR_SUCCESS);
    assert_int_equal(stats_of(st).evictions, 1);
    /* The replace made k5 recent; k3 (k2 was read above) goes next, and the
     * second burst within 10 s is not logged again. */
    assert_int_equal(bff_store_add(st, p, "new2", (const unsigned char *)"n", 1, exp), APR_SUCCESS);
    store_expect_gone(st, p, "k3");
    store_expect_val(st, p, "k2", (const unsigned char *)"k2", 2);
    store_expect_val(st, p, "k5", (const unsigned char *)"K5", 2);
    log_stop();
    assert_int_equal(log_has("BFF00501", NULL), 1);
    assert_int_equal(stats_of(st).evictions, 2);
    verify_ok(st, p);
}

static void test_lru_blocks(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, SMALL_SIZE);
    bff_store_shm_stats_t s = stats_of(st);
    apr_int64_t exp = store_now() + 3600;
    apr_size_t vlen = 20 * s.block_payload; /* 20 blocks each */
    apr_uint32_t i, fit = s.blocks_max / 20;
    char key[32];

    assert_true(fit >= 3 && fit < s.entries_max);
    for (i = 0; i < fit; i++) {
        apr_snprintf(key, sizeof(key), "b%u", i);
        assert_int_equal(bff_store_set(st, p, key, store_pattern(p, vlen, i), vlen, exp),
                         APR_SUCCESS);
    }
    assert_int_equal(stats_of(st).evictions, 0);
    store_expect_val(st, p, "b0", store_pattern(p, vlen, 0), vlen);
    log_start();
    /* Needs 20 more blocks than are free: b1, the least recently used, goes. */
    assert_int_equal(bff_store_set(st, p, "big", store_pattern(p, vlen, 77), vlen, exp),
                     APR_SUCCESS);
    log_stop();
    store_expect_gone(st, p, "b1");
    store_expect_val(st, p, "b0", store_pattern(p, vlen, 0), vlen);
    store_expect_val(st, p, "big", store_pattern(p, vlen, 77), vlen);
    for (i = 2; i < fit; i++) {
        apr_snprintf(key, sizeof(key), "b%u", i);
        store_expect_val(st, p, key, store_pattern(p, vlen, i), vlen);
    }
    assert_int_equal(stats_of(st).evictions, 1);
    verify_ok(st, p);
}

/* What the contract's ENOSPC leaves to the backend: a refused value evicts
 * nothing, and exactly the whole table fits by evicting everything else
 * (replacing "a" with it needs a's own blocks too). */
static void test_enospc(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, SMALL_SIZE);
    bff_store_shm_stats_t s = stats_of(st);
    apr_int64_t exp = store_now() + 3600;
    apr_size_t max = (apr_size_t)s.blocks_max * s.block_payload;
    unsigned char *big = store_pattern(p, max + 1, 5);

    assert_int_equal(bff_store_set(st, p, "a", (const unsigned char *)"A", 1, exp), APR_SUCCESS);
    assert_int_equal(bff_store_set(st, p, "b", (const unsigned char *)"B", 1, exp), APR_SUCCESS);
    assert_int_equal(bff_store_set(st, p, "huge", big, max + 1, exp), APR_ENOSPC);
    assert_int_equal(bff_store_set(st, p, "a", big, max + 1, exp), APR_ENOSPC);
    s = stats_of(st);
    assert_int_equal(s.evictions, 0);
    assert_int_equal(s.entries_used, 2);

    log_start();
    assert_int_equal(bff_store_set(st, p, "a", big, max, exp), APR_SUCCESS);
    log_stop();
    store_expect_val(st, p, "a", big, max);
    store_expect_gone(st, p, "b");
    s = stats_of(st);
    assert_int_equal(s.entries_used, 1);
    assert_int_equal(s.blocks_used, s.blocks_max);
    verify_ok(st, p);
}

/* add_noevict (the callback's single-use marker, written for anonymous
 * requests) never pushes a live entry out of a full store: APR_ENOSPC and
 * every entry still there. It may take the room of an expired entry; plain
 * add on the same full store still evicts. Self-contained (its own store). */
static void test_add_noevict(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, SMALL_SIZE);
    bff_store_shm_stats_t s = stats_of(st);
    apr_int64_t t0 = (apr_int64_t)apr_time_sec(apr_time_now()), exp = t0 + 3600;
    apr_uint32_t i, n = s.entries_max;
    apr_size_t len, vlen;
    unsigned char *v, *big;
    const char *err = NULL;
    char key[32];

    assert_non_null(st->add_noevict);
    for (i = 0; i < n; i++) {
        apr_snprintf(key, sizeof(key), "s%u", i);
        assert_int_equal(bff_store_add(st, p, key, (const unsigned char *)key, strlen(key), exp),
                         APR_SUCCESS);
    }
    assert_int_equal(stats_of(st).entries_used, n);
    assert_int_equal(bff_store_add_noevict(st, p, "u:marker", (const unsigned char *)"1", 1, exp),
                     APR_ENOSPC);
    s = stats_of(st);
    assert_int_equal(s.evictions, 0);
    assert_int_equal(s.entries_used, n);
    for (i = 0; i < n; i++) {
        apr_snprintf(key, sizeof(key), "s%u", i);
        assert_int_equal(bff_store_get(st, p, key, &v, &len), APR_SUCCESS);
        assert_int_equal(len, strlen(key));
        assert_memory_equal(v, key, len);
    }
    assert_int_equal(bff_store_get(st, p, "u:marker", &v, &len), APR_NOTFOUND);
    /* An existing live key still answers EEXIST, not ENOSPC. */
    assert_int_equal(bff_store_add_noevict(st, p, "s3", (const unsigned char *)"1", 1, exp),
                     APR_EEXIST);
    /* An expired entry's room may be taken. */
    assert_int_equal(bff_store_set(st, p, "s0", (const unsigned char *)"s0", 2, t0 - 1),
                     APR_SUCCESS);
    assert_int_equal(bff_store_add_noevict(st, p, "u:marker", (const unsigned char *)"1", 1, exp),
                     APR_SUCCESS);
    assert_int_equal(stats_of(st).evictions, 0);
    /* Plain add still evicts the least recently used entry. */
    bff_log_bind(NULL, NULL);
    assert_int_equal(bff_store_add(st, p, "u:other", (const unsigned char *)"1", 1, exp),
                     APR_SUCCESS);
    assert_int_equal(stats_of(st).evictions, 1);
    assert_int_equal(bff_store_shm_verify(st, p, &err), APR_SUCCESS);

    /* The same when blocks, not entries, run out. */
    st = mkstore(p, SMALL_SIZE);
    s = stats_of(st);
    vlen = (s.blocks_max / 2) * s.block_payload;
    big = apr_pcalloc(p, vlen);
    assert_int_equal(bff_store_add(st, p, "b0", big, vlen, exp), APR_SUCCESS);
    assert_int_equal(bff_store_add(st, p, "b1", big, vlen, exp), APR_SUCCESS);
    assert_true(stats_of(st).entries_used < s.entries_max);
    assert_int_equal(bff_store_add_noevict(st, p, "u:big", big, vlen, exp), APR_ENOSPC);
    assert_int_equal(stats_of(st).evictions, 0);
    assert_int_equal(bff_store_get(st, p, "b0", &v, &len), APR_SUCCESS);
    assert_int_equal(bff_store_get(st, p, "b1", &v, &len), APR_SUCCESS);
    assert_int_equal(bff_store_add(st, p, "u:big", big, vlen, exp), APR_SUCCESS);
    assert_int_equal(stats_of(st).evictions, 1);
}

static void test_default_capacity(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, BFF_STORE_SHM_DEFAULT_SIZE);
    bff_store_shm_stats_t s = stats_of(st);
    apr_int64_t exp = store_now() + 3600;
    unsigned char *v = store_pattern(p, 8192, 1), *got;
    apr_size_t len;
    char key[32];
    int i;

    assert_int_equal(s.size, BFF_STORE_SHM_DEFAULT_SIZE);
    assert_true(s.entries_max >= 10000);
    assert_true((apr_uint64_t)s.blocks_max >= 10000ull * blocks_for(8192, s.block_payload));
    for (i = 0; i < 10000; i++) {
        apr_snprintf(key, sizeof(key), "session-%05d", i);
        v[0] = (unsigned char)i;
        v[8191] = (unsigned char)(i >> 8);
        assert_int_equal(bff_store_set(st, p, key, v, 8192, exp), APR_SUCCESS);
    }
    s = stats_of(st);
    assert_int_equal(s.entries_used, 10000);
    assert_int_equal(s.evictions, 0);
    for (i = 0; i < 10000; i += 997) {
        apr_snprintf(key, sizeof(key), "session-%05d", i);
        assert_int_equal(bff_store_get(st, p, key, &got, &len), APR_SUCCESS);
        assert_int_equal(len, 8192);
        assert_int_equal(got[0], (unsigned char)i);
        assert_int_equal(got[8191], (unsigned char)(i >> 8));
        assert_memory_equal(got + 1, v + 1, 8190);
    }
    verify_ok(st, p);
}

typedef struct {
    apr_uint32_t hash;
    apr_uint32_t n;
} hashed_t;

static int hashed_cmp(const void *a, const void *b)
{
    const hashed_t *x = a, *y = b;

    return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/* Two keys whose 32-bit hashes are equal (a birthday search over at most
 * 400,000 keys; a collision is all but certain after 200,000). */
static void colliding_keys(apr_pool_t *p, bff_store_t *st, char *k1, char *k2, apr_size_t sz)
{
    const apr_uint32_t n = 400000;
    hashed_t *h = apr_palloc(p, sizeof(*h) * n);
    apr_uint32_t i;
    char key[32];

    for (i = 0; i < n; i++) {
        apr_snprintf(key, sizeof(key), "s:%u", i);
        h[i].hash = bff_store_shm_key_hash(st, key);
        h[i].n = i;
    }
    qsort(h, n, sizeof(*h), hashed_cmp);
    for (i = 1; i < n; i++) {
        if (h[i].hash == h[i - 1].hash) {
            apr_snprintf(k1, sz, "s:%u", h[i - 1].n);
            apr_snprintf(k2, sz, "s:%u", h[i].n);
            return;
        }
    }
    fail_msg("no 32-bit hash collision among %u keys", (unsigned)n);
}

/* Keys with equal hashes are still different keys: each lookup compares the
 * whole key, so one user's record is never returned for another's key. */
static void test_full_hash_collision(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, 1024 * 1024);
    apr_int64_t exp = store_now() + 3600;
    char k1[32], k2[32];

    colliding_keys(p, st, k1, k2, sizeof(k1));
    assert_int_equal(bff_store_shm_key_hash(st, k1), bff_store_shm_key_hash(st, k2));
    assert_string_not_equal(k1, k2);
    assert_int_equal(bff_store_set(st, p, k1, (const unsigned char *)"one", 3, exp), APR_SUCCESS);
    store_expect_gone(st, p, k2);
    assert_int_equal(bff_store_remove(st, p, k2), APR_NOTFOUND);
    assert_int_equal(bff_store_add(st, p, k2, (const unsigned char *)"two", 3, exp), APR_SUCCESS);
    store_expect_val(st, p, k1, (const unsigned char *)"one", 3);
    store_expect_val(st, p, k2, (const unsigned char *)"two", 3);
    assert_int_equal(bff_store_remove(st, p, k1), APR_SUCCESS);
    store_expect_gone(st, p, k1);
    store_expect_val(st, p, k2, (const unsigned char *)"two", 3);
    verify_ok(st, p);
}

static void test_collisions(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, 1024 * 1024);
    bff_store_shm_stats_t s = stats_of(st);
    apr_int64_t exp = store_now() + 3600;
    apr_uint32_t i, n = s.entries_max;
    char key[32];

    /* As many keys as buckets: many chains hold several entries. Removing
     * every other one unlinks from chain heads, middles and tails. */
    for (i = 0; i < n; i++) {
        apr_snprintf(key, sizeof(key), "c%u", i);
        assert_int_equal(bff_store_set(st, p, key, (const unsigned char *)key, strlen(key), exp),
                         APR_SUCCESS);
    }
    assert_int_equal(stats_of(st).evictions, 0);
    verify_ok(st, p);
    for (i = 0; i < n; i += 2) {
        apr_snprintf(key, sizeof(key), "c%u", i);
        assert_int_equal(bff_store_remove(st, p, key), APR_SUCCESS);
    }
    verify_ok(st, p);
    for (i = 0; i < n; i++) {
        apr_snprintf(key, sizeof(key), "c%u", i);
        if (i % 2) {
            store_expect_val(st, p, key, (const unsigned char *)key, strlen(key));
        }
        else {
            store_expect_gone(st, p, key);
        }
    }
    for (i = 0; i < n; i += 2) {
        apr_snprintf(key, sizeof(key), "c%u", i);
        assert_int_equal(bff_store_add(st, p, key, (const unsigned char *)"again", 5, exp),
                         APR_SUCCESS);
    }
    for (i = 0; i < n; i++) {
        apr_snprintf(key, sizeof(key), "c%u", i);
        if (i % 2) {
            store_expect_val(st, p, key, (const unsigned char *)key, strlen(key));
        }
        else {
            store_expect_val(st, p, key, (const unsigned char *)"again", 5);
        }
    }
    s = stats_of(st);
    assert_int_equal(s.entries_used, n);
    assert_int_equal(s.evictions, 0);
    verify_ok(st, p);
}

/* ---- damage ---- */

static void test_damage_block(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, SMALL_SIZE);
    apr_int64_t exp = store_now() + 3600;
    const char *err;

    assert_int_equal(bff_store_set(st, p, "a", store_pattern(p, 1000, 1), 1000, exp), APR_SUCCESS);
    assert_int_equal(bff_store_set(st, p, "b", store_pattern(p, 1000, 2), 1000, exp), APR_SUCCESS);
    assert_int_equal(bff_store_shm_damage(st, "a", BFF_STORE_SHM_DAMAGE_BLOCK), APR_SUCCESS);
    assert_int_equal(bff_store_shm_damage(st, "zz", BFF_STORE_SHM_DAMAGE_BLOCK), APR_NOTFOUND);
    log_start();
    store_expect_gone(st, p, "a");
    assert_int_equal(log_has("BFF00502", NULL), 1);
    assert_int_equal(bff_store_shm_verify(st, p, &err), APR_EGENERAL);
    assert_non_null(err);
    /* The next operation drops the damaged table as a whole. */
    store_expect_gone(st, p, "b");
    log_stop();
    assert_int_equal(log_has("BFF00503", NULL), 1);
    verify_ok(st, p);
    assert_int_equal(stats_of(st).entries_used, 0);
    assert_int_equal(bff_store_set(st, p, "c", store_pattern(p, 600, 3), 600, exp), APR_SUCCESS);
    store_expect_val(st, p, "c", store_pattern(p, 600, 3), 600);
    verify_ok(st, p);
}

static void test_damage_length(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, SMALL_SIZE);
    apr_int64_t exp = store_now() + 3600;

    assert_int_equal(bff_store_set(st, p, "a", store_pattern(p, 1000, 1), 1000, exp), APR_SUCCESS);
    assert_int_equal(bff_store_shm_damage(st, "a", BFF_STORE_SHM_DAMAGE_LENGTH), APR_SUCCESS);
    log_start();
    store_expect_gone(st, p, "a");
    log_stop();
    assert_int_equal(log_has("BFF00502", NULL), 1);
}

static void test_damage_chain(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, SMALL_SIZE);
    apr_int64_t exp = store_now() + 3600;
    char key[32];
    int i;

    assert_int_equal(bff_store_set(st, p, "a", (const unsigned char *)"A", 1, exp), APR_SUCCESS);
    assert_int_equal(bff_store_shm_damage(st, "a", BFF_STORE_SHM_DAMAGE_CHAIN), APR_SUCCESS);
    /* "a" itself is found before the bad link is followed. */
    store_expect_val(st, p, "a", (const unsigned char *)"A", 1);
    /* Missing keys landing in a's bucket follow the bad link: with 16
     * buckets one of 200 keys does (chance of none: (15/16)^200). */
    log_start();
    for (i = 0; i < 200 && !log_has("BFF00502", NULL); i++) {
        apr_snprintf(key, sizeof(key), "missing%d", i);
        store_expect_gone(st, p, key);
    }
    log_stop();
    assert_int_equal(log_has("BFF00502", NULL), 1);
}

/* Found by test/fuzz/fuzz_shm: freeing a value trusted the block count
 * read from the segment. A damaged count or chain then freed a wrong
 * number of blocks (with a cycle in the free list: up to 2^32 rounds under
 * the lock, a hang of every child) and went unnoticed. A chain that is not
 * exactly its count of blocks is now left alone and the table dropped. */
static void test_damage_count(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, SMALL_SIZE);
    apr_int64_t exp = store_now() + 3600;

    assert_int_equal(bff_store_set(st, p, "a", store_pattern(p, 1000, 1), 1000, exp), APR_SUCCESS);
    assert_int_equal(bff_store_set(st, p, "b", store_pattern(p, 1000, 2), 1000, exp), APR_SUCCESS);
    assert_int_equal(bff_store_shm_damage(st, "a", BFF_STORE_SHM_DAMAGE_COUNT), APR_SUCCESS);
    log_start();
    (void)bff_store_remove(st, p, "a");
    assert_int_equal(log_has("BFF00502", NULL), 1);
    /* The next operation drops the damaged table; it is sound again. */
    store_expect_gone(st, p, "b");
    log_stop();
    assert_int_equal(log_has("BFF00503", NULL), 1);
    verify_ok(st, p);
    assert_int_equal(bff_store_set(st, p, "c", store_pattern(p, 1200, 3), 1200, exp), APR_SUCCESS);
    assert_int_equal(bff_store_set(st, p, "d", store_pattern(p, 1200, 4), 1200, exp), APR_SUCCESS);
    store_expect_val(st, p, "c", store_pattern(p, 1200, 3), 1200);
    store_expect_val(st, p, "d", store_pattern(p, 1200, 4), 1200);
    verify_ok(st, p);
}

/* Found by test/fuzz/fuzz_shm: a free list that links into a live value's
 * blocks (damage) was not seen by the operations; the next write took those
 * blocks and overwrote the value, or returned another entry's bytes. Every
 * block now names its owner, checked when it is taken, read and freed. */
static void test_damage_free_list(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, SMALL_SIZE);
    apr_int64_t exp = store_now() + 3600;
    unsigned char *v;
    apr_size_t len;
    apr_status_t rv;

    assert_int_equal(bff_store_set(st, p, "a", store_pattern(p, 1000, 1), 1000, exp), APR_SUCCESS);
    assert_int_equal(bff_store_shm_damage(st, "a", BFF_STORE_SHM_DAMAGE_FREE_LIST), APR_SUCCESS);
    log_start();
    /* Whatever this write answers, it must not land in a's blocks. */
    (void)bff_store_set(st, p, "b", store_pattern(p, 1000, 2), 1000, exp);
    rv = bff_store_get(st, p, "a", &v, &len);
    log_stop();
    assert_int_equal(log_has("BFF00502", NULL), 1);
    if (rv == APR_SUCCESS) {
        assert_int_equal(len, 1000);
        assert_memory_equal(v, store_pattern(p, 1000, 1), 1000);
    }
    else {
        assert_int_equal(rv, APR_NOTFOUND);
    }
    verify_ok(st, p);
}

/* Found by test/fuzz/fuzz_shm: "now - last_full_log" and "now - last_sweep"
 * on times read from the segment could overflow (undefined behaviour; the
 * crasher is in test/fuzz/corpus/fuzz_shm/). A time in the future - a
 * damaged one, or the clock set back - silenced BFF00501 and the full
 * expiry sweep until the clock caught up; it now counts as long ago. */
static void test_damage_clocks(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, SMALL_SIZE);
    apr_int64_t exp = store_now() + 3600;
    apr_uint32_t i, n = stats_of(st).entries_max;
    char key[32];

    for (i = 0; i < n; i++) {
        apr_snprintf(key, sizeof(key), "k%u", i);
        assert_int_equal(bff_store_set(st, p, key, (const unsigned char *)key, strlen(key), exp),
                         APR_SUCCESS);
    }
    assert_int_equal(bff_store_shm_damage(st, "k0", BFF_STORE_SHM_DAMAGE_CLOCKS), APR_SUCCESS);
    log_start();
    assert_int_equal(bff_store_set(st, p, "new", (const unsigned char *)"n", 1, exp), APR_SUCCESS);
    log_stop();
    assert_int_equal(stats_of(st).evictions, 1);
    assert_int_equal(log_has("BFF00501", NULL), 1);
    verify_ok(st, p);
}

/* ---- several processes ---- */

#define MP_KEYS 96
#define MP_CHILDREN 4
#define MP_OPS 20000
#define MP_HDR 12

static apr_size_t mp_value(unsigned char *buf, unsigned key, unsigned ver, apr_size_t len)
{
    unsigned l = (unsigned)len;
    apr_size_t i;

    memcpy(buf, &key, 4);
    memcpy(buf + 4, &ver, 4);
    memcpy(buf + 8, &l, 4);
    for (i = MP_HDR; i < len; i++) {
        buf[i] = (unsigned char)(key * 131u + ver * 31u + i);
    }
    return len;
}

/* 0 if buf is exactly one whole value written for key. */
static int mp_check(const unsigned char *buf, apr_size_t len, unsigned key)
{
    unsigned k, ver, l;
    apr_size_t i;

    if (len < MP_HDR) {
        return 1;
    }
    memcpy(&k, buf, 4);
    memcpy(&ver, buf + 4, 4);
    memcpy(&l, buf + 8, 4);
    if (k != key || l != len) {
        return 2;
    }
    for (i = MP_HDR; i < len; i++) {
        if (buf[i] != (unsigned char)(key * 131u + ver * 31u + i)) {
            return 3;
        }
    }
    return 0;
}

static int mp_child(bff_store_t *st, unsigned id)
{
    apr_pool_t *pchild, *p;
    unsigned seed = id * 7919u + 1, key, ver = id << 24;
    unsigned char buf[4000], *v;
    apr_size_t len;
    apr_int64_t exp;
    apr_status_t rv;
    char k[32];
    int i, op, bad = 0;

    if (apr_pool_create(&pchild, NULL) != APR_SUCCESS || st->child_init(st, pchild) != APR_SUCCESS
        || apr_pool_create(&p, pchild) != APR_SUCCESS) {
        return 10;
    }
    for (i = 0; i < MP_OPS && !bad; i++) {
        key = (unsigned)rand_r(&seed) % MP_KEYS;
        apr_snprintf(k, sizeof(k), "mp-%u", key);
        op = rand_r(&seed) % 10;
        if (op < 4) {
            rv = bff_store_get(st, p, k, &v, &len);
            if (rv == APR_SUCCESS) {
                bad = mp_check(v, len, key) ? 20 + mp_check(v, len, key) : 0;
            }
            else if (rv != APR_NOTFOUND) {
                bad = 30;
            }
        }
        else if (op < 8) {
            len = MP_HDR + (apr_size_t)rand_r(&seed) % (sizeof(buf) - MP_HDR);
            mp_value(buf, key, ++ver, len);
            exp = store_now() + (i % 10 == 0 ? -1 : 3600);
            if (op == 7) {
                rv = bff_store_add(st, p, k, buf, len, exp);
            }
            else {
                rv = bff_store_set(st, p, k, buf, len, exp);
            }
            if (rv != APR_SUCCESS && !(op == 7 && rv == APR_EEXIST)) {
                bad = 40;
            }
        }
        else {
            rv = bff_store_remove(st, p, k);
            if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
                bad = 50;
            }
        }
        if (i % 64 == 0) {
            apr_pool_clear(p);
        }
    }
    if (bad) {
        fprintf(stderr, "child %u: op %d failed with %d\n", id, i, bad);
    }
    return bad;
}

static void test_multiprocess(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = mkstore(p, 256 * 1024);
    pid_t pids[MP_CHILDREN];
    bff_store_shm_stats_t s;
    unsigned char *v;
    apr_size_t len;
    unsigned i;
    int status, found = 0;
    char k[32];

    log_start();
    for (i = 0; i < MP_CHILDREN; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            _exit(mp_child(st, i + 1));
        }
    }
    for (i = 0; i < MP_CHILDREN; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    log_stop();
    verify_ok(st, p);
    for (i = 0; i < MP_KEYS; i++) {
        apr_snprintf(k, sizeof(k), "mp-%u", i);
        if (bff_store_get(st, p, k, &v, &len) == APR_SUCCESS) {
            assert_int_equal(mp_check(v, len, i), 0);
            found++;
        }
    }
    s = stats_of(st);
    assert_int_equal(s.entries_used, (apr_uint32_t)found);
    assert_true(s.entries_used <= s.entries_max);
    assert_true(s.blocks_used <= s.blocks_max);
    /* 96 keys in 64 entries: the children did run the store full. */
    assert_true(s.evictions > 0);
    assert_true(s.expired > 0);
    verify_ok(st, p);
}

static void test_create_bad(void **state)
{
    apr_pool_t *p = *state;
    apr_global_mutex_t *m;
    bff_store_t *st = (bff_store_t *)1;

    assert_int_equal(apr_global_mutex_create(&m, NULL, APR_LOCK_DEFAULT, p), APR_SUCCESS);
    assert_int_equal(bff_store_shm_create(p, 1024, m, &st), APR_EINVAL);
    assert_null(st);
    assert_int_equal(bff_store_shm_create(p, SMALL_SIZE, NULL, &st), APR_EINVAL);
}

/* ---- the store contract ---- */

static bff_store_t *shm_open(apr_pool_t *p, int small)
{
    return mkstore(p, small ? SMALL_SIZE : 1024 * 1024);
}

static apr_size_t shm_max_value(bff_store_t *st)
{
    bff_store_shm_stats_t s = stats_of(st);

    return (apr_size_t)s.blocks_max * s.block_payload;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_accounting, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_expiry_stats, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_replace, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_expired_reclaimed_before_eviction, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_expired_full_sweep, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_lru_entries, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_lru_blocks, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_enospc, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_add_noevict, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_default_capacity, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_collisions, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_full_hash_collision, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_damage_block, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_damage_length, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_damage_chain, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_damage_count, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_damage_clocks, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_damage_free_list, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_multiprocess, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_create_bad, unit_pool_setup, unit_pool_teardown),
    };

    static const store_contract_t contract = {
        .name = "shm", .open = shm_open, .max_value = shm_max_value, .check = verify_ok
    };

    return unit_run("store_shm", tests) + store_contract_run(&contract);
}
