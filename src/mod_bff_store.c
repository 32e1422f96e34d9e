/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: one store per distinct BFFSessionStore: shm segments, their mutex and the random
 * fallback key in httpd's retained data (they survive a graceful restart), memcache clients per
 * configuration generation; the per-site key ring.
 */
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <ap_mpm.h>
#include <util_mutex.h>
#include <unixd.h>
#include <mod_watchdog.h>

#include "mod_bff.h"
#include "mod_bff_site.h"
#include "mod_bff_store.h"
#include "mod_bff_status.h"
#include "bff_metrics.h"
#include "bff_ns.h"
#include "bff_store_journal.h"
#include "bff_store_ketama.h"
#include "bff_store_memcache.h"
#include "bff_store_shm.h"
#include "bff_util.h"

#define BFF_MUTEX_TYPE "bff-shm"
#define BFF_RETAINED_STORES "mod_bff-stores"
#define BFF_WATCHDOG_NAME "_bff_journal_"
#define BFF_RETAINED_KEY "mod_bff-random-key"

/* One store per distinct spec, kept across restarts in the process pool. */
typedef struct retained_store_t {
    struct retained_store_t *next;
    const char *spec;
    int replicas;
    bff_store_t *store;
} retained_store_t;

typedef struct {
    retained_store_t *stores;
    /* The memcache stores' journal of missed writes (replicas only): in
     * shared memory, kept across restarts like the shm store's segment, so
     * that what a server missed is undone also by the next generation. */
    bff_store_journal_t *journal;
} retained_stores_t;

typedef struct {
    unsigned char key[32];
    int made;
} retained_key_t;

apr_status_t bff_glue_store_pre_config(apr_pool_t *pconf)
{
    return ap_mutex_register(pconf, BFF_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
}

static retained_stores_t *retained_stores(void)
{
    retained_stores_t *rs = ap_retained_data_get(BFF_RETAINED_STORES);

    if (!rs) {
        rs = ap_retained_data_create(BFF_RETAINED_STORES, sizeof(*rs));
    }
    return rs;
}

/* Does a Mutex directive anywhere in the configuration name this type? */
static int mutex_named(apr_pool_t *p, const ap_directive_t *d, const char *type)
{
    for (; d; d = d->next) {
        if (!strcasecmp(d->directive, "Mutex") && d->args) {
            const char *args = d->args, *w;
            (void)ap_getword_conf(p, &args); /* the mechanism */
            while (*(w = ap_getword_conf(p, &args))) {
                if (!strcasecmp(w, type)) {
                    return 1;
                }
            }
        }
        if (d->first_child && mutex_named(p, d->first_child, type)) {
            return 1;
        }
    }
    return 0;
}

/* Debian's stock apache2.conf says "Mutex file:${APACHE_LOCK_DIR} default",
 * which would make the store lock an fcntl() lock: two system calls and the
 * kernel's lock table on every store operation, a few percent of a relayed
 * request. The store holds its lock for microseconds and never across I/O,
 * so unless a Mutex directive names bff-shm itself it takes APR's default
 * mechanism (process-shared pthread mutex on Linux) rather than the
 * server-wide default. */
static apr_status_t store_mutex_create(server_rec *s, apr_pool_t *pp, const char *instance,
                                       apr_global_mutex_t **m)
{
    apr_status_t rv;

    if (mutex_named(pp, ap_conftree, BFF_MUTEX_TYPE)) {
        return ap_global_mutex_create(m, NULL, BFF_MUTEX_TYPE, instance, s, pp, 0);
    }
    if (APR_SUCCESS != (rv = apr_global_mutex_create(m, NULL, APR_LOCK_DEFAULT, pp))) {
        return rv;
    }
    /* Needed where the default is a SysV semaphore: children run as User. */
    if (APR_SUCCESS != (rv = ap_unixd_set_global_mutex_perms(*m))) {
        apr_global_mutex_destroy(*m);
        return rv;
    }
    return APR_SUCCESS;
}

/* This generation's shm store objects (bff_store_shm_bind), for child_init. */
static retained_store_t *generation_shm;

/* The segment is retained across restarts; the object that calls into it
 * is made again for this load of the module (bff_store_shm_bind). */
static apr_status_t shm_bound(apr_pool_t *pconf, retained_store_t *e, bff_store_t **st)
{
    retained_store_t *g;

    for (g = generation_shm; g; g = g->next) {
        if (!strcmp(g->spec, e->spec)) {
            *st = g->store;
            return APR_SUCCESS;
        }
    }
    g = apr_pcalloc(pconf, sizeof(*g));
    g->spec = e->spec;
    g->store = *st = bff_store_shm_bind(pconf, e->store);
    g->next = generation_shm;
    generation_shm = g;
    return APR_SUCCESS;
}

static apr_status_t shm_store_get(apr_pool_t *pconf, server_rec *s, const bff_store_spec_t *spec,
                                  bff_store_t **st)
{
    retained_stores_t *rs = retained_stores();
    apr_pool_t *pp = s->process->pool;
    const char *key = apr_psprintf(pp, "shm:%" APR_SIZE_T_FMT, spec->shm_size);
    retained_store_t *e;
    apr_global_mutex_t *mutex;
    apr_status_t rv;

    for (e = rs->stores; e; e = e->next) {
        if (!strcmp(e->spec, key)) {
            return shm_bound(pconf, e, st);
        }
    }
    rv = store_mutex_create(s, pp, NULL, &mutex);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     "BFF00401: cannot create the session "
                     "store mutex; check the Mutex directive for " BFF_MUTEX_TYPE);
        return rv;
    }
    rv = bff_store_shm_create(pp, spec->shm_size, mutex, st);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     "BFF00402: cannot create the "
                     "shared-memory session store of %" APR_SIZE_T_FMT " bytes",
                     spec->shm_size);
        return rv;
    }
    e = apr_pcalloc(pp, sizeof(*e));
    e->spec = key;
    e->store = *st;
    e->next = rs->stores;
    rs->stores = e;
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 "BFF00403: shared-memory session store of "
                 "%" APR_SIZE_T_FMT " bytes created (lock: %s)",
                 spec->shm_size, apr_global_mutex_name(mutex));
    return shm_bound(pconf, e, st);
}

static apr_status_t keyring_setup(apr_pool_t *pconf, server_rec *s, bff_site_t *site)
{
    const apr_array_header_t *keys = site->conf->crypto_keys;
    apr_status_t rv;
    int i;

    if (APR_SUCCESS != (rv = bff_crypto_keyring_create(pconf, &site->keyring))) {
        return rv;
    }
    /* Keys of this site's own (HKDF context): virtual hosts that share a
     * secret (inherited, or the retained random one) and a store cannot
     * open each other's records. */
    if (!(site->binding = bff_ns_site(pconf, site->origin, site->client_id))) {
        return APR_EINVAL;
    }
    if (keys && keys->nelts) {
        for (i = 0; i < keys->nelts; ++i) {
            const bff_secret_t *k = &APR_ARRAY_IDX(keys, i, bff_secret_t);
            if (APR_SUCCESS
                != (rv = bff_crypto_keyring_add_ctx(site->keyring, k->data, k->len,
                                                    site->binding))) {
                ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "BFF00407: BFFCryptoKey #%d %s", i + 1,
                             rv == APR_EEXIST ? "repeats an earlier key" : "cannot be used");
                return rv;
            }
        }
        return APR_SUCCESS;
    }
    else {
        /* Kept in retained data so a graceful restart does not lose sessions. */
        retained_key_t *rk = ap_retained_data_get(BFF_RETAINED_KEY);
        if (!rk) {
            rk = ap_retained_data_create(BFF_RETAINED_KEY, sizeof(*rk));
        }
        if (!rk->made) {
            if (APR_SUCCESS != (rv = bff_util_random(rk->key, sizeof(rk->key)))) {
                return rv;
            }
            rk->made = 1;
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                         "BFF00404: no BFFCryptoKey "
                         "configured: using a random key; sessions will not survive a "
                         "full restart of httpd");
        }
        return bff_crypto_keyring_add_ctx(site->keyring, rk->key, sizeof(rk->key), site->binding);
    }
}

/* memcache clients belong to one configuration generation: no shared state
 * to keep, and each child opens its own connections. */
static retained_store_t *generation_stores;

/* The node's journal: one for every memcache store with replicas, its slots
 * named after the servers, so that what a server missed is still undone after
 * the server list changed. */
static apr_status_t journal_get(server_rec *s, const bff_store_spec_t *spec,
                                bff_store_journal_t **out)
{
    retained_stores_t *rs = retained_stores();
    apr_pool_t *pp = s->process->pool;
    apr_global_mutex_t *mutex;
    apr_status_t rv;

    if (rs->journal) {
        *out = rs->journal;
        return APR_SUCCESS;
    }
    if (APR_SUCCESS != (rv = store_mutex_create(s, pp, "journal", &mutex))
        || APR_SUCCESS != (rv = bff_store_journal_create(pp, BFF_KETAMA_SERVERS_MAX, mutex, out))) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     "BFF00411: cannot create the journal of missed writes (shared memory and "
                     "a mutex) for the memcache session store %s",
                     spec->servers);
        return rv;
    }
    rs->journal = *out;
    return APR_SUCCESS;
}

/* The memcache backend's observer: per-server rows of the status page. */
static void observe_server(void *baton, int server, int failed)
{
    bff_metrics_store_server(baton, server, failed);
}

static apr_status_t memcache_store_get(apr_pool_t *pconf, server_rec *s,
                                       const bff_store_spec_t *spec, bff_store_t **st)
{
    bff_store_memcache_opts_t o;
    retained_store_t *e;
    const char *err = NULL;
    int threads = 0;
    apr_status_t rv;

    for (e = generation_stores; e; e = e->next) {
        if (!strcmp(e->spec, spec->servers) && e->replicas == spec->replicas) {
            *st = e->store;
            return APR_SUCCESS;
        }
    }
    bff_store_memcache_opts_default(&o);
    o.replicas = spec->replicas;
    /* The slot of this spec, as count_calls finds it (the same one). */
    o.observe_baton = bff_metrics_store_slot(bff_glue_metrics(), spec);
    o.observe = o.observe_baton ? observe_server : NULL;
    if (spec->replicas > 1 && APR_SUCCESS != (rv = journal_get(s, spec, &o.journal))) {
        return rv;
    }
    /* memcached's 1m item limit also counts the key and the item header. */
    o.max_item = 1024 * 1024 - 4096;
    /* One connection per worker thread and server is enough never to wait. */
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) == APR_SUCCESS && threads > 0) {
        /* and, with replicas, one for the journal's watchdog thread */
        o.conn_smax = o.conn_max = threads + (spec->replicas > 1);
    }
    else {
        o.conn_smax = o.conn_max = 1 + (spec->replicas > 1);
    }
    rv = bff_store_memcache_create(pconf, spec->servers, &o, st, &err);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     "BFF00408: cannot set up the memcache "
                     "session store %s: %s",
                     spec->servers, err ? err : "error");
        return rv;
    }
    e = apr_pcalloc(pconf, sizeof(*e));
    e->spec = spec->servers;
    e->replicas = spec->replicas;
    e->store = *st;
    e->next = generation_stores;
    generation_stores = e;
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 "BFF00409: memcache session store on %s, %d replica(s) per entry", spec->servers,
                 spec->replicas);
    return APR_SUCCESS;
}

/* This generation's counted stores (one per distinct BFFSessionStore), for
 * the status page. */
typedef struct counted_store_t {
    struct counted_store_t *next;
    bff_metrics_store_t *slot;
    bff_store_t *inner;
    const bff_store_spec_t *spec;
} counted_store_t;
static counted_store_t *generation_counted;

static apr_status_t generation_reset(void *data)
{
    generation_stores = NULL;
    generation_shm = NULL;
    generation_counted = NULL;
    return APR_SUCCESS;
}

void bff_glue_store_post_config(apr_pool_t *pconf)
{
    generation_stores = NULL;
    generation_shm = NULL;
    generation_counted = NULL;
    apr_pool_cleanup_register(pconf, NULL, generation_reset, apr_pool_cleanup_null);
}

/* The site's store counts its calls (bff-status) into the slot of its
 * BFFSessionStore value, the same slot after a graceful restart. */
static void count_calls(apr_pool_t *pconf, server_rec *s, const bff_store_spec_t *spec,
                        bff_site_t *site)
{
    bff_metrics_store_t *slot = bff_metrics_store_slot(bff_glue_metrics(), spec);
    counted_store_t *c;

    if (!slot) {
        if (bff_glue_metrics()) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "BFF03103: more than %d distinct BFFSessionStore values in this and "
                         "the previous start-up: the calls of this one are not counted on the "
                         "status page",
                         BFF_METRICS_STORES);
        }
        return;
    }
    for (c = generation_counted; c && c->slot != slot; c = c->next) {
    }
    if (!c) {
        c = apr_pcalloc(pconf, sizeof(*c));
        c->slot = slot;
        c->inner = site->store;
        c->spec = spec;
        c->next = generation_counted;
        generation_counted = c;
    }
    site->store = bff_metrics_store_counted(pconf, site->store, slot);
}

apr_status_t bff_glue_store_setup(apr_pool_t *pconf, server_rec *s, bff_site_t *site)
{
    const bff_store_spec_t *spec = bff_conf_store_spec(site->conf);
    apr_status_t rv;

    if (APR_SUCCESS != (rv = keyring_setup(pconf, s, site))) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     "BFF00405: cannot set up the "
                     "session encryption keys");
        return rv;
    }
    if (spec->kind == BFF_STORE_MEMCACHE) {
        rv = memcache_store_get(pconf, s, spec, &site->store);
    }
    else {
        rv = shm_store_get(pconf, s, spec, &site->store);
    }
    if (rv == APR_SUCCESS) {
        count_calls(pconf, s, spec, site);
    }
    return rv;
}

void bff_glue_store_views(apr_pool_t *p, bff_metrics_store_view_t **views, int *n)
{
    const counted_store_t *c;
    bff_metrics_store_view_t *v;
    int i = 0;

    for (c = generation_counted; c; c = c->next) {
        ++i;
    }
    *views = v = apr_pcalloc(p, sizeof(*v) * (apr_size_t)(i ? i : 1));
    for (c = generation_counted; c; c = c->next, ++v) {
        bff_store_shm_stats_t st;
        v->slot = c->slot;
        v->servers = c->spec->servers;
        if (c->spec->kind == BFF_STORE_SHM && APR_SUCCESS == bff_store_shm_stats(c->inner, &st)
            && APR_SUCCESS == bff_store_shm_count_live(c->inner, "s:", &v->sessions)) {
            v->has_shm = 1;
            v->shm_size = st.size;
            v->entries_used = st.entries_used;
            v->entries_max = st.entries_max;
            v->blocks_used = st.blocks_used;
            v->blocks_max = st.blocks_max;
            v->evictions = st.evictions;
            v->expired = st.expired;
        }
    }
    *n = i;
}

/* With replicas, what a memcached server missed is undone on it before this
 * node reads it again; a node that sends it nothing would never do it, and
 * the other nodes could read the old copies. A watchdog thread in every child
 * tends this generation's journals every second (one replays at a time, see
 * bff_store_journal_claim). Not mod_watchdog's singleton: behind a file-based
 * Mutex (Debian's default) the next generation's singleton waits for the old
 * one's child to exit, then 10 s more, after every graceful restart. */
static apr_status_t journal_tend(int state, void *data, apr_pool_t *pool)
{
    retained_store_t *e;

    if (state != AP_WATCHDOG_STATE_RUNNING) {
        return APR_SUCCESS;
    }
    for (e = data; e; e = e->next) {
        if (e->replicas > 1) {
            bff_store_memcache_tend(e->store, pool);
        }
    }
    /* Anything else would stop the callbacks for good. */
    return APR_SUCCESS;
}

apr_status_t bff_glue_store_watchdog(apr_pool_t *pconf, server_rec *s)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) * get_instance;
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) * register_callback;
    ap_watchdog_t *wd;
    retained_store_t *e;
    apr_status_t rv;

    for (e = generation_stores; e && e->replicas < 2; e = e->next) {
    }
    if (!e) {
        return APR_SUCCESS;
    }
    get_instance = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    register_callback = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    if (!get_instance || !register_callback) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "BFF00412: mod_watchdog is not loaded: with replicas, a memcached server "
                     "back from an outage is cleaned of what it missed only when this node "
                     "next uses it (other nodes may read old copies meanwhile); load "
                     "mod_watchdog (docs/deployment.md)");
        return APR_SUCCESS;
    }
    if (APR_SUCCESS != (rv = get_instance(&wd, BFF_WATCHDOG_NAME, 0, 0, pconf))
        || APR_SUCCESS
               != (rv = register_callback(wd, apr_time_from_sec(1), generation_stores,
                                          journal_tend))) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     "BFF00413: cannot start the watchdog that tends the memcache store's "
                     "journal of missed writes");
        return rv;
    }
    return APR_SUCCESS;
}

void bff_glue_store_child_init(apr_pool_t *pchild, server_rec *s)
{
    retained_store_t *e;
    apr_status_t rv;

    /* This generation's objects: a retained one's function pointers may
     * point into the module as an earlier generation loaded it. */
    for (e = generation_shm; e; e = e->next) {
        if (e->store->child_init && APR_SUCCESS != (rv = e->store->child_init(e->store, pchild))) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                         "BFF00406: cannot attach the "
                         "session store in this child");
        }
    }
    for (e = generation_stores; e; e = e->next) {
        if (e->store->child_init && APR_SUCCESS != (rv = e->store->child_init(e->store, pchild))) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                         "BFF00410: cannot set up the "
                         "memcache client in this child");
        }
    }
}
