/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the sessions service over a store: finding a record across the key ring, sealing and
 * saving it (store-key migration, replace never recreates), removal, locks with owner tokens,
 * the sid/sub indexes, the login's single-use marker and the logout-token replay entries.
 */
#ifndef BFF_SESSIONS_H
#define BFF_SESSIONS_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "bff_crypto.h"
#include "bff_session.h"
#include "bff_store.h"

/* Every store key comes from bff_ns_key() (the namespace table in
 * bff_ns.h); this file decides when each namespace is read, written and
 * removed. Statuses (the glue maps them to answers):
 *   APR_SUCCESS   done
 *   APR_NOTFOUND  no session (or it was removed meanwhile: it stays ended)
 *   APR_EEXIST    a lock someone holds; a marker or replay entry already
 *                 there; a record another writer moved first
 *   APR_ENOSPC    a record too large for the store; a marker with no room
 *                 left without evicting a live entry
 *   other         the store failed (the glue answers 503) */

/* Locks held for a few store operations (the idle slide, an index update):
 * far longer than those take, even at the memcache timeouts. */
#define BFF_SESSIONS_LOCK_TTL 30
/* The idle timeout slides in steps of a tenth of it, at most this long. */
#define BFF_SESSIONS_TOUCH_MAX 60
/* An index keeps at most this many live sessions (about 77 KB). */
#define BFF_SESSIONS_INDEX_MAX 1024

/* A clock: now in seconds since the epoch, and a sleep (index lock waits). */
typedef struct {
    apr_int64_t (*now)(void *baton);
    void (*sleep)(void *baton, apr_interval_time_t t);
    void *baton;
} bff_sessions_clock_t;

/* The service, one per site (the glue builds it at post_config). Plain
 * values, read only once built: threads share it. */
typedef struct {
    bff_store_t *store;
    const bff_keyring_t *ring;
    const char *site;                  /* bff_ns_site(): binds every key to the site */
    const char *issuer;                /* the provider (required): binds indexes and markers;
                                        * sessions of another provider are refused */
    apr_int64_t idle_timeout;          /* seconds */
    int index_max;                     /* 0: BFF_SESSIONS_INDEX_MAX (tests: smaller) */
    const bff_sessions_clock_t *clock; /* NULL: bff_util_now() and apr_sleep() */
} bff_sessions_t;

/* A session as found (or about to be created). */
typedef struct {
    const char *id;      /* the cookie value; never logged */
    const char *handle;  /* bff_ns_handle(): names it in indexes, locks, markers */
    const char *key;     /* the store key it was found (or is written) under */
    bff_session_t *s;    /* the record, opened */
    int key_index;       /* ring entry that opened it (0 = current) */
    int store_key_index; /* ring entry its store key was derived with */
} bff_sessions_entry_t;

/* Why bff_sessions_find() found no usable session (the glue logs each). */
typedef enum {
    BFF_SESSIONS_FOUND = 0,
    BFF_SESSIONS_MALFORMED,    /* the id is not a session id's shape */
    BFF_SESSIONS_NO_RECORD,    /* nothing under any key of the ring */
    BFF_SESSIONS_STORE_DOWN,   /* the store failed (status returned) */
    BFF_SESSIONS_UNREADABLE,   /* failed authentication or decoding */
    BFF_SESSIONS_EXPIRED_IDLE, /* idle timeout passed (the record is removed) */
    BFF_SESSIONS_EXPIRED_MAX,  /* maximum lifetime passed (the record is removed) */
    BFF_SESSIONS_OTHER_ISSUER, /* the record belongs to another provider */
    BFF_SESSIONS_NO_MEMORY     /* a hash or an allocation failed (APR_ENOMEM) */
} bff_sessions_miss_e;

/* now per the service's clock. */
apr_int64_t bff_sessions_now(const bff_sessions_t *sv);

/* What one connection decided last (the glue keeps one per keep-alive
 * connection): the session id, its handle and store key, and the record
 * bytes already authenticated and decoded. A later find for the same id on
 * the same service reads the store as always (a logout or refresh elsewhere
 * shows at once) but, while the bytes are the same, neither hashes the id
 * nor decrypts again. One entry in a subpool of p cleared at every change:
 * bounded whatever the client sends. NULL when the subpool cannot be made. */
typedef struct bff_sessions_memo_t bff_sessions_memo_t;
bff_sessions_memo_t *bff_sessions_memo_create(apr_pool_t *p);

/* The session named by id: read under the memo's store key for the same id
 * (one read on the hot path), else under each key of the ring; opened with
 * the ring and the store key as AAD; idle and absolute expiry (an expired
 * record is removed) and the issuer checked. memo may be NULL. APR_SUCCESS
 * and *out (in p); APR_NOTFOUND with *why; another status: the store failed
 * (*why STORE_DOWN) or APR_ENOMEM (NO_MEMORY). */
apr_status_t bff_sessions_find(const bff_sessions_t *sv, apr_pool_t *p, const char *id,
                               bff_sessions_memo_t *memo, bff_sessions_entry_t **out,
                               bff_sessions_miss_e *why);

/* Read e's record again, under every key of the ring, the current one first
 * (another request may have moved it since): sets e->key, its indexes, and
 * *fresh. No expiry or issuer check. APR_NOTFOUND: gone or unreadable. */
apr_status_t bff_sessions_reload(const bff_sessions_t *sv, apr_pool_t *p, bff_sessions_entry_t *e,
                                 bff_session_t **fresh);

/* Seal e->s under the first key of the ring (AAD: its store key) and write
 * it with a store TTL at the earlier of the idle and the absolute end;
 * bumps e->s->rev, sets e->handle (from e->id) if missing. create: a new
 * session (add). Otherwise a replace of the live record, which never
 * recreates a removed one; a record found under an older ring key moves:
 * add under the current key, remove the old one (if that was gone already,
 * the session ended meanwhile: the new copy is removed too). APR_NOTFOUND:
 * the session ended meanwhile; APR_EEXIST: another writer moved it first
 * (nothing written); APR_ENOSPC: too large. *len (may be NULL): the sealed
 * record's size, 0 when sealing failed. */
apr_status_t bff_sessions_save(const bff_sessions_t *sv, apr_pool_t *p, bff_sessions_entry_t *e,
                               int create, apr_size_t *len);

/* The store TTL of s: the earlier of its idle end and its absolute end. */
apr_int64_t bff_sessions_store_expiry(const bff_sessions_t *sv, const bff_session_t *s);

/* Whether a use now should slide e's idle timeout: its last write is a
 * tenth of the idle timeout old (1 s to BFF_SESSIONS_TOUCH_MAX), or the
 * record is not under the current key yet. */
int bff_sessions_touch_due(const bff_sessions_t *sv, const bff_sessions_entry_t *e,
                           apr_int64_t now);

/* Remove a session under every key of the ring, the oldest first (a record
 * a concurrent write moves to the current key is then removed there too).
 * APR_SUCCESS when one existed, else APR_NOTFOUND. */
apr_status_t bff_sessions_remove(const bff_sessions_t *sv, apr_pool_t *p, const char *handle);

/* A lock on what (a session handle or an index key: site-bound names)
 * under "l:", taken with add and held by a random owner token for ttl
 * seconds. APR_EEXIST while someone (the caller too) holds it. Unlock
 * removes it only while it is still owner's: APR_NOTFOUND when it outlived
 * its TTL and is someone else's now (left in place) or gone. */
apr_status_t bff_sessions_lock(const bff_sessions_t *sv, apr_pool_t *p, const char *what,
                               apr_int64_t ttl, const char **owner);
apr_status_t bff_sessions_unlock(const bff_sessions_t *sv, apr_pool_t *p, const char *what,
                                 const char *owner);

/* Back-channel logout indexes: the sessions of a provider sid or sub, as
 * session handles with their ends, sealed under the ring (read under every
 * key, written under the first, older copies merged and removed). */
typedef enum { BFF_SESSIONS_INDEX_SID = 0, BFF_SESSIONS_INDEX_SUB = 1 } bff_sessions_index_e;

/* Add handle (a session ending at expires) under the index of value, with
 * the index's lock; entries of ended sessions are dropped, and past
 * index_max the sessions ending first (*dropped says how many; may be
 * NULL). APR_EEXIST: the lock stayed busy (about a second); other: the
 * store failed. */
apr_status_t bff_sessions_index_add(const bff_sessions_t *sv, apr_pool_t *p,
                                    bff_sessions_index_e kind, const char *value,
                                    const char *handle, apr_int64_t expires, int *dropped);

/* The handles listed under the index of value (const char *), in p. */
apr_array_header_t *bff_sessions_index_list(const bff_sessions_t *sv, apr_pool_t *p,
                                            bff_sessions_index_e kind, const char *value);

/* Remove every session listed under the index of value and the index
 * itself; returns how many sessions existed. */
int bff_sessions_index_end(const bff_sessions_t *sv, apr_pool_t *p, bff_sessions_index_e kind,
                           const char *value);

/* The login's single-use marker "u:" for its state, until expires: added
 * without evicting (an anonymous request must not push a session out).
 * APR_EEXIST: used already; APR_ENOSPC: no room; *key (for removing it
 * when the login fails) is set on every return but APR_ENOMEM. */
apr_status_t bff_sessions_mark_used(const bff_sessions_t *sv, apr_pool_t *p, const char *state,
                                    apr_int64_t expires, const char **key);

/* A logout token's replay entry "j:" for its jti, for ttl seconds: the
 * same key on every node whatever its ring. APR_EEXIST: seen before. */
apr_status_t bff_sessions_replay_add(const bff_sessions_t *sv, apr_pool_t *p, const char *jti,
                                     apr_int64_t ttl);

#endif /* BFF_SESSIONS_H */
