/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the store interface every backend implements, store locks, and the BFFSessionStore
 * value.
 */
#ifndef BFF_STORE_H
#define BFF_STORE_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_network_io.h>

/* A session store is a table of functions, one implementation per backend
 * (shm, memcache). Keys are short printable strings (see
 * bff_crypto_store_key); values are opaque sealed records. expires is an
 * absolute time in seconds since the epoch after which the entry is gone.
 *
 * Status codes every backend uses:
 *   APR_SUCCESS   done
 *   APR_NOTFOUND  get/remove/replace: no such (live) entry
 *   APR_EEXIST    add: a live entry already has that key
 *   APR_ENOSPC    set/add/replace: the value is larger than the backend can hold;
 *                 add_noevict: also when there is no room without evicting
 *
 * add stores only when no live entry has the key, replace only when one
 * has (both atomically: no other operation on the key can come between the
 * check and the write, on any node). A session is created with add and
 * written with replace afterwards, so a removed session (a logout) is never
 * brought back by a write that started before the removal. A replace whose
 * expires is already past ends the live entry (APR_SUCCESS) like a remove.
 *   anything else the store is unavailable (the caller answers 503)
 */
typedef struct bff_store_t bff_store_t;
struct bff_store_t {
    const char *name; /* "shm", "memcache" */
    void *ctx;
    apr_status_t (*child_init)(bff_store_t *st, apr_pool_t *pchild);
    apr_status_t (*get)(bff_store_t *st, apr_pool_t *p, const char *key, unsigned char **val,
                        apr_size_t *len);
    apr_status_t (*set)(bff_store_t *st, apr_pool_t *p, const char *key, const unsigned char *val,
                        apr_size_t len, apr_int64_t expires);
    apr_status_t (*add)(bff_store_t *st, apr_pool_t *p, const char *key, const unsigned char *val,
                        apr_size_t len, apr_int64_t expires);
    apr_status_t (*replace)(bff_store_t *st, apr_pool_t *p, const char *key,
                            const unsigned char *val, apr_size_t len, apr_int64_t expires);
    apr_status_t (*remove)(bff_store_t *st, apr_pool_t *p, const char *key);
    /* Optional (NULL: add is used). add that never evicts a live entry to
     * make room: expired entries may be reclaimed, else APR_ENOSPC. For
     * entries written on behalf of anonymous requests (the callback's
     * single-use marker), so that nobody without a session can push a
     * session out of the store. A backend whose eviction the module does
     * not control (memcached: its own LRU, per slab class) leaves it NULL;
     * see docs/security.md. */
    apr_status_t (*add_noevict)(bff_store_t *st, apr_pool_t *p, const char *key,
                                const unsigned char *val, apr_size_t len, apr_int64_t expires);
};

#define bff_store_get(st, p, k, v, l) ((st)->get((st), (p), (k), (v), (l)))
#define bff_store_set(st, p, k, v, l, e) ((st)->set((st), (p), (k), (v), (l), (e)))
#define bff_store_add(st, p, k, v, l, e) ((st)->add((st), (p), (k), (v), (l), (e)))
#define bff_store_replace(st, p, k, v, l, e) ((st)->replace((st), (p), (k), (v), (l), (e)))
#define bff_store_remove(st, p, k) ((st)->remove((st), (p), (k)))
#define bff_store_add_noevict(st, p, k, v, l, e) \
    ((st)->add_noevict ? (st)->add_noevict((st), (p), (k), (v), (l), (e)) \
                       : (st)->add((st), (p), (k), (v), (l), (e)))

/* A lock in the store: an entry under lock_key, taken with add (atomic in
 * every backend, across nodes), holding a random owner token so that only
 * its owner removes it. ttl bounds how long a crashed owner blocks the
 * others, so it must exceed the longest time a live owner holds it.
 *   bff_store_lock: APR_SUCCESS and *owner set; APR_EEXIST while someone
 *     (this caller included) holds it; other statuses: store failure.
 *   bff_store_unlock: removes the lock only if its value is owner:
 *     APR_SUCCESS removed; APR_NOTFOUND not there or someone else's (left
 *     in place); other statuses: store failure. */
apr_status_t bff_store_lock(bff_store_t *st, apr_pool_t *p, const char *lock_key, apr_int64_t ttl,
                            const char **owner);
apr_status_t bff_store_unlock(bff_store_t *st, apr_pool_t *p, const char *lock_key,
                              const char *owner);
/* bff_store_lock with an absolute expiry (seconds since the epoch), for
 * callers that keep their own clock (bff_refresh). */
apr_status_t bff_store_lock_until(bff_store_t *st, apr_pool_t *p, const char *lock_key,
                                  apr_int64_t expires, const char **owner);

/* Parsed BFFSessionStore value. */
typedef enum { BFF_STORE_SHM = 0, BFF_STORE_MEMCACHE = 1 } bff_store_kind_e;
typedef struct {
    bff_store_kind_e kind;
    apr_size_t shm_size; /* bytes, for shm */
    const char *servers; /* "host:port,host:port" for memcache */
    int nservers;        /* how many, for memcache */
    int replicas;        /* servers per key, for memcache (1 .. nservers) */
} bff_store_spec_t;

/* Default shm size: room for at least 10,000 sessions of 8 KB. */
#define BFF_STORE_SHM_DEFAULT_SIZE ((apr_size_t)100 * 1024 * 1024)

/* One "host:port" of a memcache list (len bytes at s): host a name, an IPv4
 * address or [IPv6], port 1-65535. Outputs (each may be NULL): the host
 * without brackets, the port, whether it was an IPv6 literal. */
apr_status_t bff_store_server_parse(apr_pool_t *p, const char *s, apr_size_t len, const char **host,
                                    apr_port_t *port, int *ipv6, const char **err);

/* "shm", "shm:64M", "memcache:h:p[,h:p...]". *err explains a refusal. */
apr_status_t bff_store_spec_parse(apr_pool_t *p, const char *arg, bff_store_spec_t *spec,
                                  const char **err);

/* The optional second argument after a parsed spec: "replicas=N" (memcache
 * only, N from 1 to the number of servers). */
apr_status_t bff_store_spec_option(apr_pool_t *p, const char *opt, bff_store_spec_t *spec,
                                   const char **err);

#endif /* BFF_STORE_H */
