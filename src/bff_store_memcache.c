/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the memcached store backend over apr_memcache: bounded waits, a key always on its own
 * server, fast failure of a server that is down.
 */
#include <stdint.h>
#include <stdlib.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_lib.h>
#include <apr_memcache.h>
#include <apr_network_io.h>
#include <apr_portable.h>
#include <apr_reslist.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_version.h>
#include <apu_version.h>

#include "bff_log.h"
#include "bff_store_journal.h"
#include "bff_store_ketama.h"
#include "bff_store_memcache.h"

#if !APR_HAS_THREADS
#error "the memcache store needs APR with threads (apr_memcache keeps a connection list)"
#endif

/* What apr_memcache 1.6 does, and what this file does about it:
 * - Connections: apr_memcache_server_create() makes an apr_reslist whose
 *   constructor connects with a 1 s timeout and then sets the socket timeout
 *   to -1: every later read blocks forever on a server that accepts but
 *   never answers (SIGSTOP'd, overloaded). There is no API for a timeout.
 *   We keep apr_memcache's list as a "factory" and give apr_memcache our own
 *   list (ms->conns is public) whose constructor takes a connection from the
 *   factory and sets op_timeout on its socket (as kernel timeouts on the
 *   blocking socket, see sock_timeouts()), reached through the private
 *   connection layout of apr-util 1.6 (checked for every connection).
 * - Dead servers: on a network error apr_memcache marks the server dead and
 *   its default server selection then sends the key to the NEXT server (a
 *   live session reads as absent there, and writes land on the wrong node),
 *   and when no server is live it returns APR_NOTFOUND, the same as a
 *   missing key. Our own selection always returns the key's server; we keep
 *   our own down/retry state and fail fast with a non-NOTFOUND status.
 * - Stale connections: 1.6 never checks an idle connection before reuse.
 *   After memcached restarts, every idle connection fails once (a reset, or
 *   EOF taken as an unexpected answer, APR_EGENERAL, after which the dead
 *   connection even goes back to the list). After an error other than a
 *   timeout we drop all idle connections of that server and try once more,
 *   so a restart costs no failed request. */

#define KEY_MAX 128 /* bytes, NUL included, as the shm store */
#if KEY_MAX > BFF_STORE_JOURNAL_KEY_MAX
#error "the journal must hold every key"
#endif
#define SERVERS_MAX BFF_KETAMA_SERVERS_MAX
/* With replicas, a removed key leaves a tombstone "!" + hex(MD5(key)) (see
 * rep_remove). */
#define TOMB_PREFIX '!'
/* With replicas, every value starts with a header: magic, then the entry's
 * absolute expiry (8 bytes, big-endian), so that a copy written back to a
 * replica that lost it keeps its expiry (apr_memcache's flags are 16 bits). */
#define HDR_LEN 11
#define HDR_MAGIC0 0xFE
#define HDR_MAGIC1 'B'
#define HDR_MAGIC2 'F'
/* A copy of an entry without a header (written before replicas were turned
 * on) has no known expiry: a tombstone for it lives this long. */
#define TOMB_TTL_UNKNOWN (24 * 3600)
/* Notes of missed writes replayed per journal take (and by a request, which
 * leaves the rest to the watchdog or the next request), at most per replay
 * of the watchdog, and how long a request waits for another process's
 * replay before it takes the server as busy. */
#define REPLAY_BATCH 64
#define REPLAY_MAX (4 * BFF_STORE_JOURNAL_KEYS)
#define REPLAY_WAIT apr_time_from_msec(100)
/* Keys this process copied to their replicas after a change of the server
 * list (a cache: a collision only costs one more copy attempt). */
#define REHOMED_SLOTS 4096
/* How often a server's eviction counter is read (per server and process). */
#define STATS_EVERY apr_time_from_sec(60)
#define REL_TTL_MAX (30 * 24 * 3600)        /* memcached: above is absolute time */
#define EXPTIME_MAX APR_INT64_C(2147483647) /* memcached parses exptime as int32 */
#define ITEM_MAX ((apr_size_t)1024 * 1024 * 1024)
#define OP_TIMEOUT_MAX apr_time_from_sec(60)

/* The first fields of apr-util 1.6's private struct apr_memcache_conn_t
 * (memcache/apr_memcache.c). Used only to reach the socket of a connection
 * just made, after checking that ms and the peer port agree. */
typedef struct {
    char *buffer;
    apr_size_t blen;
    apr_pool_t *p;
    apr_pool_t *tp;
    apr_socket_t *sock;
    void *bb;
    void *tb;
    apr_memcache_server_t *ms;
} mc_conn_view_t;

typedef struct {
    const char *host;
    apr_port_t port;
    const char *name; /* "host:port" for log lines */
} mc_addr_t;

typedef struct mc_ctx_t mc_ctx_t;

typedef struct {
    mc_ctx_t *c;
    int index; /* in the configured list */
    const mc_addr_t *addr;
    apr_memcache_t *mc; /* a client of this server alone */
    apr_memcache_server_t *ms;
    apr_reslist_t *factory;   /* apr_memcache's own list: connects and closes */
    apr_reslist_t *conns;     /* ours, installed as ms->conns */
    apr_uint32_t nconns;      /* connections alive in conns (atomic) */
    apr_uint32_t made;        /* connections ever made (atomic) */
    apr_thread_mutex_t *lock; /* guards the fields below */
    int down;                 /* also read without the lock (atomic load) */
    int warned;               /* BFF01601 logged for the current outage */
    apr_time_t next_try;
    apr_time_t last_warn;
    apr_status_t last_rv;
    apr_time_t next_stats;
    apr_uint64_t evictions; /* last value read, for the growth */
    int stats_read;
} mc_server_t;

typedef struct {
    mc_ctx_t *c;
    unsigned long process; /* process_id() of the process that made it */
    mc_server_t *servers;
    apr_uint64_t *rehomed; /* replicas only: see rehome_due */
} mc_proc_t;

struct mc_ctx_t {
    apr_pool_t *pool;
    bff_store_memcache_opts_t o;
    mc_addr_t *addrs;
    int naddrs;
    bff_ketama_t *ring;
    bff_store_journal_t *journal; /* replicas only */
    int *jslot;                   /* each server's slot in it, -1: none */
    apr_uint16_t ring_id;         /* replicas only: see ring_id_of */
    apr_thread_mutex_t *init_lock;
    /* Held by bff_store_memcache_tend (a watchdog thread) while it uses the
     * process's client, and by proc_cleanup: the child's pool is not
     * destroyed under a running tend. */
    apr_thread_mutex_t *tend_lock;
    mc_proc_t *proc; /* this process's client (atomic pointer) */
};

typedef enum { OP_GET, OP_SET, OP_ADD, OP_REPLACE, OP_DEL } mc_op_e;

typedef struct {
    mc_op_e kind;
    apr_pool_t *p;
    const char *key;
    apr_size_t klen;
    char *data; /* in for set/add/replace, out for get */
    apr_size_t len;
    apr_uint32_t exptime;
    apr_uint16_t flags; /* with replicas: the ring id it was written under */
} mc_op_t;

static int layout_logged;

void bff_store_memcache_opts_default(bff_store_memcache_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->conn_min = 0;
    o->conn_smax = 25;
    o->conn_max = 25;
    o->conn_ttl = apr_time_from_sec(15);
    o->op_timeout = apr_time_from_msec(500);
    o->retry_after = apr_time_from_sec(5);
    o->max_item = (apr_size_t)1024 * 1024;
    o->replicas = 1;
}

/* ---- keys and values ---- */

static apr_status_t key_check(const mc_ctx_t *c, const char *key, apr_size_t *klen)
{
    apr_size_t max = KEY_MAX - 1, i;

    if (!key) {
        return APR_EINVAL;
    }
    /* memcached's text protocol ends a key at whitespace and a line at
     * CRLF: anything else could inject a second command. */
    for (i = 0; key[i]; i++) {
        if (i >= max || (unsigned char)key[i] <= 0x20 || (unsigned char)key[i] >= 0x7f) {
            return APR_EINVAL;
        }
    }
    *klen = i;
    return i ? APR_SUCCESS : APR_EINVAL;
}

static int is_answer(apr_status_t rv)
{
    return rv == APR_SUCCESS || rv == APR_NOTFOUND || rv == APR_EEXIST;
}

/* A failure must never look like one of the statuses with a meaning. */
static apr_status_t unavailable(apr_status_t rv)
{
    if (rv == APR_SUCCESS || rv == APR_NOTFOUND || rv == APR_EEXIST || rv == APR_ENOSPC
        || rv == APR_EINVAL) {
        return APR_EGENERAL;
    }
    return rv;
}

/* ---- connections ---- */

/* A blocking socket with kernel timeouts rather than APR's (non-blocking
 * plus poll): a reply then costs one read instead of a read that finds
 * nothing yet, a poll and a second read, on every store operation. A read
 * or write that times out fails with EAGAIN, which is handled as a timeout. */
static apr_status_t sock_timeouts(apr_socket_t *sock, apr_interval_time_t t)
{
    struct timeval tv;
    apr_os_sock_t fd;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = apr_socket_timeout_set(sock, -1))
        || APR_SUCCESS != (rv = apr_os_sock_get(&fd, sock))) {
        return rv;
    }
    tv.tv_sec = (time_t)(t / APR_USEC_PER_SEC);
    tv.tv_usec = (suseconds_t)(t % APR_USEC_PER_SEC);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0
        || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    return APR_SUCCESS;
}

static apr_status_t conn_bound(mc_server_t *s, void *conn)
{
    const mc_conn_view_t *v = conn;
    apr_sockaddr_t *sa = NULL;

    if (!v || v->ms != s->ms || !v->sock
        || apr_socket_addr_get(&sa, APR_REMOTE, v->sock) != APR_SUCCESS || !sa
        || sa->port != s->addr->port) {
        if (!__atomic_exchange_n(&layout_logged, 1, __ATOMIC_ACQ_REL)) {
            BFF_LOG(BFF_LOG_ERR, APR_EGENERAL,
                    "BFF01603: apr_memcache's connection "
                    "structure is not the one of apr-util 1.6 (%s): cannot bound waits on "
                    "memcached, so the session store refuses to work",
                    apu_version_string());
        }
        return APR_EGENERAL;
    }
    return sock_timeouts(v->sock, s->c->o.op_timeout);
}

static apr_status_t conn_make(void **res, void *params, apr_pool_t *pool)
{
    mc_server_t *s = params;
    void *conn = NULL;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = apr_reslist_acquire(s->factory, &conn))) {
        return rv;
    }
    if (APR_SUCCESS != (rv = conn_bound(s, conn))) {
        apr_reslist_invalidate(s->factory, conn);
        return rv;
    }
    apr_atomic_inc32(&s->nconns);
    apr_atomic_inc32(&s->made);
    *res = conn;
    return APR_SUCCESS;
}

static apr_status_t conn_drop(void *res, void *params, apr_pool_t *pool)
{
    mc_server_t *s = params;

    apr_atomic_dec32(&s->nconns);
    return apr_reslist_invalidate(s->factory, res);
}

/* Close the idle connections of s: after an error they may all be dead
 * (memcached restarted), and apr_memcache 1.6 would reuse them one by one.
 * Stops early when the list hands out a new connection instead. */
static void conns_drain(mc_server_t *s)
{
    apr_uint32_t total = apr_atomic_read32(&s->nconns), before;
    int idle = (int)total - apr_reslist_acquired_count(s->conns), i;
    void *conn;

    for (i = 0; i < idle; i++) {
        before = apr_atomic_read32(&s->made);
        if (APR_SUCCESS != apr_reslist_acquire(s->conns, &conn)) {
            return;
        }
        if (apr_atomic_read32(&s->made) != before) {
            apr_reslist_release(s->conns, conn);
            return;
        }
        apr_reslist_invalidate(s->conns, conn);
    }
}

/* ---- server state ---- */

/* APR_SUCCESS: go ahead (*probe set when this request is the one that tries
 * a server that was down). Otherwise the server is down: fail fast. */
static apr_status_t server_admit(mc_server_t *s, int *probe)
{
    apr_time_t now;
    apr_status_t rv = APR_SUCCESS;

    *probe = 0;
    if (!__atomic_load_n(&s->down, __ATOMIC_ACQUIRE)) {
        return APR_SUCCESS;
    }
    now = apr_time_now();
    apr_thread_mutex_lock(s->lock);
    if (s->down) {
        if (now >= s->next_try) {
            /* Only this request tries; the others keep failing fast. */
            s->next_try = now + s->c->o.retry_after;
            *probe = 1;
        }
        else {
            rv = unavailable(s->last_rv);
        }
    }
    apr_thread_mutex_unlock(s->lock);
    return rv;
}

static void server_failed(mc_server_t *s, apr_status_t rv)
{
    apr_interval_time_t retry = s->c->o.retry_after;
    apr_time_t now = apr_time_now();
    int log = 0;

    apr_thread_mutex_lock(s->lock);
    if (!s->down) {
        s->next_try = now + retry;
        if (!s->last_warn || now - s->last_warn >= retry) {
            s->last_warn = now;
            s->warned = log = 1;
        }
        __atomic_store_n(&s->down, 1, __ATOMIC_RELEASE);
    }
    s->last_rv = rv;
    apr_thread_mutex_unlock(s->lock);
    if (log) {
        BFF_LOG(
            BFF_LOG_WARNING, rv,
            "BFF01601: memcached server %s is unavailable: the "
            "sessions stored on it fail (503) until it answers again; next attempt in %" APR_TIME_T_FMT
            " ms",
            s->addr->name, apr_time_as_msec(retry));
    }
}

static void server_ok(mc_server_t *s)
{
    int log = 0;

    if (!__atomic_load_n(&s->down, __ATOMIC_ACQUIRE)) {
        return;
    }
    apr_thread_mutex_lock(s->lock);
    if (s->down) {
        __atomic_store_n(&s->down, 0, __ATOMIC_RELEASE);
        log = s->warned;
        s->warned = 0;
        apr_memcache_enable_server(s->mc, s->ms);
    }
    apr_thread_mutex_unlock(s->lock);
    if (log) {
        BFF_LOG(BFF_LOG_NOTICE, APR_SUCCESS, "BFF01602: memcached server %s answers again",
                s->addr->name);
    }
}

/* ---- per-process client ---- */

/* Each server has a client of its own, holding only that server: the ring
 * (bff_store_ketama) chooses servers, and apr_memcache's selection, which
 * skips servers it marked dead, must not. */
static apr_memcache_server_t *pick_server(void *baton, apr_memcache_t *mc, const apr_uint32_t hash)
{
    return mc->ntotal ? mc->live_servers[0] : NULL;
}

/* apr_memcache hashes every key to choose a server; there is one. */
static apr_uint32_t no_hash(void *baton, const char *data, const apr_size_t len)
{
    return 0;
}

static apr_status_t server_client(mc_server_t *s, apr_pool_t *pool)
{
    apr_status_t rv = apr_memcache_create(pool, 1, 0, &s->mc);

    if (rv == APR_SUCCESS) {
        s->mc->hash_func = no_hash;
        s->mc->hash_baton = NULL;
        s->mc->server_func = pick_server;
        s->mc->server_baton = s;
    }
    return rv;
}

static apr_status_t server_make(mc_proc_t *pr, mc_server_t *s, int index, apr_pool_t *pool)
{
    const bff_store_memcache_opts_t *o = &pr->c->o;
    apr_pool_t *lpool;
    apr_status_t rv;

    s->c = pr->c;
    s->index = index;
    s->addr = &pr->c->addrs[index];
    if (APR_SUCCESS != (rv = server_client(s, pool))) {
        return rv;
    }
    /* The factory never keeps idle connections (ours does), so no ttl. */
    rv = apr_memcache_server_create(pool, s->addr->host, s->addr->port, 0,
                                    (apr_uint32_t)o->conn_max, (apr_uint32_t)o->conn_max, 0,
                                    &s->ms);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    s->factory = s->ms->conns;
    if (APR_SUCCESS != (rv = apr_thread_mutex_create(&s->lock, APR_THREAD_MUTEX_DEFAULT, pool))) {
        return rv;
    }
    /* In a pool created after the factory's: subpools are destroyed newest
     * first, so ours hands its connections back while the factory exists
     * (apr_reslist asserts that none is left out at cleanup). */
    if (APR_SUCCESS != (rv = apr_pool_create(&lpool, pool))) {
        return rv;
    }
    rv = apr_reslist_create(&s->conns, o->conn_min, o->conn_smax, o->conn_max, o->conn_ttl,
                            conn_make, conn_drop, s, lpool);
    if (rv != APR_SUCCESS && o->conn_min > 0) {
        /* conn_min connects at once; a server down at startup must not
         * stop the child, it only fails its own keys. */
        rv = apr_reslist_create(&s->conns, 0, o->conn_smax, o->conn_max, o->conn_ttl, conn_make,
                                conn_drop, s, lpool);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* A full list waits for a connection at most op_timeout (APR_EAGAIN). */
    apr_reslist_timeout_set(s->conns, o->op_timeout);
    s->ms->conns = s->conns;
    return apr_memcache_add_server(s->mc, s->ms);
}

/* Which process this is, without a getpid() system call on every store
 * operation: a counter bumped in every child a fork makes. */
static unsigned long forks;
static pthread_once_t forks_once = PTHREAD_ONCE_INIT;

static void forked(void)
{
    ++forks;
}

static void forks_watch(void)
{
    (void)pthread_atfork(NULL, NULL, forked);
}

static unsigned long process_id(void)
{
    pthread_once(&forks_once, forks_watch);
    return __atomic_load_n(&forks, __ATOMIC_RELAXED) + 1;
}

static apr_status_t proc_cleanup(void *data)
{
    mc_proc_t *pr = data;
    mc_proc_t *expected = pr;

    apr_thread_mutex_lock(pr->c->tend_lock);
    __atomic_compare_exchange_n(&pr->c->proc, &expected, NULL, 0, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
    apr_thread_mutex_unlock(pr->c->tend_lock);
    return APR_SUCCESS;
}

/* Called with c->init_lock held. */
static apr_status_t proc_make(mc_ctx_t *c, apr_pool_t *parent, mc_proc_t **out)
{
    apr_pool_t *pool;
    mc_proc_t *pr;
    apr_status_t rv;
    int i;

    if (APR_SUCCESS != (rv = apr_pool_create(&pool, parent))) {
        return rv;
    }
    apr_pool_tag(pool, "bff_store_memcache");
    pr = apr_pcalloc(pool, sizeof(*pr));
    pr->c = c;
    pr->process = process_id();
    pr->servers = apr_pcalloc(pool, sizeof(*pr->servers) * (apr_size_t)c->naddrs);
    if (c->o.replicas > 1) {
        pr->rehomed = apr_pcalloc(pool, sizeof(*pr->rehomed) * REHOMED_SLOTS);
    }
    for (i = 0; i < c->naddrs; i++) {
        if (APR_SUCCESS != (rv = server_make(pr, &pr->servers[i], i, pool))) {
            goto fail;
        }
    }
    apr_pool_pre_cleanup_register(pool, pr, proc_cleanup);
    *out = pr;
    return APR_SUCCESS;
fail:
    apr_pool_destroy(pool);
    return rv;
}

static apr_status_t proc_install(mc_ctx_t *c, apr_pool_t *parent, int force, mc_proc_t **out)
{
    mc_proc_t *pr;
    apr_status_t rv = APR_SUCCESS;

    apr_thread_mutex_lock(c->init_lock);
    pr = c->proc;
    if (force || !pr || pr->process != process_id()) {
        if (APR_SUCCESS == (rv = proc_make(c, parent, &pr))) {
            __atomic_store_n(&c->proc, pr, __ATOMIC_RELEASE);
        }
    }
    apr_thread_mutex_unlock(c->init_lock);
    if (rv == APR_SUCCESS && out) {
        *out = pr;
    }
    return rv;
}

static apr_status_t proc_get(mc_ctx_t *c, mc_proc_t **out)
{
    mc_proc_t *pr = __atomic_load_n(&c->proc, __ATOMIC_ACQUIRE);

    if (pr && pr->process == process_id()) {
        *out = pr;
        return APR_SUCCESS;
    }
    /* No child_init in this process (tests, tools), or a process forked
     * after the parent used the store: never share its connections. */
    return proc_install(c, c->pool, 0, out);
}

static apr_status_t mc_child_init(bff_store_t *st, apr_pool_t *pchild)
{
    mc_ctx_t *c = st->ctx;
    apr_status_t rv;

    if (c->journal && APR_SUCCESS != (rv = bff_store_journal_child_init(c->journal, pchild))) {
        return rv;
    }
    return proc_install(c, pchild, 1, NULL);
}

/* ---- memcached commands ---- */

static apr_status_t op_exec(apr_memcache_t *mc, mc_op_t *op)
{
    apr_status_t rv;

    switch (op->kind) {
    case OP_GET:
        op->data = NULL;
        op->len = 0;
        op->flags = 0;
        return apr_memcache_getp(mc, op->p, op->key, &op->data, &op->len, &op->flags);
    case OP_SET:
        rv = apr_memcache_set(mc, op->key, op->data, op->len, op->exptime, op->flags);
        /* NOT_STORED for a set is no answer we expect. */
        return rv == APR_EEXIST ? APR_EGENERAL : rv;
    case OP_ADD:
        return apr_memcache_add(mc, op->key, op->data, op->len, op->exptime, op->flags);
    case OP_REPLACE:
        /* memcached's replace: NOT_STORED (APR_EEXIST here) means no item. */
        rv = apr_memcache_replace(mc, op->key, op->data, op->len, op->exptime, op->flags);
        return rv == APR_EEXIST ? APR_NOTFOUND : rv;
    case OP_DEL:
        return apr_memcache_delete(mc, op->key, 0);
    }
    return APR_EINVAL;
}

/* ---- one server ---- */

static int is_write(mc_op_e kind)
{
    return kind != OP_GET;
}

/* The server's slot in the journal, -1 without one. */
static int jslot(const mc_server_t *s)
{
    return s->c->journal ? s->c->jslot[s->index] : -1;
}

/* A write that could not be made on a server (it did not answer, or its
 * journal was being replayed): noted in the node's journal, to be undone
 * (the key deleted there) before anything is read from it again, so that it
 * does not serve what it held before (an old token, an ended session). Only
 * with replicas: the other replicas hold the current entry. */
static void dirty_note(mc_server_t *s, const char *key)
{
    if (s->c->journal) {
        bff_store_journal_note(s->c->journal, jslot(s), key);
    }
}

static int dirty(mc_server_t *s)
{
    return s->c->journal && bff_store_journal_pending(s->c->journal, jslot(s));
}

static void replay_lost(mc_server_t *s, int lost)
{
    BFF_LOG(BFF_LOG_WARNING, APR_SUCCESS,
            "BFF01605: memcached server %s answers again, but this node missed more "
            "writes to it (%d) than its journal holds: it may serve outdated session entries "
            "(old tokens, sessions that ended while it was away) until they expire; "
            "restart it empty to be sure (docs/deployment.md)",
            s->addr->name, lost);
}

/* One claim's work: up to budget deletes of noted keys on s, *deleted of
 * them done. APR_SUCCESS: a batch went through; APR_EBUSY: the claim was
 * taken over; otherwise s failed. */
static apr_status_t replay_batches(mc_server_t *s, apr_uint64_t claim, apr_pool_t *tp, int budget,
                                   int *deleted)
{
    bff_store_journal_t *j = s->c->journal;
    char(*keys)[BFF_STORE_JOURNAL_KEY_MAX];
    int n, lost, i;
    apr_status_t rv = APR_SUCCESS;

    while (*deleted < budget) {
        apr_pool_clear(tp);
        if (APR_SUCCESS
            != (rv = bff_store_journal_take(j, jslot(s), claim, tp, REPLAY_BATCH, &keys, &n,
                                            &lost))) {
            return rv;
        }
        for (i = 0; i < n && is_answer(rv = apr_memcache_delete(s->mc, keys[i], 0)); i++) {
        }
        *deleted += i;
        if (i < n) {
            /* Still away: what is left waits for the next attempt. */
            bff_store_journal_done(j, jslot(s), claim, i, 0);
            return rv;
        }
        if (APR_SUCCESS != (rv = bff_store_journal_done(j, jslot(s), claim, n, lost))) {
            return rv;
        }
        if (lost) {
            replay_lost(s, lost + n);
        }
        if (!n) {
            break;
        }
    }
    return APR_SUCCESS;
}

/* Deletes on s the keys of the writes it missed, noted by any process of
 * this node (one replays, see bff_store_journal.h), at most budget of them.
 * APR_SUCCESS: nothing is left to undo; APR_EBUSY: another process replays,
 * or some is left (the budget of a request, notes made meanwhile);
 * otherwise s failed. */
static apr_status_t journal_replay(mc_server_t *s, apr_pool_t *p, int budget, int *deleted)
{
    bff_store_journal_t *j = s->c->journal;
    apr_uint64_t claim;
    apr_pool_t *tp;
    apr_status_t rv;

    *deleted = 0;
    if (APR_SUCCESS != bff_store_journal_claim(j, jslot(s), &claim)) {
        return APR_EBUSY;
    }
    if (APR_SUCCESS == (rv = apr_pool_create(&tp, p))) {
        rv = replay_batches(s, claim, tp, budget, deleted);
        apr_pool_destroy(tp);
    }
    bff_store_journal_release(j, jslot(s), claim);
    if (*deleted) {
        BFF_LOG(BFF_LOG_INFO, APR_SUCCESS,
                "BFF01606: memcached server %s: %d entries it held while writes missed it "
                "deleted on it, before it serves reads again",
                s->addr->name, *deleted);
    }
    if (rv == APR_SUCCESS && dirty(s)) {
        rv = APR_EBUSY;
    }
    return rv;
}

/* Before a request uses s: its notes replayed, by this request (a batch) or
 * another process; waits up to REPLAY_WAIT for the other one. APR_SUCCESS:
 * s may be used; APR_EBUSY: still not (s is busy, not down); otherwise s
 * failed. */
static apr_status_t journal_clear(mc_server_t *s, apr_pool_t *p)
{
    apr_time_t until = apr_time_now() + REPLAY_WAIT;
    apr_status_t rv;
    int deleted;

    while (dirty(s)) {
        rv = journal_replay(s, p, REPLAY_BATCH, &deleted);
        if (rv != APR_EBUSY) {
            return rv;
        }
        if (apr_time_now() >= until) {
            return APR_EBUSY;
        }
        apr_sleep(apr_time_from_msec(2));
    }
    return APR_SUCCESS;
}

/* memcached evicts the least recently used items of a slab class when it is
 * full: a session then vanishes like a logged-out one. Read the server's
 * eviction counter now and then (after a miss, at most every STATS_EVERY)
 * and say so when it grew. */
static void evictions_check(mc_server_t *s, apr_pool_t *p)
{
    apr_memcache_stats_t *st = NULL;
    apr_uint64_t before;
    apr_time_t now = apr_time_now();
    apr_pool_t *tp;
    int first;

    apr_thread_mutex_lock(s->lock);
    if (now < s->next_stats) {
        apr_thread_mutex_unlock(s->lock);
        return;
    }
    s->next_stats = now + STATS_EVERY;
    apr_thread_mutex_unlock(s->lock);
    if (APR_SUCCESS != apr_pool_create(&tp, p)) {
        return;
    }
    if (APR_SUCCESS == apr_memcache_stats(s->ms, tp, &st) && st) {
        apr_thread_mutex_lock(s->lock);
        before = s->evictions;
        first = !s->stats_read;
        s->evictions = st->evictions;
        s->stats_read = 1;
        apr_thread_mutex_unlock(s->lock);
        if (st->evictions > before || (first && st->evictions > 0)) {
            BFF_LOG(BFF_LOG_WARNING, APR_SUCCESS,
                    "BFF01604: memcached server %s is evicting: %" APR_UINT64_T_FMT
                    " evictions since it started, %" APR_UINT64_T_FMT
                    " since this process last looked; sessions stored on it are lost "
                    "(the users get 401 and sign in again): give memcached more memory "
                    "(-m, see docs/deployment.md)",
                    s->addr->name, st->evictions, first ? st->evictions : st->evictions - before);
        }
    }
    apr_pool_destroy(tp);
}

static void observe(mc_server_t *s, int failed)
{
    const bff_store_memcache_opts_t *o = &s->c->o;

    if (o->observe) {
        o->observe(o->observe_baton, s->index, failed);
    }
}

/* One operation on one server: fail fast while it is down, retry once on a
 * fresh connection, track its state. */
static apr_status_t srv_run(mc_server_t *s, mc_op_t *op)
{
    apr_status_t rv;
    int probe;

    if (APR_SUCCESS != (rv = server_admit(s, &probe))) {
        if (is_write(op->kind)) {
            dirty_note(s, op->key);
        }
        return rv;
    }
    if (probe) {
        conns_drain(s);
    }
    /* Before anything is read from it: undo what it missed. */
    if (dirty(s) && APR_SUCCESS != (rv = journal_clear(s, op->p))) {
        if (rv != APR_EBUSY) {
            server_failed(s, rv);
            observe(s, 1);
        }
        if (is_write(op->kind)) {
            dirty_note(s, op->key);
        }
        return unavailable(rv);
    }
    rv = op_exec(s->mc, op);
    if (!is_answer(rv) && !probe && !APR_STATUS_IS_TIMEUP(rv) && !APR_STATUS_IS_EAGAIN(rv)) {
        /* Perhaps a stale connection: once more on a fresh one. Not after a
         * timeout, which would double the wait; a request that timed out may
         * have been executed, and its connection is closed anyway. */
        conns_drain(s);
        rv = op_exec(s->mc, op);
    }
    if (is_answer(rv)) {
        server_ok(s);
        observe(s, 0);
        if (rv == APR_NOTFOUND && op->kind == OP_GET) {
            evictions_check(s, op->p);
        }
        return rv;
    }
    observe(s, 1);
    if (is_write(op->kind)) {
        dirty_note(s, op->key);
    }
    /* APR_EGENERAL is an answer we did not expect (e.g. SERVER_ERROR): the
     * server is up, only this request failed. */
    if (rv != APR_EGENERAL || probe) {
        server_failed(s, rv);
    }
    return unavailable(rv);
}

/* ---- values ---- */

/* memcached exptime for an absolute expires; 0 when already past. */
static apr_uint32_t exptime_for(apr_int64_t expires)
{
    apr_int64_t now = (apr_int64_t)apr_time_sec(apr_time_now());
    apr_int64_t ttl;

    if (expires < now) {
        return 0;
    }
    /* The entry lives through second expires, as in the shm store. */
    ttl = expires - now + 1;
    if (ttl <= REL_TTL_MAX) {
        return (apr_uint32_t)ttl;
    }
    return (apr_uint32_t)(expires + 1 > EXPTIME_MAX ? EXPTIME_MAX : expires + 1);
}

static char *hdr_wrap(apr_pool_t *p, const char *val, apr_size_t len, apr_int64_t expires)
{
    unsigned char *b = apr_palloc(p, len + HDR_LEN);
    apr_uint64_t e = (apr_uint64_t)expires;
    int i;

    b[0] = HDR_MAGIC0;
    b[1] = HDR_MAGIC1;
    b[2] = HDR_MAGIC2;
    for (i = 0; i < 8; i++) {
        b[3 + i] = (unsigned char)(e >> (56 - 8 * i));
    }
    memcpy(b + HDR_LEN, val, len);
    return (char *)b;
}

/* The expiry in a value's header, 0 for a value without one. */
static apr_int64_t hdr_expires(const char *v, apr_size_t len)
{
    const unsigned char *b = (const unsigned char *)v;
    apr_uint64_t e = 0;
    int i;

    if (!v || len < HDR_LEN || b[0] != HDR_MAGIC0 || b[1] != HDR_MAGIC1 || b[2] != HDR_MAGIC2) {
        return 0;
    }
    for (i = 0; i < 8; i++) {
        e = e << 8 | b[3 + i];
    }
    return (apr_int64_t)e;
}

/* The caller's value: without the header, if there is one (also without
 * replicas: a node may read what a node with replicas wrote). */
static void hdr_strip(mc_op_t *op)
{
    if (hdr_expires(op->data, op->len)) {
        op->data += HDR_LEN;
        op->len -= HDR_LEN;
    }
}

/* ---- replicas ---- */

/* The key's replicas in ring order: the first c->o.replicas distinct servers. */
typedef struct {
    mc_ctx_t *c;
    mc_proc_t *pr;
    int n;
    mc_server_t *s[SERVERS_MAX];
} mc_reps_t;

static void reps_of(mc_ctx_t *c, mc_proc_t *pr, const mc_op_t *op, mc_reps_t *r)
{
    int idx[SERVERS_MAX], i;

    r->c = c;
    r->pr = pr;
    r->n = bff_ketama_servers(c->ring, op->key, op->klen, c->o.replicas, idx);
    for (i = 0; i < r->n; i++) {
        r->s[i] = &pr->servers[idx[i]];
    }
}

static apr_status_t srv_do(mc_server_t *s, const mc_op_t *tmpl, mc_op_e kind, const char *key)
{
    mc_op_t op = *tmpl;

    op.kind = kind;
    op.key = key;
    return srv_run(s, &op);
}

/* "!" and the key's MD5 in hex: fits whatever the key's length. */
static const char *tomb_key(const mc_op_t *op)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[16];
    char *t = apr_palloc(op->p, 34);
    int i;

    bff_ketama_digest(op->key, op->klen, d);
    t[0] = TOMB_PREFIX;
    for (i = 0; i < 16; i++) {
        t[1 + 2 * i] = hex[d[i] >> 4];
        t[2 + 2 * i] = hex[d[i] & 15];
    }
    t[33] = '\0';
    return t;
}

/* A tombstone on any replica that answers: the key was removed. */
static int tomb_seen(const mc_reps_t *r, const mc_op_t *op)
{
    mc_op_t g = *op;
    int i;

    g.key = tomb_key(op);
    for (i = 0; i < r->n; i++) {
        g.kind = OP_GET;
        if (srv_run(r->s[i], &g) == APR_SUCCESS) {
            return 1;
        }
    }
    return 0;
}

static void tombs_clear(const mc_reps_t *r, const mc_op_t *op)
{
    const char *tk = tomb_key(op);
    int i;

    for (i = 0; i < r->n; i++) {
        srv_do(r->s[i], op, OP_DEL, tk);
    }
}

static void del_all(const mc_reps_t *r, const mc_op_t *op)
{
    int i;

    for (i = r->n - 1; i >= 0; i--) {
        srv_do(r->s[i], op, OP_DEL, op->key);
    }
}

/* Write back the stored bytes op->data (header included) to the replicas in
 * miss[] that answered "not found" while another holds the entry: they were
 * restarted empty, evicted it, or were down when it was written. overwrite:
 * this is a newer value (a replace), which replaces a copy written back
 * meanwhile. The write-back must not bring back a removed entry: a removal
 * sets tombstones on every replica before it deletes (rep_remove), and the
 * tombstones are checked after the write-back, so either the removal's
 * deletes come after the write-back, or the check sees a tombstone and
 * undoes it. APR_NOTFOUND: the entry was removed (all copies deleted). */
static apr_status_t repair_some(const mc_reps_t *r, const mc_op_t *op, const int *miss, int nmiss,
                                int overwrite, int *complete)
{
    mc_op_t w = *op;
    int added = 0, i;
    apr_status_t rv;

    *complete = 1;
    w.exptime = exptime_for(hdr_expires(op->data, op->len));
    if (!w.exptime) {
        return APR_SUCCESS; /* no header (older entry) or expired: leave it */
    }
    for (i = 0; i < nmiss; i++) {
        w.kind = OP_ADD;
        rv = srv_run(r->s[miss[i]], &w);
        if (rv == APR_EEXIST && overwrite) {
            w.kind = OP_REPLACE;
            rv = srv_run(r->s[miss[i]], &w);
        }
        added += rv == APR_SUCCESS;
        *complete &= rv == APR_SUCCESS || rv == APR_EEXIST;
    }
    if (added && tomb_seen(r, op)) {
        del_all(r, op);
        return APR_NOTFOUND;
    }
    return APR_SUCCESS;
}

static apr_status_t repair(const mc_reps_t *r, const mc_op_t *op, const int *miss, int nmiss,
                           int overwrite)
{
    int complete;

    return repair_some(r, op, miss, nmiss, overwrite, &complete);
}

/* After a change of the server list, an entry's replicas may be other servers
 * than those it was written to: the first that holds it is read (a single
 * change keeps one of them, docs/deployment.md), the others get their copy
 * at its next write -- or, so that a second change soon after loses nothing
 * that was used in between, when it is first read under the new list. An
 * entry carries the ring id it was written under (in memcached's flags: 0,
 * an entry without one, is left alone). */
static apr_uint64_t rehome_slot(const mc_op_t *op, apr_uint64_t **slot, const mc_reps_t *r)
{
    unsigned char d[16];
    apr_uint64_t h = 0;
    int i;

    bff_ketama_digest(op->key, op->klen, d);
    for (i = 0; i < 8; i++) {
        h = h << 8 | d[i];
    }
    *slot = &r->pr->rehomed[h % REHOMED_SLOTS];
    return h ? h : 1;
}

static int rehome_due(const mc_reps_t *r, const mc_op_t *op)
{
    apr_uint64_t *slot, h;

    if (!op->flags || op->flags == r->c->ring_id || !r->pr->rehomed) {
        return 0;
    }
    h = rehome_slot(op, &slot, r);
    return __atomic_load_n(slot, __ATOMIC_RELAXED) != h;
}

static void rehome_done(const mc_reps_t *r, const mc_op_t *op)
{
    apr_uint64_t *slot, h = rehome_slot(op, &slot, r);

    __atomic_store_n(slot, h, __ATOMIC_RELAXED);
}

/* Read from the first replica that has the entry: one round trip while the
 * first replica is up and holds it. *unanswered: replicas that did not
 * answer (down, or busy with their journal). */
static apr_status_t rep_read(const mc_reps_t *r, mc_op_t *op, int *unanswered)
{
    int miss[SERVERS_MAX], nmiss = 0, complete, i;
    apr_status_t rv, failed = APR_EGENERAL;

    *unanswered = 0;
    for (i = 0; i < r->n; i++) {
        op->kind = OP_GET;
        rv = srv_run(r->s[i], op);
        if (rv == APR_SUCCESS && rehome_due(r, op)) {
            while (++i < r->n) {
                miss[nmiss++] = i;
            }
            rv = repair_some(r, op, miss, nmiss, 0, &complete);
            if (rv == APR_SUCCESS && complete) {
                rehome_done(r, op);
            }
            return rv;
        }
        if (rv == APR_SUCCESS) {
            return nmiss ? repair(r, op, miss, nmiss, 0) : APR_SUCCESS;
        }
        if (rv == APR_NOTFOUND) {
            miss[nmiss++] = i;
        }
        else {
            failed = rv;
            ++*unanswered;
        }
    }
    return nmiss ? APR_NOTFOUND : failed;
}

static apr_status_t rep_get(const mc_reps_t *r, mc_op_t *op)
{
    int unanswered;

    return rep_read(r, op, &unanswered);
}

/* add: taken only if every replica that answers takes it, so that two nodes
 * never both hold a lock or both use a single-use entry while they reach a
 * common replica. A replica that already holds the key (the others lost it)
 * makes it taken: ours are undone. */
static apr_status_t rep_add(const mc_reps_t *r, mc_op_t *op)
{
    int done[SERVERS_MAX], ndone = 0, i;
    apr_status_t rv, failed = APR_EGENERAL;

    for (i = 0; i < r->n; i++) {
        op->kind = OP_ADD;
        rv = srv_run(r->s[i], op);
        if (rv == APR_SUCCESS) {
            done[ndone++] = i;
        }
        else if (rv == APR_EEXIST) {
            while (ndone > 0) {
                srv_do(r->s[done[--ndone]], op, OP_DEL, op->key);
            }
            return APR_EEXIST;
        }
        else {
            failed = rv;
        }
    }
    if (!ndone) {
        return failed;
    }
    /* A new entry under a removed key (a lock taken again) is not removed. */
    tombs_clear(r, op);
    return APR_SUCCESS;
}

static apr_status_t rep_set(const mc_reps_t *r, mc_op_t *op)
{
    int ok = 0, i;
    apr_status_t rv, failed = APR_EGENERAL;

    for (i = 0; i < r->n; i++) {
        op->kind = OP_SET;
        rv = srv_run(r->s[i], op);
        if (rv == APR_SUCCESS) {
            ok++;
        }
        else {
            failed = rv;
        }
    }
    if (!ok) {
        return failed;
    }
    tombs_clear(r, op);
    return APR_SUCCESS;
}

/* replace: on every replica in ring order. A replica that answers "not found"
 * while a later one replaced lost the entry (a removal deletes the later
 * replicas first, so it cannot be one); one that answers "not found" after
 * an earlier one replaced may be a removal under way: the write-back's
 * tombstone check tells (repair). */
static apr_status_t rep_replace(const mc_reps_t *r, mc_op_t *op)
{
    int miss[SERVERS_MAX], nmiss = 0, ok = 0, i;
    apr_status_t rv, failed = APR_EGENERAL;

    for (i = 0; i < r->n; i++) {
        op->kind = OP_REPLACE;
        rv = srv_run(r->s[i], op);
        if (rv == APR_SUCCESS) {
            ok++;
        }
        else if (rv == APR_NOTFOUND) {
            miss[nmiss++] = i;
        }
        else {
            failed = rv;
        }
    }
    if (!ok) {
        return nmiss ? APR_NOTFOUND : failed;
    }
    return nmiss ? repair(r, op, miss, nmiss, 1) : APR_SUCCESS;
}

/* remove: a tombstone on every replica (as long as the entry would have
 * lived), then delete, last replica first. Also when no replica that
 * answered had it but one did not answer: that one may hold the only copy
 * (after a change of the server list) and serve it for a moment when it
 * answers again, before the journal's replay deletes it there; a reader
 * that copies it to another replica meanwhile then finds the tombstone. */
static apr_status_t rep_remove(const mc_reps_t *r, mc_op_t *op)
{
    mc_op_t t = *op;
    apr_int64_t expires;
    int found = 0, answered = 0, unanswered, i;
    apr_status_t rv, failed = APR_EGENERAL;

    rv = rep_read(r, &t, &unanswered);
    if (rv == APR_SUCCESS || unanswered) {
        expires = rv == APR_SUCCESS ? hdr_expires(t.data, t.len) : 0;
        t.exptime = expires ? exptime_for(expires) : TOMB_TTL_UNKNOWN;
        t.key = tomb_key(op);
        t.data = (char *)(uintptr_t) "1";
        t.len = 1;
        for (i = 0; t.exptime && i < r->n; i++) {
            t.kind = OP_SET;
            srv_run(r->s[i], &t);
        }
    }
    for (i = r->n - 1; i >= 0; i--) {
        op->kind = OP_DEL;
        rv = srv_run(r->s[i], op);
        found += rv == APR_SUCCESS;
        answered += is_answer(rv);
        if (!is_answer(rv)) {
            failed = rv;
        }
    }
    return found ? APR_SUCCESS : answered ? APR_NOTFOUND : failed;
}

/* ---- operations ---- */

static apr_status_t mc_run(mc_ctx_t *c, mc_op_t *op)
{
    mc_proc_t *pr;
    mc_reps_t r;
    apr_status_t rv;

    if (APR_SUCCESS != (rv = proc_get(c, &pr))) {
        return unavailable(rv);
    }
    reps_of(c, pr, op, &r);
    if (r.n == 1) {
        return srv_run(r.s[0], op);
    }
    switch (op->kind) {
    case OP_GET:
        rv = rep_get(&r, op);
        break;
    case OP_SET:
        rv = rep_set(&r, op);
        break;
    case OP_ADD:
        rv = rep_add(&r, op);
        break;
    case OP_REPLACE:
        rv = rep_replace(&r, op);
        break;
    case OP_DEL:
        rv = rep_remove(&r, op);
        break;
    default:
        rv = APR_EINVAL;
    }
    return is_answer(rv) ? rv : unavailable(rv);
}

static apr_status_t mc_get(bff_store_t *st, apr_pool_t *p, const char *key, unsigned char **val,
                           apr_size_t *len)
{
    mc_op_t op = { OP_GET, p, key, 0, NULL, 0, 0, 0 };
    apr_status_t rv;

    *val = NULL;
    *len = 0;
    if (APR_SUCCESS != (rv = key_check(st->ctx, key, &op.klen))) {
        return rv;
    }
    if (APR_SUCCESS != (rv = mc_run(st->ctx, &op))) {
        return rv;
    }
    hdr_strip(&op);
    /* apr_memcache gives NULL for an empty value. */
    *val = op.data ? (unsigned char *)op.data : apr_pcalloc(p, 1);
    *len = op.len;
    return APR_SUCCESS;
}

/* A write whose expires has passed: memcached would take exptime 0 as
 * "never expires", so store nothing. A set ends the existing entry, a
 * replace too (reporting whether one lived); an add only reports whether
 * one lives. */
static apr_status_t put_expired(mc_ctx_t *c, mc_op_t *op, mc_op_e kind)
{
    apr_status_t rv;

    op->kind = kind == OP_ADD ? OP_GET : OP_DEL;
    rv = mc_run(c, op);
    if (kind == OP_SET) {
        return rv == APR_NOTFOUND ? APR_SUCCESS : rv;
    }
    if (kind == OP_REPLACE) {
        return rv;
    }
    return rv == APR_SUCCESS ? APR_EEXIST : rv == APR_NOTFOUND ? APR_SUCCESS : rv;
}

static apr_status_t mc_put(bff_store_t *st, apr_pool_t *p, const char *key,
                           const unsigned char *val, apr_size_t len, apr_int64_t expires,
                           mc_op_e kind)
{
    mc_ctx_t *c = st->ctx;
    mc_op_t op = { kind, p, key, 0, NULL, len, 0, c->ring_id };
    apr_status_t rv;

    if (APR_SUCCESS != (rv = key_check(c, key, &op.klen)) || (!val && len)) {
        return APR_EINVAL;
    }
    if (len > c->o.max_item || (c->o.replicas > 1 && len > c->o.max_item - HDR_LEN)) {
        return APR_ENOSPC;
    }
    /* apr_memcache takes char * but only sends the bytes. */
    op.data = (char *)(uintptr_t)(val ? val : (const unsigned char *)"");
    op.exptime = exptime_for(expires);
    if (op.exptime == 0) {
        return put_expired(c, &op, kind);
    }
    if (c->o.replicas > 1) {
        op.data = hdr_wrap(p, op.data, len, expires);
        op.len = len + HDR_LEN;
    }
    return mc_run(c, &op);
}

static apr_status_t mc_set(bff_store_t *st, apr_pool_t *p, const char *key,
                           const unsigned char *val, apr_size_t len, apr_int64_t expires)
{
    return mc_put(st, p, key, val, len, expires, OP_SET);
}

static apr_status_t mc_add(bff_store_t *st, apr_pool_t *p, const char *key,
                           const unsigned char *val, apr_size_t len, apr_int64_t expires)
{
    return mc_put(st, p, key, val, len, expires, OP_ADD);
}

static apr_status_t mc_replace(bff_store_t *st, apr_pool_t *p, const char *key,
                               const unsigned char *val, apr_size_t len, apr_int64_t expires)
{
    return mc_put(st, p, key, val, len, expires, OP_REPLACE);
}

static apr_status_t mc_remove(bff_store_t *st, apr_pool_t *p, const char *key)
{
    mc_op_t op = { OP_DEL, p, key, 0, NULL, 0, 0, 0 };
    apr_status_t rv;

    if (APR_SUCCESS != (rv = key_check(st->ctx, key, &op.klen))) {
        return rv;
    }
    return mc_run(st->ctx, &op);
}

int bff_store_memcache_server_index(bff_store_t *st, const char *key)
{
    mc_ctx_t *c = st->ctx;
    apr_size_t klen;
    int idx[SERVERS_MAX];

    if (APR_SUCCESS != key_check(c, key, &klen)) {
        return -1;
    }
    return bff_ketama_servers(c->ring, key, klen, 1, idx) == 1 ? idx[0] : -1;
}

int bff_store_memcache_replica_servers(bff_store_t *st, const char *key, int *out)
{
    mc_ctx_t *c = st->ctx;
    apr_size_t klen;

    if (APR_SUCCESS != key_check(c, key, &klen)) {
        return 0;
    }
    return bff_ketama_servers(c->ring, key, klen, c->o.replicas, out);
}

apr_status_t bff_store_memcache_tend(bff_store_t *st, apr_pool_t *p)
{
    mc_ctx_t *c = st->ctx;
    mc_proc_t *pr;
    mc_server_t *s;
    apr_status_t rv, ret = APR_SUCCESS;
    int i, deleted;

    if (!c->journal) {
        return APR_SUCCESS;
    }
    for (i = 0; i < c->naddrs && !bff_store_journal_pending(c->journal, c->jslot[i]); i++) {
    }
    if (i == c->naddrs) {
        return APR_SUCCESS; /* the usual case: one load per server */
    }
    apr_thread_mutex_lock(c->tend_lock);
    pr = __atomic_load_n(&c->proc, __ATOMIC_ACQUIRE);
    /* None made in this process yet (child_init to come), or it is going. */
    for (; pr && pr->process == process_id() && i < c->naddrs; i++) {
        s = &pr->servers[i];
        if (!dirty(s)) {
            continue;
        }
        /* Not held back by the retry interval: no request waits here. */
        if (__atomic_load_n(&s->down, __ATOMIC_ACQUIRE)) {
            conns_drain(s);
        }
        rv = journal_replay(s, p, REPLAY_MAX, &deleted);
        if (deleted) {
            server_ok(s); /* it answered */
            observe(s, 0);
        }
        /* Busy: another process replays, or no connection was free. */
        if (rv != APR_SUCCESS && rv != APR_EBUSY && !APR_STATUS_IS_EAGAIN(rv)) {
            server_failed(s, rv);
            observe(s, 1);
            ret = rv;
        }
    }
    apr_thread_mutex_unlock(c->tend_lock);
    return ret;
}

int bff_store_memcache_server_count(bff_store_t *st)
{
    return ((mc_ctx_t *)st->ctx)->naddrs;
}

const char *bff_store_memcache_server_name(bff_store_t *st, int i)
{
    mc_ctx_t *c = st->ctx;

    return i >= 0 && i < c->naddrs ? c->addrs[i].name : NULL;
}

int bff_store_memcache_server_up(bff_store_t *st, int i)
{
    mc_ctx_t *c = st->ctx;
    mc_proc_t *pr = __atomic_load_n(&c->proc, __ATOMIC_ACQUIRE);

    if (i < 0 || i >= c->naddrs) {
        return -1;
    }
    /* Not used yet in this process: not known to be down. */
    return !pr || !__atomic_load_n(&pr->servers[i].down, __ATOMIC_ACQUIRE);
}

/* ---- creation ---- */

static apr_status_t addr_parse(apr_pool_t *p, const char *s, apr_size_t len, mc_addr_t *a,
                               const char **err)
{
    apr_status_t rv;
    int ipv6 = 0;

    if (APR_SUCCESS != (rv = bff_store_server_parse(p, s, len, &a->host, &a->port, &ipv6, err))) {
        return rv;
    }
    if (ipv6) {
        *err = apr_psprintf(p,
                            "memcache server '%s': IPv6 addresses are not supported "
                            "(apr-util 1.6 connects to memcached over IPv4 only)",
                            apr_pstrmemdup(p, s, len));
        return APR_EINVAL;
    }
    a->name = apr_pstrmemdup(p, s, len);
    return APR_SUCCESS;
}

static apr_status_t addrs_parse(apr_pool_t *p, const char *list, mc_ctx_t *c, const char **err)
{
    const char *s = list, *comma;
    apr_size_t len;
    apr_status_t rv;
    int n = 1, i, j;

    for (comma = list; (comma = strchr(comma, ',')); comma++) {
        n++;
    }
    if (n > SERVERS_MAX) {
        *err = apr_psprintf(p, "memcache: at most %d servers", SERVERS_MAX);
        return APR_EINVAL;
    }
    c->addrs = apr_pcalloc(p, sizeof(*c->addrs) * (apr_size_t)n);
    for (i = 0; i < n; i++) {
        comma = strchr(s, ',');
        len = comma ? (apr_size_t)(comma - s) : strlen(s);
        if (len == 0) {
            *err = "memcache: empty server in list: expected host:port[,host:port...]";
            return APR_EINVAL;
        }
        if (APR_SUCCESS != (rv = addr_parse(p, s, len, &c->addrs[i], err))) {
            return rv;
        }
        for (j = 0; j < i; j++) {
            if (!strcmp(c->addrs[j].name, c->addrs[i].name)) {
                *err = apr_psprintf(p, "memcache: server %s is listed twice", c->addrs[i].name);
                return APR_EINVAL;
            }
        }
        s = comma ? comma + 1 : s + len;
    }
    c->naddrs = n;
    return APR_SUCCESS;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* 16 bits of MD5 over the server names, sorted (the listing order does not
 * place keys, so it must not change the id either), and the replicas; never
 * 0. Nodes with the same list agree on it; a change of the list changes it
 * (but for one in 65535). */
static apr_uint16_t ring_id_of(apr_pool_t *p, const char **names, int n, int replicas)
{
    const char **sorted = apr_pmemdup(p, names, sizeof(*names) * (apr_size_t)n);
    const char *all = apr_psprintf(p, "replicas=%d", replicas);
    unsigned char d[16];
    apr_uint16_t id;
    int i;

    qsort(sorted, (size_t)n, sizeof(*sorted), name_cmp);
    for (i = 0; i < n; i++) {
        all = apr_pstrcat(p, all, "\n", sorted[i], NULL);
    }
    bff_ketama_digest(all, strlen(all), d);
    id = (apr_uint16_t)(d[0] << 8 | d[1]);
    return id ? id : 1;
}

static apr_status_t ring_make(apr_pool_t *p, mc_ctx_t *c, const char **err)
{
    const char **hosts = apr_pcalloc(p, sizeof(*hosts) * (apr_size_t)c->naddrs);
    const char **names = apr_pcalloc(p, sizeof(*names) * (apr_size_t)c->naddrs);
    apr_port_t *ports = apr_pcalloc(p, sizeof(*ports) * (apr_size_t)c->naddrs);
    int i;

    if (c->o.replicas < 1 || c->o.replicas > c->naddrs) {
        *err = apr_psprintf(p, "memcache: replicas=%d: expected 1 to the number of servers (%d)",
                            c->o.replicas, c->naddrs);
        return APR_EINVAL;
    }
    for (i = 0; i < c->naddrs; i++) {
        hosts[i] = c->addrs[i].host;
        ports[i] = c->addrs[i].port;
        names[i] = c->addrs[i].name;
    }
    if (APR_SUCCESS != bff_ketama_create(p, c->naddrs, hosts, ports, names, &c->ring)) {
        *err = "memcache: cannot build the hash ring (is MD5 available in OpenSSL?)";
        return APR_EGENERAL;
    }
    if (c->o.replicas > 1) {
        c->ring_id = ring_id_of(p, names, c->naddrs, c->o.replicas);
    }
    return APR_SUCCESS;
}

static apr_status_t opts_check(const bff_store_memcache_opts_t *o, const char **err)
{
    if (o->conn_max < 1 || o->conn_max > 10000 || o->conn_min < 0 || o->conn_min > o->conn_smax
        || o->conn_smax > o->conn_max) {
        *err = "memcache: connection limits must satisfy 0 <= min <= smax <= max, max >= 1";
        return APR_EINVAL;
    }
    if (o->conn_ttl < 0) {
        *err = "memcache: connection TTL must not be negative";
        return APR_EINVAL;
    }
    if (o->op_timeout <= 0 || o->op_timeout > OP_TIMEOUT_MAX) {
        *err = "memcache: operation timeout must be more than 0 and at most 60 s";
        return APR_EINVAL;
    }
    if (o->retry_after < 0) {
        *err = "memcache: retry interval must not be negative";
        return APR_EINVAL;
    }
    if (o->max_item < 1 || o->max_item > ITEM_MAX) {
        *err = "memcache: maximum item size must be from 1 byte to 1 GiB";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

/* With replicas: the caller's journal (shared by a node's processes), else
 * one of this store's own (this process and its forks). */
static apr_status_t journal_attach(apr_pool_t *pool, mc_ctx_t *c, const char **err)
{
    apr_status_t rv;
    int i;

    if (c->o.replicas < 2) {
        return APR_SUCCESS;
    }
    c->journal = c->o.journal;
    if (!c->journal
        && APR_SUCCESS != (rv = bff_store_journal_create(pool, c->naddrs, NULL, &c->journal))) {
        *err = "memcache: cannot create the journal of missed writes";
        return rv;
    }
    c->jslot = apr_palloc(pool, sizeof(*c->jslot) * (apr_size_t)c->naddrs);
    for (i = 0; i < c->naddrs; i++) {
        /* -1 (a node-wide journal full of other servers' notes): its
         * missed writes are not noted, as when the journal overflows. */
        c->jslot[i] = bff_store_journal_slot(c->journal, c->addrs[i].name);
    }
    return APR_SUCCESS;
}

apr_status_t bff_store_memcache_create(apr_pool_t *pool, const char *servers,
                                       const bff_store_memcache_opts_t *o, bff_store_t **st,
                                       const char **err)
{
    apr_version_t v;
    mc_ctx_t *c;
    bff_store_t *s;
    apr_status_t rv;

    *st = NULL;
    *err = NULL;
    apu_version(&v);
    if (v.major != 1 || v.minor != 6) {
        *err = apr_psprintf(pool,
                            "memcache: apr-util %s is not supported: the memcache "
                            "store needs apr-util 1.6 to bound its waits on memcached",
                            apu_version_string());
        return APR_ENOTIMPL;
    }
    if (!servers || !*servers) {
        *err = "memcache: needs at least one server: expected host:port[,host:port...]";
        return APR_EINVAL;
    }
    c = apr_pcalloc(pool, sizeof(*c));
    c->pool = pool;
    if (o) {
        c->o = *o;
    }
    else {
        bff_store_memcache_opts_default(&c->o);
    }
    if (APR_SUCCESS != (rv = opts_check(&c->o, err))
        || APR_SUCCESS != (rv = addrs_parse(pool, servers, c, err))
        || APR_SUCCESS != (rv = ring_make(pool, c, err))) {
        return rv;
    }
    if (APR_SUCCESS != (rv = apr_thread_mutex_create(&c->init_lock, APR_THREAD_MUTEX_DEFAULT, pool))
        || APR_SUCCESS
               != (rv = apr_thread_mutex_create(&c->tend_lock, APR_THREAD_MUTEX_DEFAULT, pool))) {
        *err = "memcache: cannot create a mutex";
        return rv;
    }
    if (APR_SUCCESS != (rv = journal_attach(pool, c, err))) {
        return rv;
    }
    s = apr_pcalloc(pool, sizeof(*s));
    s->name = "memcache";
    s->ctx = c;
    s->child_init = mc_child_init;
    s->get = mc_get;
    s->set = mc_set;
    s->add = mc_add;
    s->replace = mc_replace;
    s->remove = mc_remove;
    /* No add_noevict: memcached evicts by its own LRU, within the slab
     * class of the item being stored (docs/security.md). */
    *st = s;
    return APR_SUCCESS;
}
