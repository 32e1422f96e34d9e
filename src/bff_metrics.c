/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the counters of SetHandler bff-status in one shared block (relaxed atomic adds, no
 * lock), a store that counts the calls of another, and the page in Prometheus text or JSON.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <jansson.h>

#include "bff_metrics.h"
#include "bff_util.h"

/* ---- the block ------------------------------------------------------ */

_Static_assert(sizeof(bff_metrics_line_t) == BFF_METRICS_CACHE_LINE, "one counter per line");
_Static_assert(offsetof(bff_metrics_t, stores) % BFF_METRICS_CACHE_LINE == 0
                   && offsetof(bff_metrics_store_t, ops_ok) % BFF_METRICS_CACHE_LINE == 0
                   && sizeof(bff_metrics_store_t) % BFF_METRICS_CACHE_LINE == 0,
               "the hot counters start cache lines");

apr_status_t bff_metrics_create(apr_pool_t *pool, bff_metrics_t **m)
{
    apr_shm_t *shm;
    bff_metrics_t *b;
    apr_status_t rv;
    apr_uintptr_t base;

    /* Anonymous: every child forked after this sees the same pages, at
     * the same address, without a file anyone else could open. APR keeps
     * the size at the start of such a segment, so its base address is not
     * on a cache line: a line more, and the block starts on the next one. */
    if (APR_SUCCESS
        != (rv = apr_shm_create(&shm, sizeof(*b) + BFF_METRICS_CACHE_LINE, NULL, pool))) {
        return rv;
    }
    base = (apr_uintptr_t)apr_shm_baseaddr_get(shm);
    b = (bff_metrics_t *)((base + BFF_METRICS_CACHE_LINE - 1)
                          & ~(apr_uintptr_t)(BFF_METRICS_CACHE_LINE - 1));
    memset(b, 0, sizeof(*b));
    b->magic = BFF_METRICS_MAGIC;
    b->version = BFF_METRICS_VERSION;
    b->size = sizeof(*b);
    b->started = bff_util_now();
    *m = b;
    return APR_SUCCESS;
}

int bff_metrics_compatible(const bff_metrics_t *m)
{
    return m && m->magic == BFF_METRICS_MAGIC && m->version == BFF_METRICS_VERSION
           && m->size == sizeof(*m);
}

static unsigned count_servers(const char *list)
{
    unsigned n = 1;

    for (; *list; ++list) {
        n += *list == ',';
    }
    return n;
}

void bff_metrics_new_generation(bff_metrics_t *m)
{
    if (m) {
        m->generation++;
    }
}

/* A slot the last two start-ups did not use, the oldest: children of the
 * one before may still be finishing their requests (a graceful restart)
 * and count into the slots it used, but none of an older one is left. */
static bff_metrics_store_t *reusable(bff_metrics_t *m)
{
    bff_metrics_store_t *best = NULL;
    int i;

    for (i = 0; i < BFF_METRICS_STORES; ++i) {
        bff_metrics_store_t *s = &m->stores[i];
        if (s->generation + 1 < m->generation && (!best || s->generation < best->generation)) {
            best = s;
        }
    }
    if (best) {
        memset(best, 0, sizeof(*best));
    }
    return best;
}

/* At start-up only (the parent, before any child): no concurrency. */
bff_metrics_store_t *bff_metrics_store_slot(bff_metrics_t *m, const bff_store_spec_t *spec)
{
    bff_metrics_store_t *s = NULL;
    char key[BFF_METRICS_SPEC_MAX];
    int i;

    if (!m) {
        return NULL;
    }
    if (spec->kind == BFF_STORE_MEMCACHE) {
        apr_snprintf(key, sizeof(key), "memcache:%s", spec->servers);
    }
    else {
        apr_snprintf(key, sizeof(key), "shm:%" APR_SIZE_T_FMT, spec->shm_size);
    }
    for (i = 0; i < BFF_METRICS_STORES && !s; ++i) {
        if (!strcmp(m->stores[i].spec, key)) {
            s = &m->stores[i];
        }
    }
    for (i = 0; i < BFF_METRICS_STORES && !s; ++i) {
        if (!m->stores[i].spec[0]) {
            s = &m->stores[i];
        }
    }
    if (!s && !(s = reusable(m))) {
        return NULL;
    }
    if (!s->spec[0]) {
        apr_cpystrn(s->spec, key, sizeof(s->spec));
        s->kind = (apr_uint32_t)spec->kind;
        s->nservers = spec->kind == BFF_STORE_MEMCACHE ? count_servers(spec->servers) : 0;
        if (s->nservers > BFF_METRICS_SERVERS) {
            s->nservers = BFF_METRICS_SERVERS;
        }
    }
    s->generation = m->generation;
    return s;
}

void bff_metrics_store_server(bff_metrics_store_t *slot, int server_index, int failed)
{
    apr_uint32_t state = failed ? BFF_M_SERVER_DOWN : BFF_M_SERVER_UP;

    if (!slot || server_index < 0 || server_index >= BFF_METRICS_SERVERS) {
        return;
    }
    bff_metrics_add(failed ? &slot->server_error[server_index] : &slot->server_ok[server_index], 1);
    /* A load first: most calls find the state unchanged and leave the
     * line shared. */
    if (__atomic_load_n(&slot->server_state[server_index], __ATOMIC_RELAXED) != state) {
        __atomic_store_n(&slot->server_state[server_index], state, __ATOMIC_RELAXED);
    }
}

void bff_metrics_csrf_refused(bff_metrics_t *m)
{
    if (m) {
        bff_metrics_add(&m->csrf_refusals.v, 1);
    }
}

void bff_metrics_login_started(bff_metrics_t *m)
{
    if (m) {
        bff_metrics_add(&m->logins_started, 1);
    }
}

void bff_metrics_login_completed(bff_metrics_t *m)
{
    if (m) {
        bff_metrics_add(&m->logins_completed, 1);
    }
}

void bff_metrics_login_failed(bff_metrics_t *m, bff_outcome_e why)
{
    if (m && (unsigned)why < BFF_OUTCOME_COUNT) {
        bff_metrics_add(&m->logins_failed[why], 1);
    }
}

void bff_metrics_callback_refused(bff_metrics_t *m, bff_m_callback_e why)
{
    if (m && (unsigned)why < BFF_M_CB_COUNT) {
        bff_metrics_add(&m->callbacks_refused[why], 1);
    }
}

void bff_metrics_refresh(bff_metrics_t *m, bff_refresh_outcome_e outcome)
{
    if (m && (unsigned)outcome < BFF_METRICS_REFRESH_MAX) {
        bff_metrics_add(&m->refreshes[outcome], 1);
    }
}

void bff_metrics_logout(bff_metrics_t *m)
{
    if (m) {
        bff_metrics_add(&m->logouts, 1);
    }
}

void bff_metrics_backchannel_ended(bff_metrics_t *m, int sessions)
{
    if (m) {
        bff_metrics_add(&m->backchannel_ended, 1);
        if (sessions > 0) {
            bff_metrics_add(&m->backchannel_sessions, (apr_uint64_t)sessions);
        }
    }
}

void bff_metrics_backchannel_refused(bff_metrics_t *m, bff_outcome_e why)
{
    if (m && (unsigned)why < BFF_OUTCOME_COUNT) {
        bff_metrics_add(&m->backchannel_refused[why], 1);
    }
}

/* ---- the counting store --------------------------------------------- */

typedef struct {
    bff_store_t *inner;
    bff_metrics_store_t *slot;
} counted_t;

/* The contract's answers are "ok" (the store worked, whatever it found);
 * anything else means it was unavailable. */
static apr_status_t counted(const bff_store_t *st, apr_status_t rv)
{
    const counted_t *c = st->ctx;

    switch (rv) {
    case APR_SUCCESS:
    case APR_NOTFOUND:
    case APR_EEXIST:
    case APR_ENOSPC:
        bff_metrics_add(&c->slot->ops_ok.v, 1);
        break;
    default:
        bff_metrics_add(&c->slot->ops_error.v, 1);
        break;
    }
    return rv;
}

#define INNER(st) (((counted_t *)(st)->ctx)->inner)

static apr_status_t c_get(bff_store_t *st, apr_pool_t *p, const char *key, unsigned char **val,
                          apr_size_t *len)
{
    return counted(st, bff_store_get(INNER(st), p, key, val, len));
}

static apr_status_t c_set(bff_store_t *st, apr_pool_t *p, const char *key, const unsigned char *val,
                          apr_size_t len, apr_int64_t expires)
{
    return counted(st, bff_store_set(INNER(st), p, key, val, len, expires));
}

static apr_status_t c_add(bff_store_t *st, apr_pool_t *p, const char *key, const unsigned char *val,
                          apr_size_t len, apr_int64_t expires)
{
    return counted(st, bff_store_add(INNER(st), p, key, val, len, expires));
}

static apr_status_t c_replace(bff_store_t *st, apr_pool_t *p, const char *key,
                              const unsigned char *val, apr_size_t len, apr_int64_t expires)
{
    return counted(st, bff_store_replace(INNER(st), p, key, val, len, expires));
}

static apr_status_t c_remove(bff_store_t *st, apr_pool_t *p, const char *key)
{
    return counted(st, bff_store_remove(INNER(st), p, key));
}

static apr_status_t c_add_noevict(bff_store_t *st, apr_pool_t *p, const char *key,
                                  const unsigned char *val, apr_size_t len, apr_int64_t expires)
{
    return counted(st, INNER(st)->add_noevict(INNER(st), p, key, val, len, expires));
}

bff_store_t *bff_metrics_store_counted(apr_pool_t *p, bff_store_t *inner, bff_metrics_store_t *slot)
{
    bff_store_t *st;
    counted_t *c;

    if (!slot) {
        return inner;
    }
    st = apr_pcalloc(p, sizeof(*st));
    c = apr_pcalloc(p, sizeof(*c));
    c->inner = inner;
    c->slot = slot;
    st->name = inner->name;
    st->ctx = c;
    /* The backend's own child_init runs on the backend's object (the
     * start-up code keeps those); this one has nothing of its own. */
    st->child_init = NULL;
    st->get = c_get;
    st->set = c_set;
    st->add = c_add;
    st->replace = c_replace;
    st->remove = c_remove;
    /* NULL stays NULL: bff_store_add_noevict then falls back to add. */
    st->add_noevict = inner->add_noevict ? c_add_noevict : NULL;
    return st;
}

/* ---- the page ------------------------------------------------------- */

typedef struct {
    const char *k[3], *v[3];
    double value;
} sample_t;

typedef struct {
    const char *name, *type, *help;
    apr_array_header_t *samples; /* sample_t */
} family_t;

typedef struct {
    apr_pool_t *p;
    apr_array_header_t *families; /* family_t */
} page_t;

static family_t *family(page_t *pg, const char *name, const char *type, const char *help)
{
    family_t *f = apr_array_push(pg->families);

    f->name = name;
    f->type = type;
    f->help = help;
    f->samples = apr_array_make(pg->p, 8, sizeof(sample_t));
    return f;
}

static apr_uint64_t load(const apr_uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

/* A sample with up to three labels (NULL names end the list). One with
 * the same labels as an earlier one adds to it: two stores may report
 * under the same labels (two shm sizes, a server in two lists). */
static void sample(family_t *f, double value, const char *k1, const char *v1, const char *k2,
                   const char *v2, const char *k3, const char *v3)
{
    sample_t *s;
    int i, j;

    for (i = 0; i < f->samples->nelts; ++i) {
        s = &APR_ARRAY_IDX(f->samples, i, sample_t);
        for (j = 0; j < 3; ++j) {
            const char *k = j == 0 ? k1 : j == 1 ? k2 : k3, *v = j == 0 ? v1 : j == 1 ? v2 : v3;
            if ((!k) != (!s->k[j]) || (k && (strcmp(k, s->k[j]) || strcmp(v, s->v[j])))) {
                break;
            }
        }
        if (j == 3) {
            s->value += value;
            return;
        }
    }
    s = apr_array_push(f->samples);
    memset(s, 0, sizeof(*s));
    s->k[0] = k1;
    s->v[0] = v1;
    s->k[1] = k1 ? k2 : NULL;
    s->v[1] = v2;
    s->k[2] = k1 && k2 ? k3 : NULL;
    s->v[2] = v3;
    s->value = value;
}

/* The outcomes a login can fail with, and a back-channel logout be
 * refused with (bff_outcome_name). */
static const bff_outcome_e login_fail[] = {
    BFF_OUTCOME_BAD_REQUEST,      BFF_OUTCOME_STORE_DOWN,       BFF_OUTCOME_STORE_FULL,
    BFF_OUTCOME_PROVIDER_DOWN,    BFF_OUTCOME_PROVIDER_TIMEOUT, BFF_OUTCOME_PROVIDER_DENIED,
    BFF_OUTCOME_PROVIDER_INVALID, BFF_OUTCOME_NOT_CONFIGURED,   BFF_OUTCOME_INTERNAL
};
static const bff_outcome_e backchannel_refuse[] = { BFF_OUTCOME_BAD_REQUEST,
                                                    BFF_OUTCOME_PROVIDER_DOWN,
                                                    BFF_OUTCOME_STORE_DOWN };

static const char *const callback_names[BFF_M_CB_COUNT] = {
    "no_query",        "no_state",    "expired", "not_this_browser", "other_site",
    "issuer_mismatch", "missing_iss", "no_code", "replayed"
};

/* bff_refresh_outcome_e, in its order. */
static const char *const refresh_names[] = {
    "not_needed",       "ok",       "waited",       "still_valid",
    "provider_error",   "timeout",  "wait_timeout", "invalid_grant",
    "no_refresh_token", "rejected", "session_gone", "store_down"
};

_Static_assert(sizeof(refresh_names) / sizeof(refresh_names[0]) == BFF_REFRESH_STORE_DOWN + 1,
               "a name for every bff_refresh_outcome_e");
_Static_assert(BFF_REFRESH_STORE_DOWN < BFF_METRICS_REFRESH_MAX, "room for every refresh outcome");

static const char *const relay_names[BFF_M_RELAY_COUNT] = { "user", "client", "none" };

#define NELTS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void flow_families(page_t *pg, const bff_metrics_t *m)
{
    family_t *f;
    int i;

    f = family(pg, "bff_logins_total", "counter",
               "Logins: started (sent to the provider), completed (session made), failed "
               "(by reason: the outcome the browser was answered with).");
    sample(f, (double)load(&m->logins_started), "outcome", "started", NULL, NULL, NULL, NULL);
    sample(f, (double)load(&m->logins_completed), "outcome", "completed", NULL, NULL, NULL, NULL);
    for (i = 0; i < NELTS(login_fail); ++i) {
        sample(f, (double)load(&m->logins_failed[login_fail[i]]), "outcome", "failed", "reason",
               bff_outcome_name(login_fail[i]), NULL, NULL);
    }
    f = family(pg, "bff_callbacks_refused_total", "counter",
               "Callbacks refused before the provider was asked anything, by reason.");
    for (i = 0; i < BFF_M_CB_COUNT; ++i) {
        sample(f, (double)load(&m->callbacks_refused[i]), "reason", callback_names[i], NULL, NULL,
               NULL, NULL);
    }
    f = family(pg, "bff_refreshes_total", "counter",
               "Access token refreshes by outcome (waited: another request refreshed it).");
    for (i = 0; i < NELTS(refresh_names) && i < BFF_METRICS_REFRESH_MAX; ++i) {
        sample(f, (double)load(&m->refreshes[i]), "outcome", refresh_names[i], NULL, NULL, NULL,
               NULL);
    }
    f = family(pg, "bff_csrf_refusals_total", "counter",
               "Requests refused by the CSRF check (403).");
    sample(f, (double)load(&m->csrf_refusals.v), NULL, NULL, NULL, NULL, NULL, NULL);
    f = family(pg, "bff_relay_requests_total", "counter",
               "Requests relayed to mod_proxy, by the token they carried.");
    for (i = 0; i < BFF_M_RELAY_COUNT; ++i) {
        sample(f, (double)load(&m->relay[i].v), "token", relay_names[i], NULL, NULL, NULL, NULL);
    }
    f = family(pg, "bff_logouts_total", "counter", "Sessions ended by the user (/bff/logout).");
    sample(f, (double)load(&m->logouts), NULL, NULL, NULL, NULL, NULL, NULL);
    f = family(pg, "bff_backchannel_logouts_total", "counter",
               "Back-channel logout requests: ended (accepted), refused (by reason).");
    sample(f, (double)load(&m->backchannel_ended), "outcome", "ended", NULL, NULL, NULL, NULL);
    for (i = 0; i < NELTS(backchannel_refuse); ++i) {
        sample(f, (double)load(&m->backchannel_refused[backchannel_refuse[i]]), "outcome",
               "refused", "reason", bff_outcome_name(backchannel_refuse[i]), NULL, NULL);
    }
    f = family(pg, "bff_backchannel_logout_sessions_total", "counter",
               "Sessions ended by back-channel logouts.");
    sample(f, (double)load(&m->backchannel_sessions), NULL, NULL, NULL, NULL, NULL, NULL);
}

/* The n-th "host:port" of a server list, or "" past its end. */
static const char *server_name(apr_pool_t *p, const char *list, unsigned n)
{
    const char *c;

    for (; list && n; --n) {
        list = strchr(list, ',');
        list = list ? list + 1 : NULL;
    }
    if (!list) {
        return "";
    }
    c = strchr(list, ',');
    return c ? apr_pstrndup(p, list, (apr_size_t)(c - list)) : list;
}

static void store_families(page_t *pg, const bff_metrics_store_view_t *v, int n)
{
    family_t *ops, *sops, *up, *g[8];
    double used = 0, max = 0, bused = 0, bmax = 0;
    int i, shm = 0;
    unsigned k;

    ops = family(pg, "bff_store_operations_total", "counter",
                 "Session store calls by backend and result (error: the store was unavailable). "
                 "server is empty: the whole store.");
    sops = family(pg, "bff_memcache_server_operations_total", "counter",
                  "memcached calls per server (as its position in BFFSessionStore names it).");
    up = family(pg, "bff_memcache_server_up", "gauge",
                "1 while the last call to the memcached server worked, 0 after a failure.");
    for (i = 0; i < n; ++i) {
        const bff_metrics_store_t *s = v[i].slot;
        const char *backend = s->kind == BFF_STORE_MEMCACHE ? "memcache" : "shm";
        sample(ops, (double)load(&s->ops_ok.v), "backend", backend, "server", "", "result", "ok");
        sample(ops, (double)load(&s->ops_error.v), "backend", backend, "server", "", "result",
               "error");
        for (k = 0; s->kind == BFF_STORE_MEMCACHE && k < s->nservers; ++k) {
            const char *name = server_name(pg->p, v[i].servers, k);
            apr_uint32_t st = __atomic_load_n(&s->server_state[k], __ATOMIC_RELAXED);
            sample(sops, (double)load(&s->server_ok[k]), "server", name, "result", "ok", NULL,
                   NULL);
            sample(sops, (double)load(&s->server_error[k]), "server", name, "result", "error", NULL,
                   NULL);
            if (st != BFF_M_SERVER_UNKNOWN) {
                sample(up, st == BFF_M_SERVER_UP, "server", name, NULL, NULL, NULL, NULL);
            }
        }
    }
    g[0] = family(pg, "bff_shm_store_sessions", "gauge", "Live sessions in the shm store.");
    g[1] = family(pg, "bff_shm_store_entries", "gauge",
                  "Entries in the shm store: sessions, indexes, locks, markers.");
    g[2] = family(pg, "bff_shm_store_entries_max", "gauge", "Entries the shm store can hold.");
    g[3] = family(pg, "bff_shm_store_blocks_used", "gauge",
                  "Value blocks in use in the shm store.");
    g[4] = family(pg, "bff_shm_store_blocks_max", "gauge", "Value blocks the shm store has.");
    g[5] = family(pg, "bff_shm_store_fill_ratio", "gauge",
                  "The fuller of entries and blocks, 0 to 1; at 1 the least recently used "
                  "sessions are evicted.");
    g[6] = family(pg, "bff_shm_store_evictions_total", "counter",
                  "Live entries evicted from the shm store to make room.");
    g[7] = family(pg, "bff_shm_store_expired_total", "counter",
                  "Expired entries reclaimed in the shm store.");
    for (i = 0; i < n; ++i) {
        if (!v[i].has_shm) {
            continue;
        }
        shm = 1;
        sample(g[0], (double)v[i].sessions, NULL, NULL, NULL, NULL, NULL, NULL);
        sample(g[1], (double)v[i].entries_used, NULL, NULL, NULL, NULL, NULL, NULL);
        sample(g[2], (double)v[i].entries_max, NULL, NULL, NULL, NULL, NULL, NULL);
        sample(g[3], (double)v[i].blocks_used, NULL, NULL, NULL, NULL, NULL, NULL);
        sample(g[4], (double)v[i].blocks_max, NULL, NULL, NULL, NULL, NULL, NULL);
        sample(g[6], (double)v[i].evictions, NULL, NULL, NULL, NULL, NULL, NULL);
        sample(g[7], (double)v[i].expired, NULL, NULL, NULL, NULL, NULL, NULL);
        used += (double)v[i].entries_used;
        max += (double)v[i].entries_max;
        bused += (double)v[i].blocks_used;
        bmax += (double)v[i].blocks_max;
    }
    if (shm) {
        double fe = max > 0 ? used / max : 0, fb = bmax > 0 ? bused / bmax : 0;
        sample(g[5], fe > fb ? fe : fb, NULL, NULL, NULL, NULL, NULL, NULL);
    }
}

/* Prometheus 0.0.4: label values escape \, " and newline; HELP escapes \
 * and newline. */
static const char *escape(apr_pool_t *p, const char *s, int quote)
{
    apr_size_t n = 0;
    const char *c;
    char *out, *o;

    for (c = s; *c; ++c) {
        n += (*c == '\\' || *c == '\n' || (quote && *c == '"')) ? 2 : 1;
    }
    o = out = apr_palloc(p, n + 1);
    for (c = s; *c; ++c) {
        if (*c == '\\' || (quote && *c == '"')) {
            *o++ = '\\';
            *o++ = *c;
        }
        else if (*c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        }
        else {
            *o++ = *c;
        }
    }
    *o = '\0';
    return out;
}

static const char *number(apr_pool_t *p, double v)
{
    apr_uint64_t whole, frac;
    char *out, *end;

    /* Counters and most gauges are integers: no exponent for them. */
    if (v == (double)(apr_uint64_t)v && v < 9007199254740992.0) {
        return apr_psprintf(p, "%" APR_UINT64_T_FMT, (apr_uint64_t)v);
    }
    if (!(v >= 0 && v < 9007199254740992.0)) {
        return "NaN"; /* none of ours is negative or that large */
    }
    /* Six decimals by integer arithmetic: apr's %g drops the leading zero
     * and libc's follows the locale's decimal point. */
    whole = (apr_uint64_t)v;
    frac = (apr_uint64_t)((v - (double)whole) * 1e6 + 0.5);
    if (frac >= 1000000) {
        whole++;
        frac -= 1000000;
    }
    out = apr_psprintf(p, "%" APR_UINT64_T_FMT ".%06" APR_UINT64_T_FMT, whole, frac);
    for (end = out + strlen(out) - 1; *end == '0'; --end) {
        *end = '\0';
    }
    if (*end == '.') {
        *end = '\0';
    }
    return out;
}

static const char *render_text(page_t *pg)
{
    apr_array_header_t *out = apr_array_make(pg->p, 256, sizeof(const char *));
    int i, j, k;

    for (i = 0; i < pg->families->nelts; ++i) {
        const family_t *f = &APR_ARRAY_IDX(pg->families, i, family_t);
        if (!f->samples->nelts) {
            continue;
        }
        APR_ARRAY_PUSH(out, const char *) = apr_psprintf(pg->p, "# HELP %s %s\n# TYPE %s %s\n",
                                                         f->name, escape(pg->p, f->help, 0),
                                                         f->name, f->type);
        for (j = 0; j < f->samples->nelts; ++j) {
            const sample_t *s = &APR_ARRAY_IDX(f->samples, j, sample_t);
            const char *labels = "";
            for (k = 0; k < 3 && s->k[k]; ++k) {
                labels = apr_psprintf(pg->p, "%s%s%s=\"%s\"", labels, k ? "," : "{", s->k[k],
                                      escape(pg->p, s->v[k], 1));
            }
            APR_ARRAY_PUSH(out, const char *) = apr_psprintf(pg->p, "%s%s%s %s\n", f->name, labels,
                                                             k ? "}" : "", number(pg->p, s->value));
        }
    }
    return apr_array_pstrcat(pg->p, out, 0);
}

static json_t *json_value(double v)
{
    if (v == (double)(apr_uint64_t)v && v < 9007199254740992.0) {
        return json_integer((json_int_t)v);
    }
    return json_real(v);
}

static const char *render_json(page_t *pg)
{
    json_t *root = json_object(), *list = json_array();
    const char *out = NULL;
    char *txt;
    int i, j, k;

    json_object_set_new(root, "metrics", list);
    for (i = 0; i < pg->families->nelts; ++i) {
        const family_t *f = &APR_ARRAY_IDX(pg->families, i, family_t);
        json_t *jf, *samples;
        if (!f->samples->nelts) {
            continue;
        }
        jf = json_object();
        samples = json_array();
        json_object_set_new(jf, "name", json_string(f->name));
        json_object_set_new(jf, "type", json_string(f->type));
        json_object_set_new(jf, "help", json_string(f->help));
        json_object_set_new(jf, "samples", samples);
        for (j = 0; j < f->samples->nelts; ++j) {
            const sample_t *s = &APR_ARRAY_IDX(f->samples, j, sample_t);
            json_t *js = json_object(), *labels = json_object();
            for (k = 0; k < 3 && s->k[k]; ++k) {
                json_object_set_new(labels, s->k[k], json_string(s->v[k]));
            }
            json_object_set_new(js, "labels", labels);
            json_object_set_new(js, "value", json_value(s->value));
            json_array_append_new(samples, js);
        }
        json_array_append_new(list, jf);
    }
    if ((txt = json_dumps(root, JSON_COMPACT))) {
        out = apr_pstrcat(pg->p, txt, "\n", NULL);
        free(txt);
    }
    json_decref(root);
    return out;
}

apr_status_t bff_metrics_render(apr_pool_t *p, const bff_metrics_t *m,
                                const bff_metrics_store_view_t *stores, int nstores,
                                bff_metrics_format_e format, const char **out)
{
    page_t pg;
    family_t *f;

    pg.p = p;
    pg.families = apr_array_make(p, 32, sizeof(family_t));
    f = family(&pg, "bff_metrics_created_seconds", "gauge",
               "When these counters started (seconds since the epoch): a graceful restart keeps "
               "them, a full restart starts them again.");
    sample(f, (double)m->started, NULL, NULL, NULL, NULL, NULL, NULL);
    flow_families(&pg, m);
    store_families(&pg, stores, nstores);
    *out = format == BFF_METRICS_JSON ? render_json(&pg) : render_text(&pg);
    return *out ? APR_SUCCESS : APR_ENOMEM;
}

const char *bff_metrics_content_type(bff_metrics_format_e format)
{
    return format == BFF_METRICS_JSON ? "application/json"
                                      : "text/plain; version=0.0.4; charset=utf-8";
}
