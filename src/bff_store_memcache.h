/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the memcached store backend, shared by several httpd nodes.
 */
#ifndef BFF_STORE_MEMCACHE_H
#define BFF_STORE_MEMCACHE_H

#include <apr_time.h>

#include "bff_store.h"

/* Session store on one or more memcached servers, through APR-util's
 * apr_memcache client, so that several httpd nodes share sessions.
 *
 * Keys are placed on the servers by consistent hashing (bff_store_ketama.h):
 * adding or removing one of N servers moves about 1/N of the keys, and the
 * order in which the servers are listed does not matter (their names do:
 * every node must name them alike). With replicas = 1 a key lives on its
 * own server only; there is no fail-over to another one (that would answer
 * "no session" for a live session and split writes), so while a server is
 * down only its keys fail, with a status that is never APR_NOTFOUND (the
 * caller answers 503, not 401).
 *
 * With replicas = R > 1 a key lives on its first R distinct servers on the
 * ring (its replicas), and every value carries an 11-byte header with its
 * expiry. Servers that are down are skipped (not replaced). The protocol
 * (docs/deployment.md, "Replicas"):
 *   get      the first replica that has it (one round trip when the first
 *            replica is up and holds it); replicas before it that answered
 *            "not found" get it written back, unless a tombstone says it was
 *            removed meanwhile;
 *   add      on every replica in ring order; taken only if every replica
 *            that answers takes it (else ours are undone: APR_EEXIST);
 *   set      on every replica;
 *   replace  on every replica in ring order; replicas that lost the entry get
 *            the new value written back (same tombstone check);
 *   remove   a tombstone "!" + hex(MD5(key)) on every replica, as long as the entry
 *            would have lived, then delete on every replica, last first.
 * A write that a server misses while this process sees it down is noted
 * (up to 256 keys per server and process) and deleted there when it answers
 * again, before anything is read from it (BFF01605 when more were missed).
 *
 * Bounded waits: every connection gets op_timeout as its socket timeout
 * (each read or write waits at most that long; apr-util itself waits up to
 * 1 s for a TCP connect). A server that fails is skipped (failing at once)
 * for retry_after, then one request tries it again; the first success
 * brings it back. BFF01601 (warning, at most once per retry_after and
 * server) names a server that went down, BFF01602 (notice) one that is back.
 *
 * Expiry: the absolute expires is sent as a relative TTL (at least 1 s, the
 * entry lives through second expires like the shm store), or as an absolute
 * time when more than 30 days away (memcached's rule; the servers' clocks
 * then matter). A set whose expires has already passed stores nothing and
 * removes any existing entry (APR_SUCCESS); such an add stores nothing and
 * answers APR_EEXIST if a live entry exists, APR_SUCCESS otherwise.
 *
 * Keys: 1..127 printable ASCII characters without spaces, else APR_EINVAL.
 * A value longer than max_item is APR_ENOSPC without being sent. Keep
 * max_item somewhat below memcached's item size limit (-I, default 1m),
 * which also counts the key and about 50 bytes of item header: a value that
 * the server refuses is an error (503), not APR_ENOSPC.
 *
 * Processes: the client and its connections belong to one process. Call
 * child_init in each child (httpd: child_init hook). Without it, the first
 * operation in a process builds the client lazily (unit tests, tools), and a
 * process forked after that builds its own instead of using the parent's
 * connections; fork only from a single-threaded process.
 *
 * Needs apr-util 1.6 (checked at create): apr_memcache offers no timeout of
 * its own and leaves its sockets blocking without limit, so this backend
 * sets the timeout on each new connection itself, which relies on the
 * layout of apr-util 1.6's private connection structure (verified per
 * connection; a mismatch fails the operation with BFF01603). Host names
 * are resolved on every new connection and apr-util 1.6 connects over IPv4
 * only: IPv6 addresses are refused. The caller must ignore SIGPIPE (httpd
 * does). */

typedef struct {
    int conn_min;                    /* connections kept open per server and process */
    int conn_smax;                   /* idle ones above this close after conn_ttl */
    int conn_max;                    /* hard limit per server and process */
    apr_interval_time_t conn_ttl;    /* idle connection lifetime, 0 = forever */
    apr_interval_time_t op_timeout;  /* per read or write on a connection, > 0 */
    apr_interval_time_t retry_after; /* a failed server is skipped this long */
    apr_size_t max_item;             /* largest value, bytes */
    int replicas;                    /* servers per key, 1 .. number of servers */
    /* Optional: called after every operation on a server (its index in the
     * list; failed: it did not answer). From any thread: must not block. */
    void (*observe)(void *baton, int server, int failed);
    void *observe_baton;
    /* With replicas: the journal of missed writes (bff_store_journal.h),
     * shared by the node's processes and kept across restarts by the caller;
     * the store takes a slot per server, by name. NULL: one of its own. */
    struct bff_store_journal_t *journal;
} bff_store_memcache_opts_t;

/* op_timeout 500 ms, retry_after 5 s, max_item 1 MiB, conn_ttl 15 s,
 * conn_min 0, conn_smax = conn_max = 25 (one per httpd worker thread),
 * replicas 1, no observer. */
void bff_store_memcache_opts_default(bff_store_memcache_opts_t *o);

/* servers: "host:port[,host:port...]" as bff_store_spec_parse stores it.
 * o may be NULL for the defaults. Nothing connects here: a server that is
 * down at startup only fails the operations that need it. APR_EINVAL (bad
 * list or options) or APR_ENOTIMPL (unsupported apr-util) with *err. */
apr_status_t bff_store_memcache_create(apr_pool_t *pool, const char *servers,
                                       const bff_store_memcache_opts_t *o, bff_store_t **st,
                                       const char **err);

/* Index in the server list of the server that holds key (its first
 * replica), -1 for an invalid key (tests, diagnostics). */
int bff_store_memcache_server_index(bff_store_t *st, const char *key);

/* The key's replicas (indexes, ring order) into out (room for 64); their
 * number, 0 for an invalid key. */
int bff_store_memcache_replica_servers(bff_store_t *st, const char *key, int *out);

/* With replicas: replays the journal of missed writes on every server that
 * has notes and answers (retry interval or not), so that a server back from
 * an outage is cleaned even if this node sends it nothing. For a background
 * thread, every second or so; cheap when nothing is noted. Uses the client
 * this process made (after child_init or a first operation), never makes
 * one, and holds it while it works: the child's pool cleanup waits. */
apr_status_t bff_store_memcache_tend(bff_store_t *st, apr_pool_t *p);

/* For status pages: the number of servers, the i-th one's "host:port", and
 * whether this process sees it up (1), down (0), or i is out of range (-1). */
int bff_store_memcache_server_count(bff_store_t *st);
const char *bff_store_memcache_server_name(bff_store_t *st, int i);
int bff_store_memcache_server_up(bff_store_t *st, int i);

#endif /* BFF_STORE_MEMCACHE_H */
