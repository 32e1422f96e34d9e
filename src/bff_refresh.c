/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * The single-flight token refresh (lock, waiters, failure marker, reload,
 * logout wins), httpd-free: the protocol is described in bff_refresh.h.
 * The glue (mod_bff_relay.c) supplies the session operations and the token
 * endpoint and maps the outcome to an answer; test/unit/test_refresh.c runs
 * it against the shm store with a fake clock and a fake provider.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <apr_strings.h>

#include "bff_ns.h"
#include "bff_refresh.h"
#include "bff_util.h"

/* Internal: the lock holder vanished without an answer; try to take it. */
#define OUTCOME_GAVE_UP ((bff_refresh_outcome_e)-1)
/* Internal: a narrower token's waiter saw the session's lock released
 * without its token (the holder refreshed another one): take the lock. */
#define OUTCOME_RETRY ((bff_refresh_outcome_e)-2)
/* How often a narrower token's request takes its turn at the session's
 * lock (each turn waits at least one poll; the deadline bounds them all). */
#define NARROW_TURNS (BFF_SESSION_MAX_TOKENS + 2)

/* One call's state: the configuration and the pool. */
typedef struct {
    const bff_refresh_t *rf;
    apr_pool_t *p;
    const char *handle; /* the lock's and failure marker's name */
    const bff_refresh_clock_t *clock;
    int narrow; /* rf->resource or rf->scope: a narrower token */
} run_t;

static apr_time_t real_now(void *baton)
{
    (void)baton;
    return apr_time_now();
}

static void real_sleep(void *baton, apr_interval_time_t t)
{
    (void)baton;
    apr_sleep(t);
}

const bff_refresh_clock_t *bff_refresh_clock_real(void)
{
    static const bff_refresh_clock_t real = { real_now, real_sleep, NULL };

    return &real;
}

static apr_time_t now_us(const run_t *x)
{
    return x->clock->now(x->clock->baton);
}

static apr_int64_t now_sec(const run_t *x)
{
    return (apr_int64_t)apr_time_sec(now_us(x));
}

/* Log lines go where the caller says (the glue: the request's log), else
 * to the core log hook. */
#define RLOG(x, level, rv, ...) \
    bff_log_emit_to((x)->rf->log, (x)->rf->log_baton, __FILE__, __LINE__, (level), (rv), \
                    __VA_ARGS__)

static int due(apr_int64_t refresh_before, apr_int64_t at_issued, apr_int64_t at_expires,
               apr_int64_t now)
{
    apr_int64_t window = refresh_before;

    /* Tokens that live shorter than twice the window would be refreshed on
     * every request: refresh those at half their lifetime instead. */
    if (at_issued && at_expires > at_issued && (at_expires - at_issued) / 2 < window) {
        window = (at_expires - at_issued) / 2;
    }
    return at_expires && now + window >= at_expires;
}

int bff_refresh_needed(apr_int64_t refresh_before, const bff_session_t *s, apr_int64_t now)
{
    return due(refresh_before, s->at_issued, s->at_expires, now);
}

int bff_refresh_token_needed(apr_int64_t refresh_before, bff_session_t *s, const char *resource,
                             const char *scope, apr_int64_t now)
{
    const bff_session_token_t *t = bff_session_token_find(s, resource, scope);

    return !t || due(refresh_before, t->at_issued, t->at_expires, now);
}

/* Whether the token this run is about is due (the default token, or the
 * narrower one of rf->resource and rf->scope). */
static int needed(const run_t *x, bff_session_t *s)
{
    if (x->narrow) {
        return bff_refresh_token_needed(x->rf->refresh_before, s, x->rf->resource, x->rf->scope,
                                        now_sec(x));
    }
    return bff_refresh_needed(x->rf->refresh_before, s, now_sec(x));
}

static int still_valid(const run_t *x, bff_session_t *s)
{
    const bff_session_token_t *t;

    if (x->narrow) {
        t = bff_session_token_find(s, x->rf->resource, x->rf->scope);
        return t && now_sec(x) < t->at_expires;
    }
    return now_sec(x) < s->at_expires;
}

/* ---- the failure marker ------------------------------------------- */

/* A refresh that failed at the provider leaves its answer in the store for
 * a few seconds: the requests that waited for it, and the next ones, answer
 * the same instead of each trying a provider that is down again. The value
 * is the HTTP status the answer had ("502", "504"), as nodes running an
 * older module read it. */
static const char *fail_key(const run_t *x)
{
    return bff_ns_key(x->p, x->rf->ring, BFF_NS_REFRESH_FAIL, 0, x->rf->site, x->handle);
}

static void fail_mark(const run_t *x, bff_refresh_outcome_e kind)
{
    const char *v = kind == BFF_REFRESH_PROVIDER_TIMEOUT ? "504" : "502";
    apr_int64_t ttl = x->rf->fail_ttl > 0 ? x->rf->fail_ttl : BFF_REFRESH_FAIL_TTL;

    /* add, not set: later failures must not stretch the window, or several
     * processes failing in turn would keep a recovered provider unused. */
    bff_store_add(x->rf->store, x->p, fail_key(x), (const unsigned char *)v, strlen(v),
                  now_sec(x) + ttl);
}

/* The marked failure, or 0 (the outcome enum has no 0 failure). */
static bff_refresh_outcome_e fail_status(const run_t *x)
{
    unsigned char *v;
    apr_size_t len;

    if (APR_SUCCESS != bff_store_get(x->rf->store, x->p, fail_key(x), &v, &len) || len != 3) {
        return 0;
    }
    if (!memcmp(v, "502", 3)) {
        return BFF_REFRESH_PROVIDER_DOWN;
    }
    if (!memcmp(v, "504", 3)) {
        return BFF_REFRESH_PROVIDER_TIMEOUT;
    }
    return 0;
}

/* ---- the lock holder ---------------------------------------------- */

/* Apply the token endpoint's answer to the session (we hold its lock). */
static void apply_grant(const run_t *x, bff_session_t *s, const bff_refresh_grant_t *g)
{
    apr_int64_t now = now_sec(x);

    /* A narrower token's refresh may bring an ID token of a narrower scope
     * too: verified (the same user), but the session keeps the login's. */
    if (g->id_token && !x->narrow) {
        s->id_token = g->id_token;
        if (g->claims) {
            s->claims = g->claims;
        }
    }
    if (g->refresh_token) {
        /* Rotation: the old refresh token is dropped in the same write
         * (for a narrower token too: the provider consumed it all the
         * same). */
        s->refresh_token = g->refresh_token;
    }
    s->last_access = now;
    if (x->narrow) {
        bff_session_token_t t;

        memset(&t, 0, sizeof(t));
        t.resource = x->rf->resource;
        t.scope = x->rf->scope;
        t.access_token = g->access_token;
        t.token_type = g->token_type;
        t.at_expires = g->expires_in > 0 ? now + g->expires_in : 0;
        t.at_issued = now;
        bff_session_token_put(s, &t);
        return;
    }
    s->access_token = g->access_token;
    s->token_type = g->token_type;
    s->at_expires = g->expires_in > 0 ? now + g->expires_in : 0;
    s->at_issued = now;
}

/* A failure at the provider: marked (unless it is this process's own
 * back-off), and the current token used while it lasts. */
static bff_refresh_outcome_e provider_failed(const run_t *x, bff_session_t *s, apr_status_t rv)
{
    bff_refresh_outcome_e kind = rv == APR_TIMEUP ? BFF_REFRESH_PROVIDER_TIMEOUT
                                                  : BFF_REFRESH_PROVIDER_DOWN;

    if (rv != APR_EAGAIN) {
        fail_mark(x, kind);
    }
    return still_valid(x, s) ? BFF_REFRESH_STILL_VALID : kind;
}

/* A refresh token the provider issued that no session record will hold. */
static void revoke_unused(const run_t *x, const bff_refresh_grant_t *g)
{
    const bff_refresh_endpoint_t *ep = x->rf->endpoint;

    if (g->refresh_token && ep->revoke) {
        ep->revoke(ep->baton, x->p, g->refresh_token);
    }
}

/* We hold the lock: call the token endpoint and store the result. */
static bff_refresh_outcome_e refresh_locked(const run_t *x, bff_session_t **s, apr_status_t *srv)
{
    const bff_refresh_session_ops_t *ops = x->rf->session;
    const bff_refresh_endpoint_t *ep = x->rf->endpoint;
    bff_refresh_grant_t g;
    bff_refresh_outcome_e marked;
    bff_session_t *fresh = NULL;
    const char *err = NULL;
    apr_status_t rv;
    int valid;

    rv = ops->reload(ops->baton, x->p, &fresh);
    if (rv == APR_NOTFOUND) {
        return BFF_REFRESH_SESSION_GONE;
    }
    if (rv != APR_SUCCESS) {
        *srv = rv;
        return BFF_REFRESH_STORE_DOWN;
    }
    *s = fresh;
    if (!needed(x, fresh)) {
        RLOG(x, BFF_LOG_DEBUG, 0,
             "BFF03232: refresh step reload: revision %" APR_UINT64_T_FMT " is no longer due "
             "(another request refreshed it meanwhile)",
             fresh->rev);
        return BFF_REFRESH_NOT_NEEDED; /* another request refreshed it meanwhile */
    }
    valid = still_valid(x, fresh);
    RLOG(x, BFF_LOG_DEBUG, 0,
         "BFF03233: refresh step reload: revision %" APR_UINT64_T_FMT " is due, its access "
         "token %s, refresh token %s",
         fresh->rev, valid ? "still valid" : "expired",
         fresh->refresh_token ? "present" : "absent");
    if (!fresh->refresh_token && x->narrow) {
        /* Without a refresh token no narrower token can be had; the session
         * itself stays (its default token still serves elsewhere). */
        if (valid) {
            return BFF_REFRESH_STILL_VALID;
        }
        RLOG(x, BFF_LOG_ERR, 0,
             "BFF02300: no token for resource %s, scope %s: the session has no "
             "refresh token (the provider issued none at login)",
             x->rf->resource ? x->rf->resource : "(none)", x->rf->scope ? x->rf->scope : "(none)");
        return BFF_REFRESH_PROVIDER_DOWN;
    }
    if (!fresh->refresh_token) {
        if (valid) {
            return BFF_REFRESH_STILL_VALID;
        }
        RLOG(x, BFF_LOG_INFO, 0,
             "BFF01402: access token expired and there is no refresh "
             "token: session ended");
        ops->end(ops->baton, x->p);
        return BFF_REFRESH_NO_REFRESH_TOKEN;
    }
    if (APR_SUCCESS != (rv = ep->prepare(ep->baton, x->p))) {
        return provider_failed(x, fresh, rv);
    }
    if (!valid && (marked = fail_status(x))) {
        return marked;
    }
    memset(&g, 0, sizeof(g));
    RLOG(x, BFF_LOG_DEBUG, 0, "BFF03234: refresh step call: presenting the refresh token at %s",
         ep->where ? ep->where(ep->baton) : "the token endpoint");
    rv = ep->call(ep->baton, x->p, fresh, &g, &err);
    if (rv != APR_SUCCESS) {
        RLOG(x, valid ? BFF_LOG_WARNING : BFF_LOG_ERR, rv,
             "BFF01403: token refresh at %s "
             "failed: %s%s",
             ep->where ? ep->where(ep->baton) : "the token endpoint", err ? err : "error",
             valid ? "; the current access token is still used" : "");
        return provider_failed(x, fresh, rv == APR_TIMEUP ? APR_TIMEUP : APR_EGENERAL);
    }
    switch (g.result) {
    case BFF_GRANT_INVALID:
        RLOG(x, BFF_LOG_INFO, 0,
             "BFF01404: the provider refused the refresh token "
             "(invalid_grant): session ended");
        ops->end(ops->baton, x->p);
        return BFF_REFRESH_GRANT_REVOKED;
    case BFF_GRANT_REFUSED:
        RLOG(x, BFF_LOG_ERR, 0, "BFF01405: token refresh refused: %s", g.error ? g.error : "error");
        fail_mark(x, BFF_REFRESH_PROVIDER_DOWN);
        return valid ? BFF_REFRESH_STILL_VALID : BFF_REFRESH_PROVIDER_DOWN;
    case BFF_GRANT_REJECTED:
        ops->end(ops->baton, x->p);
        revoke_unused(x, &g);
        return BFF_REFRESH_REJECTED;
    case BFF_GRANT_ISSUED:
        break;
    }
    apply_grant(x, fresh, &g);
    rv = ops->save(ops->baton, x->p, fresh);
    if (rv == APR_NOTFOUND) {
        /* A logout ended the session while the provider answered: it stays
         * ended, and the refresh token just issued must not stay valid
         * unused (the logout revoked its predecessor). */
        revoke_unused(x, &g);
        return BFF_REFRESH_SESSION_GONE;
    }
    if (rv != APR_SUCCESS) {
        /* The record keeps the refresh token the provider just consumed;
         * the one it issued instead is kept nowhere: revoke it rather than
         * leave a valid token that nothing will use. */
        revoke_unused(x, &g);
        *srv = rv;
        return BFF_REFRESH_STORE_DOWN;
    }
    RLOG(x, BFF_LOG_DEBUG, 0,
         "BFF03235: refresh step save: revision %" APR_UINT64_T_FMT " stored with the new "
         "access token (expires in %" APR_INT64_T_FMT " s), refresh token %s",
         fresh->rev, g.expires_in, g.refresh_token ? "rotated" : "kept");
    RLOG(x, BFF_LOG_DEBUG, 0, "BFF01406: access token refreshed");
    return BFF_REFRESH_REFRESHED;
}

/* ---- the waiters -------------------------------------------------- */

static int is_locked(const run_t *x, const char *lk)
{
    unsigned char *v;
    apr_size_t len;

    /* A store failure counts as locked: keep waiting, bounded. */
    return bff_store_get(x->rf->store, x->p, lk, &v, &len) != APR_NOTFOUND;
}

/* Someone else is refreshing: wait (bounded) for their result. */
static bff_refresh_outcome_e refresh_wait(const run_t *x, const char *lk, bff_session_t **s,
                                          apr_time_t deadline, apr_status_t *srv)
{
    const bff_refresh_session_ops_t *ops = x->rf->session;
    apr_interval_time_t poll = x->rf->poll > 0 ? x->rf->poll
                                               : apr_time_from_msec(BFF_REFRESH_POLL_MS);
    apr_uint64_t rev = (*s)->rev;
    bff_refresh_outcome_e marked;
    bff_session_t *fresh;
    apr_status_t rv;

    while (now_us(x) < deadline) {
        x->clock->sleep(x->clock->baton, poll);
        rv = ops->reload(ops->baton, x->p, &fresh);
        if (rv == APR_NOTFOUND) {
            return BFF_REFRESH_SESSION_GONE;
        }
        if (rv != APR_SUCCESS) {
            *srv = rv;
            return BFF_REFRESH_STORE_DOWN;
        }
        if (fresh->rev != rev) {
            *s = fresh;
            if (!needed(x, fresh)) {
                return BFF_REFRESH_WAITED;
            }
            rev = fresh->rev;
        }
        if (!is_locked(x, lk)) {
            /* The refresher gave up: take its answer rather than trying a
             * provider that just failed once more. */
            if (still_valid(x, *s)) {
                return BFF_REFRESH_STILL_VALID;
            }
            marked = fail_status(x);
            if (!marked && x->narrow) {
                /* The lock is the session's: its holder may have refreshed
                 * another token of this session. Our turn now. */
                return OUTCOME_RETRY;
            }
            return marked ? marked : OUTCOME_GAVE_UP;
        }
    }
    return still_valid(x, *s) ? BFF_REFRESH_STILL_VALID : BFF_REFRESH_WAIT_TIMEOUT;
}

/* ---- the entry point ---------------------------------------------- */

/* The lock and failure marker of a narrower token: the session's handle
 * (site-bound already) and a digest of (resource, scope), so that each
 * pair is refreshed on its own, single flight, on every node alike. An
 * absent value and an empty one differ. */
static const char *narrow_handle(apr_pool_t *p, const char *handle, const char *resource,
                                 const char *scope)
{
    const char *what = apr_psprintf(p, "%c%s\n%c%s", resource ? 'r' : '-', resource ? resource : "",
                                    scope ? 's' : '-', scope ? scope : "");
    unsigned char md[32];

    if (!handle || APR_SUCCESS != bff_util_sha256(what, strlen(what), md)) {
        return NULL;
    }
    return apr_pstrcat(p, handle, ".", bff_util_b64url_encode(p, md, 16), NULL);
}

static apr_status_t outcome_status(bff_refresh_outcome_e o, apr_status_t store_rv)
{
    switch (o) {
    case BFF_REFRESH_NOT_NEEDED:
    case BFF_REFRESH_REFRESHED:
    case BFF_REFRESH_WAITED:
    case BFF_REFRESH_STILL_VALID:
        return APR_SUCCESS;
    case BFF_REFRESH_PROVIDER_TIMEOUT:
    case BFF_REFRESH_WAIT_TIMEOUT:
        return APR_TIMEUP;
    case BFF_REFRESH_GRANT_REVOKED:
    case BFF_REFRESH_NO_REFRESH_TOKEN:
    case BFF_REFRESH_REJECTED:
    case BFF_REFRESH_SESSION_GONE:
        return APR_NOTFOUND;
    case BFF_REFRESH_STORE_DOWN:
        return store_rv != APR_SUCCESS ? store_rv : APR_EGENERAL;
    default:
        return APR_EGENERAL;
    }
}

apr_status_t bff_refresh_run(const bff_refresh_t *rf, apr_pool_t *p, const char *handle,
                             bff_session_t **s, bff_refresh_outcome_e *outcome)
{
    run_t x;
    const char *lk, *owner = NULL;
    apr_time_t deadline;
    apr_int64_t ttl = rf->lock_ttl > 0 ? rf->lock_ttl : BFF_REFRESH_LOCK_TTL;
    apr_status_t rv, store_rv = APR_SUCCESS;
    bff_refresh_outcome_e o = BFF_REFRESH_PROVIDER_DOWN;
    int attempt, turns = 0;

    x.rf = rf;
    x.p = p;
    x.narrow = rf->resource || rf->scope;
    /* A narrower token has a failure marker of its own (a resource the
     * provider refuses leaves the others alone), but the session's one
     * lock: every refresh presents the session's refresh token, and with
     * rotation two presented at once would spend it twice. */
    x.handle = x.narrow ? narrow_handle(p, handle, rf->resource, rf->scope) : handle;
    x.clock = rf->clock ? rf->clock : bff_refresh_clock_real();
    /* The same lock on every node, whatever its ring. */
    lk = bff_ns_key(p, rf->ring, BFF_NS_LOCK, 0, rf->site, handle);
    if (!lk || !x.handle) {
        *outcome = BFF_REFRESH_STORE_DOWN;
        return APR_EINVAL;
    }
    deadline = now_us(&x) + (rf->wait > 0 ? rf->wait : apr_time_from_msec(BFF_REFRESH_WAIT_MS));
    /* A second attempt only when the lock holder vanished without a word
     * (a crashed child): the wait is bounded from the start either way. */
    for (attempt = 0; attempt < 2; ++attempt) {
        rv = bff_store_lock_until(rf->store, p, lk, now_sec(&x) + ttl, &owner);
        if (rv == APR_SUCCESS) {
            RLOG(&x, BFF_LOG_DEBUG, 0,
                 "BFF03231: refresh step lock: this request holds the session's refresh "
                 "lock (for at most %" APR_INT64_T_FMT " s)",
                 ttl);
            o = refresh_locked(&x, s, &store_rv);
            if (bff_store_unlock(rf->store, p, lk, owner) == APR_NOTFOUND) {
                RLOG(&x, BFF_LOG_DEBUG, 0,
                     "BFF01470: the refresh lock was no longer this "
                     "request's (it outlived its TTL); left in place");
            }
            else {
                RLOG(&x, BFF_LOG_DEBUG, 0, "BFF03236: refresh step unlock: lock released");
            }
            break;
        }
        if (rv != APR_EEXIST) {
            o = BFF_REFRESH_STORE_DOWN;
            store_rv = rv;
            break;
        }
        RLOG(&x, BFF_LOG_DEBUG, 0,
             "BFF03237: refresh step wait: another request holds the refresh lock; waiting "
             "for its result");
        o = refresh_wait(&x, lk, s, deadline, &store_rv);
        if (o == OUTCOME_RETRY && ++turns < NARROW_TURNS) {
            --attempt; /* not a holder that vanished: our turn at the lock */
            continue;
        }
        if (o != OUTCOME_GAVE_UP) {
            break;
        }
    }
    if (o == OUTCOME_GAVE_UP || o == OUTCOME_RETRY) {
        o = still_valid(&x, *s) ? BFF_REFRESH_STILL_VALID : BFF_REFRESH_PROVIDER_DOWN;
    }
    *outcome = o;
    return outcome_status(o, store_rv);
}

const char *bff_refresh_outcome_name(bff_refresh_outcome_e outcome)
{
    static const char *const names[] = { "not needed",      "refreshed",     "waited for another",
                                         "still valid",     "provider down", "provider timeout",
                                         "wait timeout",    "grant revoked", "no refresh token",
                                         "answer rejected", "session gone",  "store down" };

    if ((int)outcome < 0 || (size_t)outcome >= sizeof(names) / sizeof(names[0])) {
        return "unknown";
    }
    return names[outcome];
}

bff_outcome_e bff_refresh_outcome_general(bff_refresh_outcome_e outcome)
{
    switch (outcome) {
    case BFF_REFRESH_NOT_NEEDED:
    case BFF_REFRESH_REFRESHED:
    case BFF_REFRESH_WAITED:
    case BFF_REFRESH_STILL_VALID:
        return BFF_OUTCOME_OK;
    case BFF_REFRESH_GRANT_REVOKED:
    case BFF_REFRESH_NO_REFRESH_TOKEN:
    case BFF_REFRESH_REJECTED:
    case BFF_REFRESH_SESSION_GONE:
        return BFF_OUTCOME_SESSION_ENDED;
    case BFF_REFRESH_PROVIDER_TIMEOUT:
    case BFF_REFRESH_WAIT_TIMEOUT:
        return BFF_OUTCOME_PROVIDER_TIMEOUT;
    case BFF_REFRESH_STORE_DOWN:
        return BFF_OUTCOME_STORE_DOWN;
    case BFF_REFRESH_PROVIDER_DOWN:
    default:
        return BFF_OUTCOME_PROVIDER_DOWN;
    }
}
