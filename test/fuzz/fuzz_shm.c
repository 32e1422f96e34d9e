/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* The shm store's on-segment structures as the store finds them: the
 * segment outlives graceful restarts (and every child writes it), so each
 * operation starts from whatever the segment holds, checked by
 * table_check() and the bounds checks of every walk. The input is a whole
 * segment image (header, buckets, entries, blocks) laid over the segment
 * of a small store; then the operations the module performs run on it:
 * verify, get, set, add, remove, stats.
 *
 * This file includes bff_store_shm.c to reach the segment and to pin the
 * hash seed (process-local, random in production) so that inputs replay.
 * The segment is moved to a heap block of exactly its size, so ASan reports
 * any access outside it. Invariants: nothing reads or writes outside the
 * segment, no operation hangs (-timeout), a value returned is readable and
 * the one written, and a table that verifies before the operations still
 * verifies after them. */
#include "fuzz.h"

#include "../../src/bff_store_shm.c"

#define SEG_SIZE (16 * 1024)

static bff_store_t *store;
static shm_ctx_t *ctx;
static char *seg_heap; /* the segment's copy (also keeps it reachable for LSan) */

static void write_seed(const char *dir, const char *name)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!(f = fopen(path, "wb")) || fwrite(ctx->h, 1, ctx->size, f) != ctx->size) {
        abort();
    }
    fclose(f);
}

/* FUZZ_WRITE_SEEDS=dir: write a few segment images made by the store
 * itself (empty, some sessions, full with an eviction, after removals). */
static void write_seeds(const char *dir)
{
    apr_pool_t *p = fuzz_pool();
    unsigned char val[1500];
    apr_int64_t far = APR_INT64_C(4102444800); /* 2100-01-01 */
    char key[16];
    int i;

    memset(val, 'v', sizeof(val));
    table_init(ctx);
    write_seed(dir, "empty");
    for (i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        bff_store_set(store, p, key, val, (apr_size_t)(100 + 400 * i) % sizeof(val), far);
    }
    write_seed(dir, "five-entries");
    bff_store_remove(store, p, "k1");
    bff_store_remove(store, p, "k3");
    bff_store_set(store, p, "k0", val, 3, 1000); /* long expired */
    write_seed(dir, "free-lists");
    for (i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "s:%d", i);
        bff_store_set(store, p, key, val, sizeof(val), far);
    }
    write_seed(dir, "full-evicted");
    apr_pool_destroy(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_global_mutex_t *mutex = NULL;
    const char *seeds = getenv("FUZZ_WRITE_SEEDS");

    fuzz_init();
    if (apr_global_mutex_create(&mutex, NULL, APR_LOCK_DEFAULT, fuzz_root) != APR_SUCCESS
        || bff_store_shm_create(fuzz_root, SEG_SIZE, mutex, &store) != APR_SUCCESS) {
        abort();
    }
    ctx = store->ctx;
    {
        char *base = (char *)ctx->h, *heap = seg_heap = calloc(1, ctx->size);

        if (!heap) {
            abort();
        }
        ctx->buckets = (apr_uint32_t *)(void *)(heap + ((char *)ctx->buckets - base));
        ctx->entries = (shm_entry_t *)(void *)(heap + ((char *)ctx->entries - base));
        ctx->blocks = (shm_block_t *)(void *)(heap + ((char *)ctx->blocks - base));
        ctx->h = (shm_hdr_t *)(void *)heap;
        ctx->seed = 0x5eed;
        table_init(ctx);
    }
    if (seeds) {
        write_seeds(seeds);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char val[700] = { 'x' };
    apr_pool_t *p = fuzz_pool();
    bff_store_shm_stats_t stats;
    const char *err = NULL;
    unsigned char *got;
    apr_size_t len;
    char key[16];
    int i, sound;
    apr_status_t added;

    memset(ctx->h, 0, ctx->size);
    memcpy(ctx->h, data, size < ctx->size ? size : ctx->size);

    sound = bff_store_shm_verify(store, p, &err) == APR_SUCCESS;
    for (i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        if (bff_store_get(store, p, key, &got, &len) == APR_SUCCESS) {
            FUZZ_ASSERT(len == 0 || got != NULL);
            if (len) {
                /* Every byte handed out must be readable (ASan). */
                volatile unsigned char sum = 0;
                apr_size_t j;
                for (j = 0; j < len; j++)
                    sum ^= got[j];
                (void)sum;
            }
        }
    }
    (void)bff_store_set(store, p, "k1", val, 10, APR_INT64_C(4102444800));
    added = bff_store_add(store, p, "k5", val, sizeof(val), APR_INT64_C(4102444800));
    (void)bff_store_remove(store, p, "k2");
    (void)bff_store_set(store, p, "s:0", val, sizeof(val), APR_INT64_C(4102444800));
    /* The writes that a logout must win against and the marker an anonymous
     * callback adds (never evicting) walk the same structures. */
    (void)bff_store_replace(store, p, "k3", val, 20, APR_INT64_C(4102444800));
    (void)bff_store_add_noevict(store, p, "u:0", val, 1, APR_INT64_C(4102444800));
    /* What was just added reads back as written (or is gone, when a damaged
     * table was dropped meanwhile), never as other bytes. */
    if (added == APR_SUCCESS && bff_store_get(store, p, "k5", &got, &len) == APR_SUCCESS) {
        FUZZ_ASSERT(len == sizeof(val) && !memcmp(got, val, len));
    }
    FUZZ_ASSERT(bff_store_shm_stats(store, &stats) == APR_SUCCESS);
    err = NULL;
    if (sound && bff_store_shm_verify(store, p, &err) != APR_SUCCESS) {
        fprintf(stderr, "a sound table no longer verifies: %s\n", err);
        abort();
    }
    apr_pool_destroy(p);
    return 0;
}
