/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the journal of writes that memcached servers missed while they were
 * away, shared by the processes of one node and kept across restarts.
 */
#ifndef BFF_STORE_JOURNAL_H
#define BFF_STORE_JOURNAL_H

#include <apr_global_mutex.h>
#include <apr_pools.h>
#include <apr_errno.h>

/* With replicas, a write that cannot reach one of a key's servers is made on
 * the others and the key is noted here, under that server's name. Before
 * anything is read from the server again, the noted keys are deleted on it,
 * so that it never serves what it held before (an ended session, a
 * rotated-out refresh token) -- by whichever process of the node touches it
 * first, also one that never saw it fail, also after a graceful restart or a
 * change of the server list (the journal lives in shared memory retained by
 * the parent, its slots are named after the servers). While a process
 * replays the notes, the others treat the server as busy.
 *
 * Only data lives in the segment (it outlives the module's code across
 * restarts). Keys are at most BFF_STORE_JOURNAL_KEY_MAX - 1 bytes. */

#define BFF_STORE_JOURNAL_KEY_MAX 128
/* Keys noted per server; more are counted as lost (BFF01605). */
#define BFF_STORE_JOURNAL_KEYS 1024
/* "host:port" */
#define BFF_STORE_JOURNAL_NAME_MAX 272

typedef struct bff_store_journal_t bff_store_journal_t;

/* Room for nslots servers. mutex: a global mutex guarding the segment (its
 * child_init is done by bff_store_journal_child_init), or NULL for one made
 * here with APR's default mechanism (tests, tools). */
apr_status_t bff_store_journal_create(apr_pool_t *pool, int nslots, apr_global_mutex_t *mutex,
                                      bff_store_journal_t **out);

/* In each child, once (further calls do nothing). */
apr_status_t bff_store_journal_child_init(bff_store_journal_t *j, apr_pool_t *pchild);

/* The slot of server name ("host:port"): the one named so, else a new one
 * (one never used, else one with nothing noted); -1 when none is left. At
 * configuration time, in the parent. */
int bff_store_journal_slot(bff_store_journal_t *j, const char *name);

/* The server of slot missed a write of key. */
void bff_store_journal_note(bff_store_journal_t *j, int slot, const char *key);

/* Are writes noted for slot (or lost for want of room)? A lock-free load:
 * on every operation. */
int bff_store_journal_pending(bff_store_journal_t *j, int slot);

/* Replaying the notes of slot, one process at a time:
 *   claim    -> APR_SUCCESS: this caller replays until release, *claim names
 *               its claim; APR_EBUSY: another one does (a claim is taken
 *               over when its process is gone, or after 10 s);
 *   take     -> a copy of up to max keys noted first (*n of them), in p;
 *               *lost: writes not noted for want of room; APR_EBUSY when the
 *               claim was taken over;
 *   done     -> the first n keys were deleted on the server, and the lost
 *               count that take gave was reported: forget them (notes made
 *               meanwhile stay, also of the same keys); APR_EBUSY, and
 *               nothing forgotten, when the claim was taken over;
 *   release  -> the claim ends (after a failure the keys stay noted). */
apr_status_t bff_store_journal_claim(bff_store_journal_t *j, int slot, apr_uint64_t *claim);
apr_status_t bff_store_journal_take(bff_store_journal_t *j, int slot, apr_uint64_t claim,
                                    apr_pool_t *p, int max,
                                    char (**keys)[BFF_STORE_JOURNAL_KEY_MAX], int *n, int *lost);
apr_status_t bff_store_journal_done(bff_store_journal_t *j, int slot, apr_uint64_t claim, int n,
                                    int lost);
void bff_store_journal_release(bff_store_journal_t *j, int slot, apr_uint64_t claim);

#endif /* BFF_STORE_JOURNAL_H */
