/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the shared-memory store backend: a bounded hash table with LRU eviction in one
 * anonymous segment, guarded by one global mutex.
 */
#include <stdint.h>
#include <string.h>

#include <apr_general.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "bff_log.h"
#include "bff_store_shm.h"

/* Segment layout, everything addressed by index so nothing in shared memory
 * depends on where the segment is mapped:
 *   header | buckets (uint32 entry index) | entries | blocks (512 bytes each)
 * Free entries and blocks beyond their high-water marks are never touched,
 * so the kernel commits memory only as the table actually fills. */

#define SHM_MAGIC 0x53464642u /* "BFFS" */
#define SHM_VERSION 2u        /* 2: blocks name their owner */
#define NIL 0xFFFFFFFFu
#define KEY_MAX 128 /* bytes, NUL included */
#define BLOCK_SIZE 512
#define BLOCK_PAYLOAD (BLOCK_SIZE - 8)
#define BYTES_PER_ENTRY 4096
#define ENTRIES_MIN 16
#define BLOCKS_MIN 16
#define TAIL_SCAN 64         /* expired entries looked for per attempt */
#define SWEEP_INTERVAL 1     /* seconds between full expiry sweeps */
#define FULL_LOG_INTERVAL 10 /* seconds between BFF00501 lines */
#define SEG_ALIGN 64
#define SIZE_MAX_SEG ((apr_uint64_t)1 << 40)

/* owner is the index of the entry whose value the block holds, NIL while
 * the block is free: a link into another entry's blocks (damage) is then
 * seen by the operation that follows it, not only by a full verify. */
typedef struct {
    apr_uint32_t next;
    apr_uint32_t owner;
    unsigned char data[BLOCK_PAYLOAD];
} shm_block_t;

typedef struct {
    apr_uint32_t hash;
    apr_uint32_t hnext; /* hash chain; free-list link when unused */
    apr_uint32_t prev;  /* LRU, towards the head (most recent) */
    apr_uint32_t next;  /* LRU, towards the tail */
    apr_uint32_t first; /* first value block, NIL for an empty value */
    apr_uint32_t nblocks;
    apr_uint32_t in_use;
    apr_uint32_t pad;
    apr_uint64_t vlen;
    apr_int64_t expires;
    apr_int64_t last_used;
    char key[KEY_MAX];
} shm_entry_t;

typedef struct {
    apr_uint32_t magic;
    apr_uint32_t version;
    apr_uint64_t size;
    apr_uint32_t nbuckets;
    apr_uint32_t entries_max;
    apr_uint32_t blocks_max;
    apr_uint32_t seed;
    apr_uint32_t entries_used;
    apr_uint32_t entry_hwm;
    apr_uint32_t entry_free;
    apr_uint32_t blocks_used;
    apr_uint32_t block_hwm;
    apr_uint32_t block_free;
    apr_uint32_t lru_head;
    apr_uint32_t lru_tail;
    apr_uint32_t corrupt;
    apr_uint32_t pad;
    apr_uint64_t evictions;
    apr_uint64_t expired;
    apr_uint64_t evicted_unlogged;
    apr_int64_t last_full_log;
    apr_int64_t last_sweep;
} shm_hdr_t;

/* Process-local view. The geometry is kept here as well as in the header:
 * bounds checks use these copies, which a scribble on the segment cannot
 * change. */
typedef struct {
    apr_shm_t *shm;
    apr_global_mutex_t *mutex;
    apr_size_t size;
    shm_hdr_t *h;
    apr_uint32_t *buckets;
    shm_entry_t *entries;
    shm_block_t *blocks;
    apr_uint32_t nbuckets;
    apr_uint32_t entries_max;
    apr_uint32_t blocks_max;
    apr_uint32_t seed;
    bff_store_shm_clock_fn *clock; /* test aid: NULL = the real clock */
    void *clock_baton;
} shm_ctx_t;

typedef enum { MODE_SET, MODE_ADD, MODE_ADD_NOEVICT, MODE_REPLACE } set_mode_e;

static apr_uint64_t align_up(apr_uint64_t n)
{
    return (n + SEG_ALIGN - 1) & ~(apr_uint64_t)(SEG_ALIGN - 1);
}

static apr_uint32_t key_hash(const shm_ctx_t *c, const char *key, apr_size_t klen)
{
    /* FNV-1a 64, seeded per segment, folded to 32 bits. */
    apr_uint64_t h = APR_UINT64_C(14695981039346656037) ^ c->seed;
    apr_size_t i;

    for (i = 0; i < klen; i++) {
        h ^= (unsigned char)key[i];
        h *= APR_UINT64_C(1099511628211);
    }
    return (apr_uint32_t)(h ^ (h >> 32));
}

/* At least interval seconds since then? then is read from the segment, so
 * no arithmetic on it that a damaged value could overflow; a time in the
 * future (the clock was set back) counts as long ago. */
static int elapsed(apr_int64_t now, apr_int64_t then, apr_int64_t interval)
{
    return then > now || then <= now - interval;
}

static apr_int64_t now_sec(const shm_ctx_t *c)
{
    if (c->clock) {
        return c->clock(c->clock_baton);
    }
    return (apr_int64_t)apr_time_sec(apr_time_now());
}

static int is_expired(const shm_entry_t *e, apr_int64_t now)
{
    return now > e->expires;
}

static void mark_corrupt(shm_ctx_t *c, const char *what, apr_uint32_t idx)
{
    if (!c->h->corrupt) {
        BFF_LOG(BFF_LOG_ERR, APR_EGENERAL,
                "BFF00502: session store damaged (%s, index %u): "
                "entry treated as absent; the store will be reinitialised",
                what, idx);
    }
    c->h->corrupt = 1;
}

static shm_entry_t *entry_at(shm_ctx_t *c, apr_uint32_t idx, const char *what)
{
    if (idx == NIL) {
        return NULL;
    }
    if (idx >= c->entries_max) {
        mark_corrupt(c, what, idx);
        return NULL;
    }
    return &c->entries[idx];
}

static shm_block_t *block_at(shm_ctx_t *c, apr_uint32_t idx, const char *what)
{
    if (idx >= c->blocks_max) {
        mark_corrupt(c, what, idx);
        return NULL;
    }
    return &c->blocks[idx];
}

static void table_init(shm_ctx_t *c)
{
    shm_hdr_t *h = c->h;
    apr_uint32_t i;

    memset(h, 0, sizeof(*h));
    h->magic = SHM_MAGIC;
    h->version = SHM_VERSION;
    h->size = c->size;
    h->nbuckets = c->nbuckets;
    h->entries_max = c->entries_max;
    h->blocks_max = c->blocks_max;
    h->seed = c->seed;
    h->entry_free = NIL;
    h->block_free = NIL;
    h->lru_head = NIL;
    h->lru_tail = NIL;
    for (i = 0; i < c->nbuckets; i++) {
        c->buckets[i] = NIL;
    }
}

/* Called first under the lock by every operation: a damaged table is
 * dropped as a whole rather than patched, since a damaged link could hand
 * one session's blocks to another. */
static void table_check(shm_ctx_t *c)
{
    shm_hdr_t *h = c->h;

    if (h->magic == SHM_MAGIC && h->version == SHM_VERSION && !h->corrupt
        && h->entry_hwm <= c->entries_max && h->block_hwm <= c->blocks_max) {
        return;
    }
    BFF_LOG(BFF_LOG_ERR, APR_EGENERAL,
            "BFF00503: session store reinitialised after damage "
            "was detected; %u sessions dropped",
            h->entries_used);
    table_init(c);
}

static apr_uint32_t find(shm_ctx_t *c, const char *key, apr_size_t klen, apr_uint32_t hash)
{
    apr_uint32_t idx = c->buckets[hash & (c->nbuckets - 1)], steps = 0;
    shm_entry_t *e;

    while (idx != NIL) {
        if (!(e = entry_at(c, idx, "hash chain"))) {
            return NIL;
        }
        if (!e->in_use || ++steps > c->entries_max) {
            mark_corrupt(c, "hash chain", idx);
            return NIL;
        }
        if (e->hash == hash && !memcmp(e->key, key, klen + 1)) {
            return idx;
        }
        idx = e->hnext;
    }
    return NIL;
}

static void hash_unlink(shm_ctx_t *c, apr_uint32_t idx, shm_entry_t *e)
{
    apr_uint32_t *link = &c->buckets[e->hash & (c->nbuckets - 1)], steps = 0;
    shm_entry_t *x;

    while (*link != NIL && steps++ <= c->entries_max) {
        if (*link == idx) {
            *link = e->hnext;
            return;
        }
        if (!(x = entry_at(c, *link, "hash chain"))) {
            return;
        }
        link = &x->hnext;
    }
    mark_corrupt(c, "entry missing from its hash chain", idx);
}

static void lru_unlink(shm_ctx_t *c, apr_uint32_t idx, shm_entry_t *e)
{
    shm_entry_t *x;

    if (e->prev == NIL) {
        if (c->h->lru_head == idx) {
            c->h->lru_head = e->next;
        }
        else {
            mark_corrupt(c, "LRU head", idx);
        }
    }
    else if ((x = entry_at(c, e->prev, "LRU link"))) {
        x->next = e->next;
    }
    if (e->next == NIL) {
        if (c->h->lru_tail == idx) {
            c->h->lru_tail = e->prev;
        }
        else {
            mark_corrupt(c, "LRU tail", idx);
        }
    }
    else if ((x = entry_at(c, e->next, "LRU link"))) {
        x->prev = e->prev;
    }
    e->prev = e->next = NIL;
}

static void lru_push_head(shm_ctx_t *c, apr_uint32_t idx, shm_entry_t *e)
{
    shm_entry_t *x;

    e->prev = NIL;
    e->next = c->h->lru_head;
    if (e->next == NIL) {
        c->h->lru_tail = idx;
    }
    else if ((x = entry_at(c, e->next, "LRU head"))) {
        x->prev = idx;
    }
    c->h->lru_head = idx;
}

/* Is the chain at idx exactly what blocks_alloc() makes of n blocks: n
 * links below the high-water mark, the n-th ending it? A repeated block
 * (a cycle) could never end in NIL, so a chain that passes holds n
 * distinct blocks. */
static int chain_ok(shm_ctx_t *c, apr_uint32_t owner, apr_uint32_t idx, apr_uint32_t n)
{
    apr_uint32_t i;

    if (n > c->h->block_hwm) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (idx >= c->h->block_hwm || !block_at(c, idx, "value block")
            || c->blocks[idx].owner != owner) {
            return 0;
        }
        idx = c->blocks[idx].next;
    }
    return idx == NIL;
}

static void blocks_free(shm_ctx_t *c, apr_uint32_t owner, apr_uint32_t idx, apr_uint32_t n)
{
    shm_block_t *b;
    apr_uint32_t next;

    /* A damaged count or a cycle would loop up to 2^32 times under the lock
     * and put blocks on the free list twice (two entries would then share
     * them): free nothing, the damaged table is dropped at the next
     * operation. */
    if (n && !chain_ok(c, owner, idx, n)) {
        mark_corrupt(c, "value block chain", idx);
        return;
    }
    while (n-- > 0) {
        /* A bad link leaks the rest of the chain rather than freeing blocks
         * another entry may own. */
        if (idx >= c->h->block_hwm || !(b = block_at(c, idx, "value block"))) {
            mark_corrupt(c, "value block", idx);
            return;
        }
        next = b->next;
        b->owner = NIL;
        b->next = c->h->block_free;
        c->h->block_free = idx;
        c->h->blocks_used--;
        idx = next;
    }
}

static apr_uint32_t block_take(shm_ctx_t *c)
{
    shm_hdr_t *h = c->h;
    apr_uint32_t idx;
    shm_block_t *b;

    if (h->block_free != NIL) {
        idx = h->block_free;
        if (idx >= h->block_hwm || !(b = block_at(c, idx, "free block list")) || b->owner != NIL) {
            mark_corrupt(c, "free block list", idx);
            return NIL;
        }
        h->block_free = b->next;
    }
    else if (h->block_hwm < c->blocks_max) {
        idx = h->block_hwm++;
    }
    else {
        return NIL;
    }
    h->blocks_used++;
    return idx;
}

/* Allocate a chain of n blocks holding val; *first is NIL when n is 0. */
static apr_status_t blocks_alloc(shm_ctx_t *c, apr_uint32_t owner, const unsigned char *val,
                                 apr_size_t len, apr_uint32_t n, apr_uint32_t *first)
{
    apr_uint32_t i, idx, *link = first;
    apr_size_t off = 0, chunk;
    shm_block_t *b;

    *first = NIL;
    for (i = 0; i < n; i++) {
        if ((idx = block_take(c)) == NIL) {
            *link = NIL;
            /* make_room() counted the blocks, so this is damage, not space. */
            blocks_free(c, owner, *first, i);
            *first = NIL;
            return APR_EGENERAL;
        }
        b = &c->blocks[idx];
        b->owner = owner;
        chunk = len - off < BLOCK_PAYLOAD ? len - off : BLOCK_PAYLOAD;
        memcpy(b->data, val + off, chunk);
        off += chunk;
        *link = idx;
        link = &b->next;
    }
    *link = NIL;
    return APR_SUCCESS;
}

static void entry_release(shm_ctx_t *c, apr_uint32_t idx, shm_entry_t *e)
{
    hash_unlink(c, idx, e);
    lru_unlink(c, idx, e);
    blocks_free(c, idx, e->first, e->nblocks);
    e->in_use = 0;
    e->first = NIL;
    e->nblocks = 0;
    e->hnext = c->h->entry_free;
    c->h->entry_free = idx;
    c->h->entries_used--;
}

static apr_uint32_t entry_take(shm_ctx_t *c)
{
    shm_hdr_t *h = c->h;
    apr_uint32_t idx;
    shm_entry_t *e;

    if (h->entry_free != NIL) {
        idx = h->entry_free;
        if (idx >= h->entry_hwm || !(e = entry_at(c, idx, "free entry list")) || e->in_use) {
            mark_corrupt(c, "free entry list", idx);
            return NIL;
        }
        h->entry_free = e->hnext;
    }
    else if (h->entry_hwm < c->entries_max) {
        idx = h->entry_hwm++;
    }
    else {
        return NIL;
    }
    h->entries_used++;
    return idx;
}

static int room_for(shm_ctx_t *c, apr_uint32_t need_entries, apr_uint32_t need_blocks)
{
    return (apr_uint64_t)c->h->entries_used + need_entries <= c->entries_max
           && (apr_uint64_t)c->h->blocks_used + need_blocks <= c->blocks_max;
}

/* Reclaim expired entries from the LRU tail: a bounded scan (limit entries
 * looked at) stops once there is room; a full sweep (limit 0) reclaims every
 * expired entry, since it was paid for anyway. */
static void reclaim_expired(shm_ctx_t *c, apr_int64_t now, apr_uint32_t limit,
                            apr_uint32_t need_entries, apr_uint32_t need_blocks, apr_uint32_t pin)
{
    apr_uint32_t idx = c->h->lru_tail, prev, seen = 0;
    int sweep = (limit == 0);
    shm_entry_t *e;

    if (sweep || limit > c->entries_max) {
        limit = c->entries_max;
    }
    while (idx != NIL && seen++ < limit && (sweep || !room_for(c, need_entries, need_blocks))) {
        if (!(e = entry_at(c, idx, "LRU link"))) {
            return;
        }
        prev = e->prev;
        if (idx != pin && e->in_use && is_expired(e, now)) {
            entry_release(c, idx, e);
            c->h->expired++;
        }
        idx = prev;
    }
}

/* Make room for need_entries new entries and need_blocks blocks, never
 * touching pin (the entry being replaced). Expired entries go first; live
 * ones only when may_evict (else APR_ENOSPC). *evicted counts live entries
 * dropped. */
static apr_status_t make_room(shm_ctx_t *c, apr_int64_t now, apr_uint32_t need_entries,
                              apr_uint32_t need_blocks, apr_uint32_t pin, int may_evict,
                              apr_uint32_t *evicted)
{
    apr_uint32_t idx, prev, seen = 0;
    shm_entry_t *e;

    if (room_for(c, need_entries, need_blocks)) {
        return APR_SUCCESS;
    }
    reclaim_expired(c, now, TAIL_SCAN, need_entries, need_blocks, pin);
    /* A full sweep costs O(entries); at most once a second so that a store
     * full of live sessions does not pay it on every write. */
    if (!room_for(c, need_entries, need_blocks) && elapsed(now, c->h->last_sweep, SWEEP_INTERVAL)) {
        c->h->last_sweep = now;
        reclaim_expired(c, now, 0, need_entries, need_blocks, pin);
    }
    if (!may_evict) {
        return room_for(c, need_entries, need_blocks) ? APR_SUCCESS : APR_ENOSPC;
    }
    idx = c->h->lru_tail;
    while (idx != NIL && seen++ < c->entries_max && !room_for(c, need_entries, need_blocks)) {
        if (!(e = entry_at(c, idx, "LRU link"))) {
            break;
        }
        prev = e->prev;
        if (idx != pin) {
            entry_release(c, idx, e);
            c->h->evictions++;
            c->h->evicted_unlogged++;
            (*evicted)++;
        }
        idx = prev;
    }
    return room_for(c, need_entries, need_blocks) ? APR_SUCCESS : APR_ENOSPC;
}

static apr_status_t key_check(const char *key, apr_size_t *klen)
{
    if (!key || !*key) {
        return APR_EINVAL;
    }
    *klen = strnlen(key, KEY_MAX);
    return *klen < KEY_MAX ? APR_SUCCESS : APR_EINVAL;
}

static apr_status_t shm_get(bff_store_t *st, apr_pool_t *p, const char *key, unsigned char **val,
                            apr_size_t *len)
{
    shm_ctx_t *c = st->ctx;
    apr_size_t klen, off, chunk;
    apr_uint32_t hash, idx, bidx, i;
    apr_int64_t now = now_sec(c);
    shm_entry_t *e;
    shm_block_t *b;
    unsigned char *buf;
    apr_status_t rv;

    *val = NULL;
    *len = 0;
    if (APR_SUCCESS != (rv = key_check(key, &klen))) {
        return rv;
    }
    hash = key_hash(c, key, klen);
    if (APR_SUCCESS != (rv = apr_global_mutex_lock(c->mutex))) {
        return rv;
    }
    table_check(c);
    rv = APR_NOTFOUND;
    if ((idx = find(c, key, klen, hash)) == NIL) {
        goto leave;
    }
    e = &c->entries[idx];
    if (is_expired(e, now)) {
        entry_release(c, idx, e);
        c->h->expired++;
        goto leave;
    }
    if (e->nblocks > c->blocks_max || e->vlen > (apr_uint64_t)e->nblocks * BLOCK_PAYLOAD
        || (e->nblocks && e->vlen <= (apr_uint64_t)(e->nblocks - 1) * BLOCK_PAYLOAD)) {
        mark_corrupt(c, "value length", idx);
        goto leave;
    }
    buf = apr_palloc(p, e->vlen ? (apr_size_t)e->vlen : 1);
    for (i = 0, off = 0, bidx = e->first; i < e->nblocks; i++) {
        if (!(b = block_at(c, bidx, "value block"))) {
            goto leave;
        }
        if (b->owner != idx) {
            mark_corrupt(c, "value block of another entry", bidx);
            goto leave;
        }
        chunk = e->vlen - off < BLOCK_PAYLOAD ? (apr_size_t)(e->vlen - off) : BLOCK_PAYLOAD;
        memcpy(buf + off, b->data, chunk);
        off += chunk;
        bidx = b->next;
    }
    e->last_used = now;
    lru_unlink(c, idx, e);
    lru_push_head(c, idx, e);
    *val = buf;
    *len = (apr_size_t)e->vlen;
    rv = APR_SUCCESS;
leave:
    apr_global_mutex_unlock(c->mutex);
    return rv;
}

static void entry_fill(shm_entry_t *e, apr_uint32_t first, apr_uint32_t nblocks, apr_size_t len,
                       apr_int64_t expires, apr_int64_t now)
{
    e->first = first;
    e->nblocks = nblocks;
    e->vlen = len;
    e->expires = expires;
    e->last_used = now;
}

/* Replace the value of the live entry idx. APR_ENOSPC: the old value's
 * blocks are needed for the new one, the caller drops the old entry first. */
static apr_status_t entry_replace(shm_ctx_t *c, apr_uint32_t idx, const unsigned char *val,
                                  apr_size_t len, apr_uint32_t nblocks, apr_int64_t expires,
                                  apr_int64_t now, apr_uint32_t *evicted)
{
    shm_entry_t *e = &c->entries[idx];
    apr_uint32_t first;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = make_room(c, now, 0, nblocks, idx, 1, evicted))) {
        return rv;
    }
    if (APR_SUCCESS != (rv = blocks_alloc(c, idx, val, len, nblocks, &first))) {
        return rv;
    }
    blocks_free(c, idx, e->first, e->nblocks);
    entry_fill(e, first, nblocks, len, expires, now);
    lru_unlink(c, idx, e);
    lru_push_head(c, idx, e);
    return APR_SUCCESS;
}

static apr_status_t entry_insert(shm_ctx_t *c, const char *key, apr_size_t klen, apr_uint32_t hash,
                                 const unsigned char *val, apr_size_t len, apr_uint32_t nblocks,
                                 apr_int64_t expires, apr_int64_t now, int may_evict,
                                 apr_uint32_t *evicted)
{
    apr_uint32_t idx, first, *bucket;
    shm_entry_t *e;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = make_room(c, now, 1, nblocks, NIL, may_evict, evicted))) {
        return rv;
    }
    if ((idx = entry_take(c)) == NIL) {
        return APR_EGENERAL;
    }
    e = &c->entries[idx];
    if (APR_SUCCESS != (rv = blocks_alloc(c, idx, val, len, nblocks, &first))) {
        e->in_use = 0;
        e->hnext = c->h->entry_free;
        c->h->entry_free = idx;
        c->h->entries_used--;
        return rv;
    }
    memcpy(e->key, key, klen + 1);
    e->hash = hash;
    e->in_use = 1;
    entry_fill(e, first, nblocks, len, expires, now);
    bucket = &c->buckets[hash & (c->nbuckets - 1)];
    e->hnext = *bucket;
    *bucket = idx;
    lru_push_head(c, idx, e);
    return APR_SUCCESS;
}

static apr_status_t shm_put(bff_store_t *st, const char *key, const unsigned char *val,
                            apr_size_t len, apr_int64_t expires, set_mode_e mode)
{
    shm_ctx_t *c = st->ctx;
    apr_size_t klen;
    apr_uint32_t hash, idx, nblocks, evicted = 0;
    apr_uint64_t burst = 0, used = 0;
    apr_int64_t now = now_sec(c);
    shm_entry_t *e;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = key_check(key, &klen)) || (!val && len)) {
        return APR_EINVAL;
    }
    if (len / BLOCK_PAYLOAD + (len % BLOCK_PAYLOAD != 0) > c->blocks_max) {
        return APR_ENOSPC;
    }
    nblocks = (apr_uint32_t)(len / BLOCK_PAYLOAD + (len % BLOCK_PAYLOAD != 0));
    hash = key_hash(c, key, klen);
    if (APR_SUCCESS != (rv = apr_global_mutex_lock(c->mutex))) {
        return rv;
    }
    table_check(c);
    if ((idx = find(c, key, klen, hash)) != NIL) {
        e = &c->entries[idx];
        if (is_expired(e, now)) {
            entry_release(c, idx, e);
            c->h->expired++;
            idx = NIL;
        }
        else if (mode == MODE_ADD || mode == MODE_ADD_NOEVICT) {
            rv = APR_EEXIST;
            goto leave;
        }
    }
    if (idx == NIL && mode == MODE_REPLACE) {
        /* Decided under the table lock: a remove cannot slip in between. */
        rv = APR_NOTFOUND;
        goto leave;
    }
    if (idx != NIL) {
        rv = entry_replace(c, idx, val, len, nblocks, expires, now, &evicted);
        if (rv != APR_ENOSPC) {
            goto leave;
        }
        entry_release(c, idx, &c->entries[idx]);
    }
    rv = entry_insert(c, key, klen, hash, val, len, nblocks, expires, now, mode != MODE_ADD_NOEVICT,
                      &evicted);
leave:
    if (evicted && elapsed(now, c->h->last_full_log, FULL_LOG_INTERVAL)) {
        c->h->last_full_log = now;
        burst = c->h->evicted_unlogged;
        used = c->h->entries_used;
        c->h->evicted_unlogged = 0;
    }
    apr_global_mutex_unlock(c->mutex);
    if (burst) {
        BFF_LOG(BFF_LOG_WARNING, APR_SUCCESS,
                "BFF00501: session store full (%" APR_UINT64_T_FMT " entries, %" APR_SIZE_T_FMT
                " KiB): evicted %" APR_UINT64_T_FMT
                " least recently used entries; raise BFFSessionStore "
                "shm:<size>",
                used, c->size / 1024, burst);
    }
    return rv;
}

static apr_status_t shm_set(bff_store_t *st, apr_pool_t *p, const char *key,
                            const unsigned char *val, apr_size_t len, apr_int64_t expires)
{
    return shm_put(st, key, val, len, expires, MODE_SET);
}

static apr_status_t shm_add(bff_store_t *st, apr_pool_t *p, const char *key,
                            const unsigned char *val, apr_size_t len, apr_int64_t expires)
{
    return shm_put(st, key, val, len, expires, MODE_ADD);
}

static apr_status_t shm_add_noevict(bff_store_t *st, apr_pool_t *p, const char *key,
                                    const unsigned char *val, apr_size_t len, apr_int64_t expires)
{
    return shm_put(st, key, val, len, expires, MODE_ADD_NOEVICT);
}

static apr_status_t shm_replace(bff_store_t *st, apr_pool_t *p, const char *key,
                                const unsigned char *val, apr_size_t len, apr_int64_t expires)
{
    return shm_put(st, key, val, len, expires, MODE_REPLACE);
}

static apr_status_t shm_remove(bff_store_t *st, apr_pool_t *p, const char *key)
{
    shm_ctx_t *c = st->ctx;
    apr_size_t klen;
    apr_uint32_t hash, idx;
    shm_entry_t *e;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = key_check(key, &klen))) {
        return rv;
    }
    hash = key_hash(c, key, klen);
    if (APR_SUCCESS != (rv = apr_global_mutex_lock(c->mutex))) {
        return rv;
    }
    table_check(c);
    rv = APR_NOTFOUND;
    if ((idx = find(c, key, klen, hash)) != NIL) {
        e = &c->entries[idx];
        if (is_expired(e, now_sec(c))) {
            c->h->expired++;
        }
        else {
            rv = APR_SUCCESS;
        }
        entry_release(c, idx, e);
    }
    apr_global_mutex_unlock(c->mutex);
    return rv;
}

static apr_status_t shm_child_init(bff_store_t *st, apr_pool_t *pchild)
{
    shm_ctx_t *c = st->ctx;

    return apr_global_mutex_child_init(&c->mutex, apr_global_mutex_lockfile(c->mutex), pchild);
}

static apr_status_t geometry(shm_ctx_t *c, apr_size_t size, apr_uint64_t *buckets_off,
                             apr_uint64_t *entries_off, apr_uint64_t *blocks_off)
{
    apr_uint64_t off, nblocks;

    if ((apr_uint64_t)size > SIZE_MAX_SEG) {
        return APR_EINVAL;
    }
    c->entries_max = (apr_uint32_t)(size / BYTES_PER_ENTRY);
    if (c->entries_max < ENTRIES_MIN) {
        c->entries_max = ENTRIES_MIN;
    }
    c->nbuckets = 1;
    while (c->nbuckets < c->entries_max) {
        c->nbuckets <<= 1;
    }
    off = align_up(sizeof(shm_hdr_t));
    *buckets_off = off;
    off = align_up(off + (apr_uint64_t)c->nbuckets * sizeof(apr_uint32_t));
    *entries_off = off;
    off = align_up(off + (apr_uint64_t)c->entries_max * sizeof(shm_entry_t));
    *blocks_off = off;
    if (off >= size || (nblocks = (size - off) / BLOCK_SIZE) < BLOCKS_MIN) {
        return APR_EINVAL;
    }
    c->blocks_max = nblocks >= NIL ? NIL - 1 : (apr_uint32_t)nblocks;
    return APR_SUCCESS;
}

/* The store object: this load's functions over the segment's state. */
static bff_store_t *shm_object(apr_pool_t *p, shm_ctx_t *c)
{
    bff_store_t *s = apr_pcalloc(p, sizeof(*s));

    s->name = "shm";
    s->ctx = c;
    s->child_init = shm_child_init;
    s->get = shm_get;
    s->set = shm_set;
    s->add = shm_add;
    s->replace = shm_replace;
    s->remove = shm_remove;
    s->add_noevict = shm_add_noevict;
    return s;
}

apr_status_t bff_store_shm_create(apr_pool_t *pool, apr_size_t size, apr_global_mutex_t *mutex,
                                  bff_store_t **st)
{
    shm_ctx_t *c;
    apr_uint64_t buckets_off, entries_off, blocks_off;
    char *base;
    apr_status_t rv;

    *st = NULL;
    if (!mutex) {
        return APR_EINVAL;
    }
    c = apr_pcalloc(pool, sizeof(*c));
    c->mutex = mutex;
    c->size = size;
    if (APR_SUCCESS != (rv = geometry(c, size, &buckets_off, &entries_off, &blocks_off))) {
        return rv;
    }
    if (APR_SUCCESS
        != (rv = apr_generate_random_bytes((unsigned char *)&c->seed, sizeof(c->seed)))) {
        return rv;
    }
    if (APR_SUCCESS != (rv = apr_shm_create(&c->shm, size, NULL, pool))) {
        return rv;
    }
    base = apr_shm_baseaddr_get(c->shm);
    c->h = (shm_hdr_t *)(void *)base;
    c->buckets = (apr_uint32_t *)(void *)(base + buckets_off);
    c->entries = (shm_entry_t *)(void *)(base + entries_off);
    c->blocks = (shm_block_t *)(void *)(base + blocks_off);
    table_init(c);

    *st = shm_object(pool, c);
    return APR_SUCCESS;
}

bff_store_t *bff_store_shm_bind(apr_pool_t *p, const bff_store_t *retained)
{
    return shm_object(p, retained->ctx);
}

apr_status_t bff_store_shm_stats(bff_store_t *st, bff_store_shm_stats_t *stats)
{
    shm_ctx_t *c = st->ctx;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = apr_global_mutex_lock(c->mutex))) {
        return rv;
    }
    table_check(c);
    stats->size = c->size;
    stats->entries_max = c->entries_max;
    stats->entries_used = c->h->entries_used;
    stats->blocks_max = c->blocks_max;
    stats->blocks_used = c->h->blocks_used;
    stats->block_payload = BLOCK_PAYLOAD;
    stats->evictions = c->h->evictions;
    stats->expired = c->h->expired;
    apr_global_mutex_unlock(c->mutex);
    return APR_SUCCESS;
}

apr_status_t bff_store_shm_count_live(bff_store_t *st, const char *prefix, apr_uint64_t *n)
{
    shm_ctx_t *c = st->ctx;
    apr_size_t plen = strlen(prefix);
    apr_int64_t now = now_sec(c);
    apr_uint32_t i, hwm;
    apr_status_t rv;

    *n = 0;
    if (APR_SUCCESS != (rv = apr_global_mutex_lock(c->mutex))) {
        return rv;
    }
    table_check(c);
    /* By index up to the high-water mark, not along the lists: bounded
     * whatever state the links are in. */
    hwm = c->h->entry_hwm < c->entries_max ? c->h->entry_hwm : c->entries_max;
    for (i = 0; i < hwm; ++i) {
        const shm_entry_t *e = &c->entries[i];
        if (e->in_use && !is_expired(e, now) && !strncmp(e->key, prefix, plen)) {
            ++*n;
        }
    }
    apr_global_mutex_unlock(c->mutex);
    return APR_SUCCESS;
}

static int bit_test_set(unsigned char *map, apr_uint32_t i)
{
    int was = map[i / 8] & (1u << (i % 8));

    map[i / 8] |= (unsigned char)(1u << (i % 8));
    return was != 0;
}

static const char *verify_entries(shm_ctx_t *c, apr_pool_t *p, unsigned char *emap,
                                  unsigned char *bmap, apr_uint64_t *blocks)
{
    shm_hdr_t *h = c->h;
    apr_uint32_t b, idx, bidx, i, n = 0;
    shm_entry_t *e;
    apr_size_t klen;

    for (b = 0; b < c->nbuckets; b++) {
        for (idx = c->buckets[b]; idx != NIL; idx = e->hnext) {
            if (idx >= h->entry_hwm) {
                return apr_psprintf(p, "bucket %u: entry %u beyond high-water mark", b, idx);
            }
            e = &c->entries[idx];
            if (!e->in_use || bit_test_set(emap, idx)) {
                return apr_psprintf(p, "bucket %u: entry %u unused or linked twice", b, idx);
            }
            klen = strnlen(e->key, KEY_MAX);
            if (klen == 0 || klen == KEY_MAX || key_hash(c, e->key, klen) != e->hash
                || (e->hash & (c->nbuckets - 1)) != b) {
                return apr_psprintf(p, "entry %u: bad key or hash", idx);
            }
            if (e->nblocks > c->blocks_max || e->vlen > (apr_uint64_t)e->nblocks * BLOCK_PAYLOAD
                || (e->nblocks && e->vlen <= (apr_uint64_t)(e->nblocks - 1) * BLOCK_PAYLOAD)) {
                return apr_psprintf(p, "entry %u: length and blocks disagree", idx);
            }
            for (i = 0, bidx = e->first; i < e->nblocks; i++, bidx = c->blocks[bidx].next) {
                if (bidx >= h->block_hwm || c->blocks[bidx].owner != idx
                    || bit_test_set(bmap, bidx)) {
                    return apr_psprintf(p, "entry %u: block %u invalid or shared", idx, bidx);
                }
            }
            if (bidx != NIL) {
                return apr_psprintf(p, "entry %u: block chain not terminated", idx);
            }
            *blocks += e->nblocks;
            n++;
        }
    }
    if (n != h->entries_used) {
        return apr_psprintf(p, "%u entries hashed, %u counted", n, h->entries_used);
    }
    return NULL;
}

static const char *verify_lists(shm_ctx_t *c, apr_pool_t *p, unsigned char *emap,
                                unsigned char *bmap)
{
    shm_hdr_t *h = c->h;
    apr_uint32_t idx, prev = NIL, n = 0;

    for (idx = h->lru_head; idx != NIL; prev = idx, idx = c->entries[idx].next) {
        if (idx >= h->entry_hwm || !c->entries[idx].in_use || c->entries[idx].prev != prev
            || ++n > h->entries_used) {
            return apr_psprintf(p, "LRU list broken at entry %u", idx);
        }
    }
    if (n != h->entries_used || h->lru_tail != prev) {
        return apr_psprintf(p, "LRU list holds %u of %u entries", n, h->entries_used);
    }
    for (n = 0, idx = h->entry_free; idx != NIL; idx = c->entries[idx].hnext, n++) {
        if (idx >= h->entry_hwm || c->entries[idx].in_use || bit_test_set(emap, idx)) {
            return apr_psprintf(p, "free entry list broken at %u", idx);
        }
    }
    if (n + h->entries_used != h->entry_hwm) {
        return apr_psprintf(p, "%u free + %u used entries != high-water mark %u", n,
                            h->entries_used, h->entry_hwm);
    }
    for (n = 0, idx = h->block_free; idx != NIL; idx = c->blocks[idx].next, n++) {
        if (idx >= h->block_hwm || c->blocks[idx].owner != NIL || bit_test_set(bmap, idx)) {
            return apr_psprintf(p, "free block list broken at %u", idx);
        }
    }
    if (n + h->blocks_used != h->block_hwm) {
        return apr_psprintf(p, "%u free + %u used blocks != high-water mark %u", n, h->blocks_used,
                            h->block_hwm);
    }
    return NULL;
}

apr_status_t bff_store_shm_verify(bff_store_t *st, apr_pool_t *p, const char **err)
{
    shm_ctx_t *c = st->ctx;
    shm_hdr_t *h = c->h;
    unsigned char *emap, *bmap;
    apr_uint64_t blocks = 0;
    const char *msg = NULL;
    apr_status_t rv;

    *err = NULL;
    if (APR_SUCCESS != (rv = apr_global_mutex_lock(c->mutex))) {
        return rv;
    }
    if (h->magic != SHM_MAGIC || h->version != SHM_VERSION || h->corrupt) {
        msg = "header damaged or marked corrupt";
    }
    else if (h->entry_hwm > c->entries_max || h->block_hwm > c->blocks_max
             || h->entries_used > h->entry_hwm || h->blocks_used > h->block_hwm) {
        msg = "counters beyond their limits";
    }
    else {
        emap = apr_pcalloc(p, c->entries_max / 8 + 1);
        bmap = apr_pcalloc(p, c->blocks_max / 8 + 1);
        if (!(msg = verify_entries(c, p, emap, bmap, &blocks))) {
            if (blocks != h->blocks_used) {
                msg = apr_psprintf(p, "%" APR_UINT64_T_FMT " blocks owned, %u counted", blocks,
                                   h->blocks_used);
            }
            else {
                msg = verify_lists(c, p, emap, bmap);
            }
        }
    }
    apr_global_mutex_unlock(c->mutex);
    if (msg) {
        *err = msg;
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_uint32_t bff_store_shm_key_hash(bff_store_t *st, const char *key)
{
    return key_hash(st->ctx, key, strlen(key));
}

apr_status_t bff_store_shm_damage(bff_store_t *st, const char *key, bff_store_shm_damage_e how)
{
    shm_ctx_t *c = st->ctx;
    apr_size_t klen;
    apr_uint32_t idx;
    shm_entry_t *e;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = key_check(key, &klen))) {
        return rv;
    }
    if (APR_SUCCESS != (rv = apr_global_mutex_lock(c->mutex))) {
        return rv;
    }
    rv = APR_NOTFOUND;
    if ((idx = find(c, key, klen, key_hash(c, key, klen))) != NIL) {
        e = &c->entries[idx];
        rv = APR_SUCCESS;
        switch (how) {
        case BFF_STORE_SHM_DAMAGE_BLOCK:
            e->first = c->blocks_max + 1000;
            break;
        case BFF_STORE_SHM_DAMAGE_LENGTH:
            e->vlen = (apr_uint64_t)e->nblocks * BLOCK_PAYLOAD + 1;
            break;
        case BFF_STORE_SHM_DAMAGE_CHAIN:
            e->hnext = c->entries_max + 1000;
            break;
        case BFF_STORE_SHM_DAMAGE_COUNT:
            if (e->nblocks < 2) {
                rv = APR_EINVAL;
            }
            else {
                e->nblocks--;
            }
            break;
        case BFF_STORE_SHM_DAMAGE_FREE_LIST:
            if (!e->nblocks) {
                rv = APR_EINVAL;
                break;
            }
            c->h->block_free = e->first;
            break;
        case BFF_STORE_SHM_DAMAGE_CLOCKS:
            c->h->last_sweep = c->h->last_full_log = INT64_MAX;
            break;
        default:
            rv = APR_EINVAL;
        }
    }
    apr_global_mutex_unlock(c->mutex);
    return rv;
}

void bff_store_shm_set_clock(bff_store_t *st, bff_store_shm_clock_fn *clock, void *baton)
{
    shm_ctx_t *c = st->ctx;

    c->clock = clock;
    c->clock_baton = baton;
}
