/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the shared-memory store backend.
 */
#ifndef BFF_STORE_SHM_H
#define BFF_STORE_SHM_H

#include <apr_global_mutex.h>

#include "bff_store.h"

/* A bounded hash table in one anonymous shared-memory segment, shared by all
 * processes forked after creation and guarded by one global mutex.
 * pool must outlive every child (httpd: the process pool, so the store
 * survives graceful restarts). mutex is created by the caller (httpd: with
 * ap_global_mutex_create so the Mutex directive applies). Values are kept in
 * chained fixed-size blocks; when entries or blocks run out, expired entries
 * are reclaimed first, then the least recently used entries are evicted with
 * a log line (except by add_noevict, which answers APR_ENOSPC instead). A
 * value that cannot fit even in an empty table is APR_ENOSPC. */
apr_status_t bff_store_shm_create(apr_pool_t *pool, apr_size_t size, apr_global_mutex_t *mutex,
                                  bff_store_t **st);

typedef struct {
    apr_size_t size; /* bytes in the segment */
    apr_uint32_t entries_max;
    apr_uint32_t entries_used;
    apr_uint32_t blocks_max;
    apr_uint32_t blocks_used;
    apr_size_t block_payload; /* value bytes per block */
    apr_uint64_t evictions;   /* live entries evicted for space */
    apr_uint64_t expired;     /* expired entries reclaimed */
} bff_store_shm_stats_t;

/* The store object for this load of the module over a segment an earlier
 * load made: httpd reloads the module at every restart, maybe at another
 * address, so the function pointers and strings of an object kept across
 * restarts (retained data) may point into code that is gone. The segment,
 * its mutex and its state carry over; the object is made again in p. */
bff_store_t *bff_store_shm_bind(apr_pool_t *p, const bff_store_t *retained);

apr_status_t bff_store_shm_stats(bff_store_t *st, bff_store_shm_stats_t *stats);

/* Live (unexpired) entries whose key starts with prefix ("s:": sessions),
 * for the status page. Looks at every used entry under the lock: about a
 * millisecond per 100,000 entries, during which the store waits. */
apr_status_t bff_store_shm_count_live(bff_store_t *st, const char *prefix, apr_uint64_t *n);

/* Walk the whole table under the lock and check that every list, link and
 * counter agrees (tests, benchmarks, debugging). APR_EGENERAL with *err
 * describing the first inconsistency. */
apr_status_t bff_store_shm_verify(bff_store_t *st, apr_pool_t *p, const char **err);

/* Test aid only: deliberately damage the entry of key so the tests can
 * check that damage is detected (BFF00502) and never makes the store read
 * outside its segment. APR_NOTFOUND if there is no such entry. */
typedef enum {
    BFF_STORE_SHM_DAMAGE_BLOCK = 1, /* first block index out of range */
    BFF_STORE_SHM_DAMAGE_LENGTH,    /* value length beyond its blocks */
    BFF_STORE_SHM_DAMAGE_CHAIN,     /* hash chain link out of range */
    BFF_STORE_SHM_DAMAGE_COUNT,     /* block count one short of the value's chain */
    BFF_STORE_SHM_DAMAGE_FREE_LIST, /* free block list starts at the value's first block */
    BFF_STORE_SHM_DAMAGE_CLOCKS     /* last sweep and log times far in the future */
} bff_store_shm_damage_e;
apr_status_t bff_store_shm_damage(bff_store_t *st, const char *key, bff_store_shm_damage_e how);

/* Test aid only: the 32-bit hash the table files key under (seeded per
 * segment), so a test can build keys whose hashes collide. */
apr_uint32_t bff_store_shm_key_hash(bff_store_t *st, const char *key);

/* Test aid only: read the time (seconds since the epoch) that decides
 * expiry from clock instead of the system clock, in this process, so that a
 * test drives TTLs with a fake clock. NULL restores the system clock. */
typedef apr_int64_t bff_store_shm_clock_fn(void *baton);
void bff_store_shm_set_clock(bff_store_t *st, bff_store_shm_clock_fn *clock, void *baton);

#endif /* BFF_STORE_SHM_H */
