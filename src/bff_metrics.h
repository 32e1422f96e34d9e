/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the counters and gauges of SetHandler bff-status: one fixed block in shared memory,
 * incremented with relaxed atomics (no lock), rendered as Prometheus text or JSON.
 */
#ifndef BFF_METRICS_H
#define BFF_METRICS_H

#include <apr_pools.h>
#include <apr_errno.h>

#include "bff_outcome.h"
#include "bff_refresh.h"
#include "bff_store.h"

/* Why a callback was refused before the provider was asked anything (each
 * has its own log tag, named in docs/observability.md). */
typedef enum {
    BFF_M_CB_NO_QUERY = 0,     /* BFF00210 */
    BFF_M_CB_NO_STATE,         /* BFF00211 */
    BFF_M_CB_EXPIRED,          /* BFF00212 */
    BFF_M_CB_NOT_THIS_BROWSER, /* BFF00214 */
    BFF_M_CB_OTHER_SITE,       /* BFF00251 */
    BFF_M_CB_ISSUER_MISMATCH,  /* BFF00215 */
    BFF_M_CB_MISSING_ISS,      /* BFF00216 */
    BFF_M_CB_NO_CODE,          /* BFF00218 */
    BFF_M_CB_REPLAYED,         /* BFF00254 */
    BFF_M_CB_COUNT
} bff_m_callback_e;

/* The kind of token a relayed request went out with. */
typedef enum {
    BFF_M_RELAY_USER = 0, /* the session's (also a narrower one, BFFTokenResource) */
    BFF_M_RELAY_CLIENT,   /* the client's own (BFFTokenRelay client, user-or-client) */
    BFF_M_RELAY_NONE,     /* BFFTokenRelay optional without a session */
    BFF_M_RELAY_COUNT
} bff_m_relay_e;

#define BFF_METRICS_CACHE_LINE 64
/* Room for bff_refresh_outcome_e (12 values today) without a new layout. */
#define BFF_METRICS_REFRESH_MAX 16
/* Distinct BFFSessionStore values counted, and memcached servers in one. */
#define BFF_METRICS_STORES 8
#define BFF_METRICS_SERVERS 64
#define BFF_METRICS_SPEC_MAX 256

/* A counter alone on its cache line: the relay's counters are written by
 * every worker of every child, and must not share a line with each other or
 * with the rarely written ones. Aligned, so whatever comes before it in a
 * struct, it starts a line (bff_metrics_create puts the block on a line
 * boundary). */
typedef struct {
    _Alignas(BFF_METRICS_CACHE_LINE) apr_uint64_t v;
    char pad[BFF_METRICS_CACHE_LINE - sizeof(apr_uint64_t)];
} bff_metrics_line_t;

typedef enum { BFF_M_SERVER_UNKNOWN = 0, BFF_M_SERVER_UP = 1, BFF_M_SERVER_DOWN = 2 } bff_m_state_e;

/* One store (one distinct BFFSessionStore value). The slot is claimed at
 * start-up by its spec text, so a graceful restart with the same value
 * keeps counting in the same slot. */
typedef struct {
    char spec[BFF_METRICS_SPEC_MAX]; /* "shm:<bytes>" or the memcache server list; "" free */
    apr_uint32_t kind;               /* bff_store_kind_e */
    apr_uint32_t nservers;           /* memcache: servers in spec */
    apr_uint64_t generation;         /* the last start-up that used this slot */
    char pad[BFF_METRICS_CACHE_LINE - 16];
    bff_metrics_line_t ops_ok;    /* every store call: written by every request */
    bff_metrics_line_t ops_error; /* calls that failed (the store was unavailable) */
    /* Per memcached server (index = position in the configured list),
     * reported by the backend through bff_metrics_store_server(). */
    apr_uint64_t server_ok[BFF_METRICS_SERVERS];
    apr_uint64_t server_error[BFF_METRICS_SERVERS];
    apr_uint32_t server_state[BFF_METRICS_SERVERS]; /* bff_m_state_e */
} bff_metrics_store_t;

/* The whole block, in shared memory. A new layout changes the version:
 * a graceful restart into a module with another layout starts a new block. */
#define BFF_METRICS_MAGIC 0x62666d31u /* "bfm1" */
#define BFF_METRICS_VERSION 1u
typedef struct {
    apr_uint32_t magic, version;
    apr_uint64_t size;
    apr_int64_t started;     /* seconds since the epoch the block was made */
    apr_uint64_t generation; /* start-ups (bff_metrics_new_generation) */
    char pad0[BFF_METRICS_CACHE_LINE - 32];
    bff_metrics_line_t relay[BFF_M_RELAY_COUNT];
    bff_metrics_line_t csrf_refusals;
    /* Rare events (logins, refreshes, logouts): one line for all is fine. */
    apr_uint64_t logins_started, logins_completed;
    apr_uint64_t logins_failed[BFF_OUTCOME_COUNT];
    apr_uint64_t callbacks_refused[BFF_M_CB_COUNT];
    apr_uint64_t refreshes[BFF_METRICS_REFRESH_MAX];
    apr_uint64_t logouts;
    apr_uint64_t backchannel_ended, backchannel_sessions;
    apr_uint64_t backchannel_refused[BFF_OUTCOME_COUNT];
    bff_metrics_store_t stores[BFF_METRICS_STORES];
} bff_metrics_t;

/* One relaxed add: the counters are statistics, nothing is ordered by them. */
#define bff_metrics_add(p, n) ((void)__atomic_fetch_add((p), (n), __ATOMIC_RELAXED))

/* A block in an anonymous shared segment of pool (httpd: the process pool,
 * made once in the parent, inherited by every child; kept across graceful
 * restarts by the caller). */
apr_status_t bff_metrics_create(apr_pool_t *pool, bff_metrics_t **m);

/* Whether a block kept from an earlier load has this build's layout. */
int bff_metrics_compatible(const bff_metrics_t *m);

/* A start-up (httpd's post_config, in the parent): the slots that neither
 * it nor the one before claim may be given to another store. */
void bff_metrics_new_generation(bff_metrics_t *m);

/* The slot of the store spec (claimed when new: a free slot, else the one
 * unused for longest, if no start-up since the one before this used it,
 * with its counters back at zero); NULL when all are in use. */
bff_metrics_store_t *bff_metrics_store_slot(bff_metrics_t *m, const bff_store_spec_t *spec);

/* A store that counts every call of inner into slot (ok / error) and
 * passes it on unchanged: the same contract, the same statuses. */
bff_store_t *bff_metrics_store_counted(apr_pool_t *p, bff_store_t *inner,
                                       bff_metrics_store_t *slot);

/* For the memcache backend (through its observer callback): one operation
 * on the server at server_index (its position in the configured list),
 * failed or not; also marks the server up or down. Out-of-range indexes
 * are ignored. */
void bff_metrics_store_server(bff_metrics_store_t *slot, int server_index, int failed);

/* The increments the flows make. m may be NULL (no block): nothing. */
static inline void bff_metrics_relay(bff_metrics_t *m, bff_m_relay_e kind)
{
    if (m && (unsigned)kind < BFF_M_RELAY_COUNT) {
        bff_metrics_add(&m->relay[kind].v, 1);
    }
}
void bff_metrics_csrf_refused(bff_metrics_t *m);
void bff_metrics_login_started(bff_metrics_t *m);
void bff_metrics_login_completed(bff_metrics_t *m);
void bff_metrics_login_failed(bff_metrics_t *m, bff_outcome_e why);
void bff_metrics_callback_refused(bff_metrics_t *m, bff_m_callback_e why);
void bff_metrics_refresh(bff_metrics_t *m, bff_refresh_outcome_e outcome);
void bff_metrics_logout(bff_metrics_t *m);
void bff_metrics_backchannel_ended(bff_metrics_t *m, int sessions);
void bff_metrics_backchannel_refused(bff_metrics_t *m, bff_outcome_e why);

/* What the status page shows beside the counters: the stores of this
 * configuration, with the shm store's statistics when it is one. */
typedef struct {
    const bff_metrics_store_t *slot;
    const char *servers; /* memcache: the BFFSessionStore server list */
    int has_shm;
    apr_uint64_t shm_size, entries_used, entries_max, blocks_used, blocks_max;
    apr_uint64_t sessions, evictions, expired;
} bff_metrics_store_view_t;

typedef enum { BFF_METRICS_TEXT = 0, BFF_METRICS_JSON = 1 } bff_metrics_format_e;

/* The page: Prometheus text exposition format 0.0.4, or JSON with the same
 * families and samples ({"metrics": [{"name", "type", "help", "samples":
 * [{"labels": {...}, "value": n}]}]}). */
apr_status_t bff_metrics_render(apr_pool_t *p, const bff_metrics_t *m,
                                const bff_metrics_store_view_t *stores, int nstores,
                                bff_metrics_format_e format, const char **out);

/* The Content-Type of each format. */
const char *bff_metrics_content_type(bff_metrics_format_e format);

#endif /* BFF_METRICS_H */
