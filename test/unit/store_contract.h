/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* The store contract (src/bff_store.h) as one cmocka suite that every
 * backend's test runs against its own stores, so that shm and memcache are
 * held to the same get/set/add/replace/remove semantics, expiry, status
 * codes, key limits, binary values and lock ownership. What only one
 * backend does (shm eviction and damage, memcache servers going down)
 * stays in that backend's test file. Also the value helpers those files
 * share. */
#ifndef BFF_STORE_CONTRACT_H
#define BFF_STORE_CONTRACT_H

#include <apr_pools.h>

#include "bff_store.h"

/* One backend under the contract. */
typedef struct {
    const char *name;
    /* A new, empty store in p (a failed assertion is a failed test).
     * small: one whose largest value is max_value(st), for the ENOSPC
     * checks; otherwise one that holds values of 300 KiB. */
    bff_store_t *(*open)(apr_pool_t *p, int small);
    apr_size_t (*max_value)(bff_store_t *st);
    /* After each test, may be NULL: the backend's own consistency check. */
    void (*check)(bff_store_t *st, apr_pool_t *p);
    /* After each test, also a failed one, may be NULL: stop what open
     * started. */
    void (*close)(void);
} store_contract_t;

/* Runs the suite as the cmocka group "store_contract_<name>"; returns the
 * number of failed tests. */
int store_contract_run(const store_contract_t *backend);

/* Shared value helpers. */
apr_int64_t store_now(void);
unsigned char *store_pattern(apr_pool_t *p, apr_size_t len, unsigned seed);
void store_expect_val(bff_store_t *st, apr_pool_t *p, const char *key, const void *want,
                      apr_size_t wlen);
void store_expect_gone(bff_store_t *st, apr_pool_t *p, const char *key);

#endif /* BFF_STORE_CONTRACT_H */
