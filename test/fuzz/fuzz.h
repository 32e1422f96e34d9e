/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#ifndef BFF_FUZZ_H
#define BFF_FUZZ_H

/* Shared by the libFuzzer targets in this directory (see README.md). Each
 * target calls the httpd-free core directly, with a pool created for the
 * input and destroyed after it, so ASan sees every use after the pool's end
 * and LeakSanitizer every allocation made outside a pool. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "bff_log.h"

/* A failed invariant is a finding: abort so libFuzzer saves the input. */
#define FUZZ_ASSERT(cond) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
    abort(); } } while (0)

static apr_pool_t *fuzz_root;

/* Log lines are formatted (the format path sees fuzzed values) and dropped. */
static void fuzz_log_drop(void *baton, const char *file, int line, int level,
                          apr_status_t rv, const char *msg)
{
    (void)baton; (void)file; (void)line; (void)level; (void)rv;
    FUZZ_ASSERT(msg != NULL);
}

/* APR's allocator may take its memory with mmap, which LeakSanitizer does
 * not scan: objects referenced only from a live pool would be reported. So
 * the root pool (and everything a target keeps in it) ends before the leak
 * check at exit. */
static void fuzz_fini(void)
{
    if (fuzz_root) {
        apr_pool_destroy(fuzz_root);
        fuzz_root = NULL;
    }
}

static inline void fuzz_init(void)
{
    if (!fuzz_root) {
        atexit(fuzz_fini);
        if (apr_initialize() != APR_SUCCESS || apr_pool_create(&fuzz_root, NULL) != APR_SUCCESS) {
            abort();
        }
        bff_log_bind(fuzz_log_drop, NULL);
        bff_log_set_level(BFF_LOG_DEBUG);
    }
}

static inline apr_pool_t *fuzz_pool(void)
{
    apr_pool_t *p = NULL;

    fuzz_init();
    if (apr_pool_create(&p, fuzz_root) != APR_SUCCESS) {
        abort();
    }
    return p;
}

/* The input as a NUL-terminated string in p (embedded NULs cut it short,
 * as they would in a header or query string). */
static inline char *fuzz_str(apr_pool_t *p, const uint8_t *data, size_t size)
{
    char *s = apr_palloc(p, size + 1);

    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* The input as an exact-size heap copy (no NUL after it), so ASan catches a
 * read of even one byte past the end. Free with free(). */
static inline char *fuzz_exact(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1);

    if (!s) {
        abort();
    }
    memcpy(s, data, size);
    return s;
}

#endif /* BFF_FUZZ_H */
