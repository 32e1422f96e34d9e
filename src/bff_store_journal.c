/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the journal of writes that memcached servers missed while they were
 * away, shared by the processes of one node and kept across restarts.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
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
#define CLAIM_TTL apr_time_from_sec(10)

typedef struct {
    apr_uint32_t pending; /* keys noted (atomic: read without the mutex) */
    apr_uint32_t lost;    /* writes missed with no room left to note them */
    apr_time_t claimed;   /* end of the current claim, 0 when none (atomic) */
    pid_t claimer;        /* the process that holds it */
    char keys[BFF_STORE_JOURNAL_KEYS][BFF_STORE_JOURNAL_KEY_MAX];
} slot_t;

struct bff_store_journal_t {
    apr_global_mutex_t *mutex;
    apr_shm_t *shm;
    slot_t *slots; /* in the segment */
    int nservers;
    int attached; /* child_init done in this process */
};

apr_status_t bff_store_journal_create(apr_pool_t *pool, int nservers, apr_global_mutex_t *mutex,
                                      bff_store_journal_t **out)
{
    bff_store_journal_t *j;
    apr_status_t rv;

    if (nservers < 1) {
        return APR_EINVAL;
    }
    j = apr_pcalloc(pool, sizeof(*j));
    j->nservers = nservers;
    j->mutex = mutex;
    if (!j->mutex
        && APR_SUCCESS != (rv = apr_global_mutex_create(&j->mutex, NULL, APR_LOCK_DEFAULT, pool))) {
        return rv;
    }
    /* Anonymous: the children inherit it, mapped where the parent has it. */
    rv = apr_shm_create(&j->shm, sizeof(slot_t) * (apr_size_t)nservers, NULL, pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    j->slots = apr_shm_baseaddr_get(j->shm);
    memset(j->slots, 0, sizeof(slot_t) * (apr_size_t)nservers);
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

int bff_store_journal_servers(const bff_store_journal_t *j)
{
    return j->nservers;
}

static slot_t *slot_of(bff_store_journal_t *j, int server)
{
    return server >= 0 && server < j->nservers ? &j->slots[server] : NULL;
}

static int noted(const slot_t *sl, apr_uint32_t n, const char *key)
{
    apr_uint32_t i;

    for (i = 0; i < n; i++) {
        if (sl->keys[i][0] == key[0] && !strcmp(sl->keys[i], key)) {
            return 1;
        }
    }
    return 0;
}

void bff_store_journal_note(bff_store_journal_t *j, int server, const char *key)
{
    slot_t *sl = slot_of(j, server);
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
    if (!noted(sl, n, key)) {
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

int bff_store_journal_pending(bff_store_journal_t *j, int server)
{
    slot_t *sl = slot_of(j, server);

    return sl
           && (__atomic_load_n(&sl->pending, __ATOMIC_ACQUIRE)
               || __atomic_load_n(&sl->lost, __ATOMIC_RELAXED));
}

/* Is the holder of a claim gone? (EPERM: a process of another user lives.) */
static int claimer_gone(pid_t pid)
{
    return pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
}

apr_status_t bff_store_journal_claim(bff_store_journal_t *j, int server, apr_time_t *claim)
{
    slot_t *sl = slot_of(j, server);
    apr_time_t now = apr_time_now();
    apr_time_t cur, mine;

    if (!sl) {
        return APR_EINVAL;
    }
    cur = __atomic_load_n(&sl->claimed, __ATOMIC_ACQUIRE);
    if (cur > now && !claimer_gone(__atomic_load_n(&sl->claimer, __ATOMIC_RELAXED))) {
        return APR_EBUSY;
    }
    /* Unique per claim: a later claim never has the value of an earlier one. */
    mine = (cur >= now + CLAIM_TTL ? cur : now + CLAIM_TTL) + 1;
    if (!__atomic_compare_exchange_n(&sl->claimed, &cur, mine, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        return APR_EBUSY;
    }
    __atomic_store_n(&sl->claimer, getpid(), __ATOMIC_RELAXED);
    *claim = mine;
    return APR_SUCCESS;
}

void bff_store_journal_take(bff_store_journal_t *j, int server, apr_pool_t *p, int max,
                            char (**keys)[BFF_STORE_JOURNAL_KEY_MAX], int *n, int *lost)
{
    slot_t *sl = slot_of(j, server);
    apr_uint32_t k;

    *keys = NULL;
    *n = *lost = 0;
    if (!sl || max < 1 || APR_SUCCESS != apr_global_mutex_lock(j->mutex)) {
        return;
    }
    k = sl->pending < (apr_uint32_t)max ? sl->pending : (apr_uint32_t)max;
    if (k) {
        *keys = apr_pmemdup(p, sl->keys, sizeof(sl->keys[0]) * k);
    }
    *n = (int)k;
    *lost = (int)__atomic_load_n(&sl->lost, __ATOMIC_RELAXED);
    apr_global_mutex_unlock(j->mutex);
}

void bff_store_journal_done(bff_store_journal_t *j, int server, apr_time_t claim, int n, int lost)
{
    slot_t *sl = slot_of(j, server);
    apr_uint32_t left;

    if (!sl || APR_SUCCESS != apr_global_mutex_lock(j->mutex)) {
        return;
    }
    /* Only the claim holder removes notes, so the first n are still the ones
     * it took. A claim taken over meanwhile (this one was thought dead) makes
     * this a no-op: the new holder deletes them again. */
    if (__atomic_load_n(&sl->claimed, __ATOMIC_ACQUIRE) != claim) {
        apr_global_mutex_unlock(j->mutex);
        return;
    }
    if (n > 0 && (apr_uint32_t)n <= sl->pending) {
        left = sl->pending - (apr_uint32_t)n;
        memmove(sl->keys, sl->keys[n], sizeof(sl->keys[0]) * left);
        __atomic_store_n(&sl->pending, left, __ATOMIC_RELEASE);
    }
    if (lost > 0) {
        __atomic_sub_fetch(&sl->lost, (apr_uint32_t)lost, __ATOMIC_RELAXED);
    }
    apr_global_mutex_unlock(j->mutex);
}

void bff_store_journal_release(bff_store_journal_t *j, int server, apr_time_t claim)
{
    slot_t *sl = slot_of(j, server);

    if (sl) {
        /* Not one taken over meanwhile. */
        __atomic_compare_exchange_n(&sl->claimed, &claim, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
}
