/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the journal of writes that memcached servers missed while they were
 * away, shared by the processes of one node and kept across restarts.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "bff_store_journal.h"

/* A claim outlives any replay (at most a few thousand deletes, stopped at
 * the first failure, which waits at most the store's operation timeout).
 * A process that exits while it replays (a child stopped by a restart, its
 * watchdog thread in the middle of a replay) leaves its claim: taken over at
 * once when that process is gone, else after this. */
#define CLAIM_TTL_NS (10LL * 1000 * 1000 * 1000)

/* Everything but pending and lost is read and written under the mutex. */
typedef struct {
    char name[BFF_STORE_JOURNAL_NAME_MAX]; /* "" while unused */
    apr_uint32_t pending;                  /* keys noted (atomic: read without the mutex) */
    apr_uint32_t lost;                     /* writes missed with no room left to note them */
    apr_uint32_t taken;                    /* the first keys, taken by the current claim */
    apr_uint64_t claim;                    /* id of the current claim, 0 when none */
    apr_int64_t claim_end;                 /* monotonic ns */
    pid_t claimer;
    char keys[BFF_STORE_JOURNAL_KEYS][BFF_STORE_JOURNAL_KEY_MAX];
} slot_t;

typedef struct {
    apr_uint64_t claims; /* ids given so far */
    slot_t slots[1];     /* nslots */
} segment_t;

struct bff_store_journal_t {
    apr_global_mutex_t *mutex;
    apr_shm_t *shm;
    segment_t *seg;
    int nslots;
    int attached; /* child_init done in this process */
};

apr_status_t bff_store_journal_create(apr_pool_t *pool, int nslots, apr_global_mutex_t *mutex,
                                      bff_store_journal_t **out)
{
    bff_store_journal_t *j;
    apr_status_t rv;

    if (nslots < 1) {
        return APR_EINVAL;
    }
    j = apr_pcalloc(pool, sizeof(*j));
    j->nslots = nslots;
    j->mutex = mutex;
    if (!j->mutex
        && APR_SUCCESS != (rv = apr_global_mutex_create(&j->mutex, NULL, APR_LOCK_DEFAULT, pool))) {
        return rv;
    }
    /* Anonymous: the children inherit it, mapped where the parent has it,
     * and zero-filled by the kernel (pages never written stay unallocated:
     * a slot costs memory only once it is used). */
    rv = apr_shm_create(&j->shm, sizeof(segment_t) + sizeof(slot_t) * (apr_size_t)(nslots - 1),
                        NULL, pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    j->seg = apr_shm_baseaddr_get(j->shm);
    *out = j;
    return APR_SUCCESS;
}

apr_status_t bff_store_journal_child_init(bff_store_journal_t *j, apr_pool_t *pchild)
{
    apr_status_t rv;

    if (j->attached) {
        return APR_SUCCESS;
    }
    rv = apr_global_mutex_child_init(&j->mutex, apr_global_mutex_lockfile(j->mutex), pchild);
    j->attached = rv == APR_SUCCESS;
    return rv;
}

static slot_t *slot_of(bff_store_journal_t *j, int slot)
{
    return slot >= 0 && slot < j->nslots ? &j->seg->slots[slot] : NULL;
}

/* Monotonic: the same clock in every process, and no steps. */
static apr_int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int idle(const slot_t *sl, apr_int64_t now)
{
    return !sl->pending && !sl->lost && (!sl->claim || sl->claim_end < now);
}

int bff_store_journal_slot(bff_store_journal_t *j, const char *name)
{
    apr_int64_t now = now_ns();
    int i, found = -1;

    if (!name || strlen(name) >= BFF_STORE_JOURNAL_NAME_MAX
        || APR_SUCCESS != apr_global_mutex_lock(j->mutex)) {
        return -1;
    }
    for (i = 0; i < j->nslots && found < 0; i++) {
        if (!strcmp(j->seg->slots[i].name, name)) {
            found = i;
        }
    }
    for (i = 0; i < j->nslots && found < 0; i++) {
        if (!j->seg->slots[i].name[0]) {
            found = i;
        }
    }
    /* A server no longer listed, with nothing to undo. */
    for (i = 0; i < j->nslots && found < 0; i++) {
        if (idle(&j->seg->slots[i], now)) {
            found = i;
        }
    }
    if (found >= 0 && strcmp(j->seg->slots[found].name, name)) {
        apr_cpystrn(j->seg->slots[found].name, name, BFF_STORE_JOURNAL_NAME_MAX);
    }
    apr_global_mutex_unlock(j->mutex);
    return found;
}

/* Among the keys not yet taken by a replay: a key taken and being deleted
 * may have been written again since, and must be deleted again. */
static int noted(const slot_t *sl, const char *key)
{
    apr_uint32_t i;

    for (i = sl->taken; i < sl->pending; i++) {
        if (sl->keys[i][0] == key[0] && !strcmp(sl->keys[i], key)) {
            return 1;
        }
    }
    return 0;
}

void bff_store_journal_note(bff_store_journal_t *j, int slot, const char *key)
{
    slot_t *sl = slot_of(j, slot);
    apr_uint32_t n;

    if (!sl || !key || strlen(key) >= BFF_STORE_JOURNAL_KEY_MAX) {
        return;
    }
    if (APR_SUCCESS != apr_global_mutex_lock(j->mutex)) {
        /* Not noted: counted, so that the replay says the journal is short. */
        __atomic_add_fetch(&sl->lost, 1, __ATOMIC_RELAXED);
        return;
    }
    n = sl->pending;
    /* A key noted already (a later write of it): one delete undoes both. */
    if (!noted(sl, key)) {
        if (n < BFF_STORE_JOURNAL_KEYS) {
            apr_cpystrn(sl->keys[n], key, BFF_STORE_JOURNAL_KEY_MAX);
            __atomic_store_n(&sl->pending, n + 1, __ATOMIC_RELEASE);
        }
        else {
            /* Also keeps the server pending: the replay reports the loss. */
            __atomic_add_fetch(&sl->lost, 1, __ATOMIC_RELAXED);
        }
    }
    apr_global_mutex_unlock(j->mutex);
}

int bff_store_journal_pending(bff_store_journal_t *j, int slot)
{
    slot_t *sl = slot_of(j, slot);

    return sl
           && (__atomic_load_n(&sl->pending, __ATOMIC_ACQUIRE)
               || __atomic_load_n(&sl->lost, __ATOMIC_RELAXED));
}

/* Is the holder of a claim gone? (EPERM: a process of another user lives.) */
static int claimer_gone(pid_t pid)
{
    return pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
}

apr_status_t bff_store_journal_claim(bff_store_journal_t *j, int slot, apr_uint64_t *claim)
{
    slot_t *sl = slot_of(j, slot);
    apr_int64_t now = now_ns();
    apr_status_t rv = APR_EBUSY;

    if (!sl) {
        return APR_EINVAL;
    }
    if (APR_SUCCESS != apr_global_mutex_lock(j->mutex)) {
        return APR_EBUSY;
    }
    if (!sl->claim || sl->claim_end < now || claimer_gone(sl->claimer)) {
        sl->claim = *claim = ++j->seg->claims;
        sl->claim_end = now + CLAIM_TTL_NS;
        sl->claimer = getpid();
        sl->taken = 0;
        rv = APR_SUCCESS;
    }
    apr_global_mutex_unlock(j->mutex);
    return rv;
}

apr_status_t bff_store_journal_take(bff_store_journal_t *j, int slot, apr_uint64_t claim,
                                    apr_pool_t *p, int max,
                                    char (**keys)[BFF_STORE_JOURNAL_KEY_MAX], int *n, int *lost)
{
    slot_t *sl = slot_of(j, slot);
    apr_uint32_t k;

    *keys = NULL;
    *n = *lost = 0;
    if (!sl || max < 1 || APR_SUCCESS != apr_global_mutex_lock(j->mutex)) {
        return APR_EBUSY;
    }
    if (sl->claim != claim) {
        apr_global_mutex_unlock(j->mutex);
        return APR_EBUSY;
    }
    k = sl->pending < (apr_uint32_t)max ? sl->pending : (apr_uint32_t)max;
    if (k) {
        *keys = apr_pmemdup(p, sl->keys, sizeof(sl->keys[0]) * k);
    }
    sl->taken = k;
    *n = (int)k;
    *lost = (int)__atomic_load_n(&sl->lost, __ATOMIC_RELAXED);
    apr_global_mutex_unlock(j->mutex);
    return APR_SUCCESS;
}

apr_status_t bff_store_journal_done(bff_store_journal_t *j, int slot, apr_uint64_t claim, int n,
                                    int lost)
{
    slot_t *sl = slot_of(j, slot);
    apr_uint32_t left;

    if (!sl || APR_SUCCESS != apr_global_mutex_lock(j->mutex)) {
        return APR_EBUSY;
    }
    /* Taken over meanwhile (this claim was thought dead): the new holder
     * deletes them again. */
    if (sl->claim != claim) {
        apr_global_mutex_unlock(j->mutex);
        return APR_EBUSY;
    }
    if (n > 0 && (apr_uint32_t)n <= sl->taken && (apr_uint32_t)n <= sl->pending) {
        left = sl->pending - (apr_uint32_t)n;
        memmove(sl->keys, sl->keys[n], sizeof(sl->keys[0]) * left);
        __atomic_store_n(&sl->pending, left, __ATOMIC_RELEASE);
    }
    sl->taken = 0;
    if (lost > 0) {
        __atomic_sub_fetch(&sl->lost, (apr_uint32_t)lost, __ATOMIC_RELAXED);
    }
    apr_global_mutex_unlock(j->mutex);
    return APR_SUCCESS;
}

void bff_store_journal_release(bff_store_journal_t *j, int slot, apr_uint64_t claim)
{
    slot_t *sl = slot_of(j, slot);

    if (!sl || APR_SUCCESS != apr_global_mutex_lock(j->mutex)) {
        return;
    }
    if (sl->claim == claim) {
        sl->claim = 0;
        sl->taken = 0;
    }
    apr_global_mutex_unlock(j->mutex);
}
