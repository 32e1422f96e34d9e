/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * The refresh protocol (src/bff_refresh.c) against the real shm store, a
 * fake clock (which also decides the store's expiry) and a fake token
 * endpoint: single flight, a dead lock holder, the failure window, refresh
 * token rotation, a logout that wins. Each runs in milliseconds: waiting is
 * fake time, except where 50 threads really wait on each other.
 */
#include "unit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_global_mutex.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "bff_crypto.h"
#include "bff_ns.h"
#include "bff_refresh.h"
#include "bff_session.h"
#include "bff_store.h"
#include "bff_store_shm.h"

/* ---- the fake clock ---------------------------------------------- */

/* Fake time in microseconds. Single-threaded tests: a sleep advances it.
 * The threaded test: a sleep really sleeps a little and leaves it. */
static apr_time_t fake_now;
static int threaded;
static volatile apr_uint32_t sleepers; /* threads that have waited at least once */
static __thread int has_slept;
static void (*on_sleep)(void); /* single-threaded tests: runs at each poll */
static apr_int64_t lock_ttl;   /* the refresh lock's TTL; 0: the default */

static apr_time_t clock_now(void *baton)
{
    (void)baton;
    return __atomic_load_n(&fake_now, __ATOMIC_SEQ_CST);
}

static void clock_sleep(void *baton, apr_interval_time_t t)
{
    (void)baton;
    if (threaded) {
        if (!has_slept) {
            has_slept = 1;
            __atomic_add_fetch(&sleepers, 1, __ATOMIC_SEQ_CST);
        }
        apr_sleep(2000);
        return;
    }
    fake_now += t;
    /* A waiter that never stops would spin here for ever. */
    if (fake_now > apr_time_from_sec(2000000000)) {
        fail_msg("a waiter kept waiting past any deadline");
    }
    if (on_sleep) {
        on_sleep();
    }
}

static const bff_refresh_clock_t fake_clock = { clock_now, clock_sleep, NULL };

static apr_int64_t fake_sec(void)
{
    return (apr_int64_t)apr_time_sec(clock_now(NULL));
}

static apr_int64_t shm_clock(void *baton)
{
    (void)baton;
    return fake_sec();
}

static void advance(apr_int64_t sec)
{
    fake_now += apr_time_from_sec(sec);
}

/* ---- the world: a store, a session record, a provider ------------- */

#define SITE_ORIGIN "https://app.example"
#define SESSION_ID "the-session-cookie-value"
#define MAX_SEEN 64

typedef struct {
    apr_pool_t *p;
    bff_store_t *st;
    bff_keyring_t *ring;
    const char *site;
    const char *handle;
    const char *skey; /* the record's store key */

    /* the fake provider */
    apr_thread_mutex_t *mx;
    apr_uint32_t calls;
    const char *current_rt;  /* the one refresh token it accepts */
    const char *previous_rt; /* ... and this one, when grace is on */
    int grace;               /* accept the previous one too (reuse interval) */
    int rotate;
    int reject; /* issue tokens, then have the glue refuse them */
    int serial;
    apr_status_t prepare_rv;
    apr_status_t call_rv; /* transport failure */
    void (*on_call)(void);
    const char *seen[MAX_SEEN];     /* refresh tokens presented, in order */
    const char *seen_for[MAX_SEEN]; /* ... and for which resource */
    const char *refuse_for;         /* a resource the provider refuses */
    int nseen;
    const char *revoked[MAX_SEEN];
    int nrevoked;

    /* the session operations */
    int save_fail; /* the next save fails (store down) */
    void (*on_save)(void);
} world_t;

static world_t W;

/* The record is the session's plain encoding: sealing it is the sessions
 * service's business, not the refresh's (and OpenSSL's per-thread contexts
 * would outlive the test's threads). */
static apr_status_t rec_reload(void *baton, apr_pool_t *p, bff_session_t **fresh)
{
    unsigned char *rec;
    apr_size_t len;
    apr_status_t rv;

    (void)baton;
    rv = bff_store_get(W.st, p, W.skey, &rec, &len);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = bff_session_decode(p, (const char *)rec, len, fresh);
    return rv == APR_SUCCESS ? APR_SUCCESS : APR_NOTFOUND;
}

static apr_status_t rec_write(apr_pool_t *p, bff_session_t *s, int create)
{
    char *rec;
    apr_size_t len;
    apr_status_t rv;

    rv = bff_session_encode(p, s, &rec, &len);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* As the glue: a replace, so a removed record is never brought back. */
    return create
               ? bff_store_add(W.st, p, W.skey, (unsigned char *)rec, len, fake_sec() + 3600)
               : bff_store_replace(W.st, p, W.skey, (unsigned char *)rec, len, fake_sec() + 3600);
}

static apr_status_t rec_save(void *baton, apr_pool_t *p, bff_session_t *s)
{
    (void)baton;
    if (W.on_save) {
        void (*hook)(void) = W.on_save;
        W.on_save = NULL;
        hook();
    }
    if (W.save_fail) {
        W.save_fail = 0;
        return APR_EGENERAL;
    }
    s->rev++;
    return rec_write(p, s, 0);
}

static void rec_end(void *baton, apr_pool_t *p)
{
    (void)baton;
    bff_store_remove(W.st, p, W.skey);
}

static apr_status_t ep_prepare(void *baton, apr_pool_t *p)
{
    (void)baton;
    (void)p;
    return W.prepare_rv;
}

static apr_status_t ep_call(void *baton, apr_pool_t *p, const bff_session_t *s,
                            bff_refresh_grant_t *g, const char **err)
{
    const char *rt = s->refresh_token;
    int n;

    (void)baton;
    apr_thread_mutex_lock(W.mx);
    __atomic_add_fetch(&W.calls, 1, __ATOMIC_SEQ_CST);
    if (W.nseen < MAX_SEEN) {
        W.seen_for[W.nseen] = baton ? apr_pstrdup(W.p, baton) : "(default)";
        W.seen[W.nseen++] = rt ? apr_pstrdup(W.p, rt) : "(none)";
    }
    apr_thread_mutex_unlock(W.mx);
    if (W.on_call) {
        W.on_call();
    }
    if (W.call_rv != APR_SUCCESS) {
        *err = "no answer";
        return W.call_rv;
    }
    apr_thread_mutex_lock(W.mx);
    if (!rt
        || (strcmp(rt, W.current_rt)
            && !(W.grace && W.previous_rt && !strcmp(rt, W.previous_rt)))) {
        apr_thread_mutex_unlock(W.mx);
        g->result = BFF_GRANT_INVALID;
        return APR_SUCCESS;
    }
    if (baton && W.refuse_for && !strcmp(baton, W.refuse_for)) {
        /* The provider does not know this resource (RFC 8707: invalid_target). */
        apr_thread_mutex_unlock(W.mx);
        g->result = BFF_GRANT_REFUSED;
        g->error = "invalid_target";
        return APR_SUCCESS;
    }
    n = ++W.serial;
    g->result = BFF_GRANT_ISSUED;
    /* A narrower token names what it is for (the baton: its resource). */
    g->access_token = baton ? apr_psprintf(p, "%s#at-%d", (const char *)baton, n)
                            : apr_psprintf(p, "at-%d", n);
    g->token_type = "Bearer";
    g->expires_in = 60;
    if (W.rotate) {
        W.previous_rt = W.current_rt;
        W.current_rt = apr_psprintf(W.p, "rt-%d", n);
        g->refresh_token = apr_pstrdup(p, W.current_rt);
    }
    if (W.reject) {
        /* The glue refused the refreshed ID token: nothing to apply, but
         * the refresh token was issued. */
        g->result = BFF_GRANT_REJECTED;
        g->access_token = NULL;
    }
    apr_thread_mutex_unlock(W.mx);
    return APR_SUCCESS;
}

static void ep_revoke(void *baton, apr_pool_t *p, const char *rt)
{
    (void)baton;
    (void)p;
    if (W.nrevoked < MAX_SEEN) {
        W.revoked[W.nrevoked++] = apr_pstrdup(W.p, rt);
    }
}

static const char *ep_where(void *baton)
{
    (void)baton;
    return "https://op.example/token";
}

static const bff_refresh_session_ops_t OPS = { rec_reload, rec_save, rec_end, NULL };
static const bff_refresh_endpoint_t EP = { ep_prepare, ep_call, ep_revoke, ep_where, NULL };

static bff_refresh_t refresher(void)
{
    bff_refresh_t rf;

    memset(&rf, 0, sizeof(rf));
    rf.store = W.st;
    rf.ring = W.ring;
    rf.site = W.site;
    rf.refresh_before = 30;
    rf.lock_ttl = lock_ttl;
    rf.clock = &fake_clock;
    rf.session = &OPS;
    rf.endpoint = &EP;
    return rf;
}

static const char *lock_key(apr_pool_t *p)
{
    return bff_ns_key(p, W.ring, BFF_NS_LOCK, 0, W.site, W.handle);
}

/* A session whose access token expired (or expires in `left` seconds). */
static void put_session(apr_int64_t left, const char *rt)
{
    bff_session_t s;

    memset(&s, 0, sizeof(s));
    s.iss = "https://op.example";
    s.sub = "alice";
    s.access_token = "at-0";
    s.token_type = "Bearer";
    s.refresh_token = rt;
    s.logout_id = "logout-id";
    s.created = fake_sec() - 100;
    s.last_access = s.created;
    s.at_issued = fake_sec() - 100;
    s.at_expires = fake_sec() + left;
    s.expires = fake_sec() + 86400;
    bff_store_remove(W.st, W.p, W.skey);
    assert_int_equal(rec_write(W.p, &s, 1), APR_SUCCESS);
}

static bff_session_t *load(apr_pool_t *p)
{
    bff_session_t *s = NULL;

    assert_int_equal(rec_reload(NULL, p, &s), APR_SUCCESS);
    return s;
}

/* One request's refresh: load, then run. */
static apr_status_t run(apr_pool_t *p, bff_refresh_outcome_e *o, bff_session_t **out)
{
    bff_refresh_t rf = refresher();
    bff_session_t *s = load(p);
    apr_status_t rv = bff_refresh_run(&rf, p, W.handle, &s, o);

    if (out) {
        *out = s;
    }
    return rv;
}

static int setup(void **state)
{
    apr_global_mutex_t *m;
    apr_pool_t *p;

    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return -1;
    }
    *state = p;
    memset(&W, 0, sizeof(W));
    W.p = p;
    threaded = 0;
    sleepers = 0;
    on_sleep = NULL;
    lock_ttl = 0;
    /* Whole seconds, so that the store's expiry (seconds) is exact. */
    fake_now = apr_time_from_sec(apr_time_sec(apr_time_now()));
    if (apr_global_mutex_create(&m, NULL, APR_LOCK_DEFAULT, p) != APR_SUCCESS
        || bff_store_shm_create(p, (apr_size_t)1024 * 1024, m, &W.st) != APR_SUCCESS
        || bff_crypto_keyring_create(p, &W.ring) != APR_SUCCESS
        || bff_crypto_keyring_add(W.ring, "refresh test secret 1234567890", 30) != APR_SUCCESS
        || apr_thread_mutex_create(&W.mx, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        return -1;
    }
    bff_store_shm_set_clock(W.st, shm_clock, NULL);
    W.site = bff_ns_site(p, SITE_ORIGIN, "client");
    W.handle = bff_ns_handle(p, W.site, SESSION_ID);
    W.skey = bff_ns_key(p, W.ring, BFF_NS_SESSION, 0, W.site, W.handle);
    W.current_rt = "rt-0";
    W.rotate = 1;
    W.prepare_rv = APR_SUCCESS;
    W.call_rv = APR_SUCCESS;
    return 0;
}

static int teardown(void **state)
{
    apr_pool_destroy((apr_pool_t *)*state);
    return 0;
}

/* ---- 50 waiters -> one provider call ------------------------------ */

#define NTHREADS 50

typedef struct {
    apr_status_t rv;
    bff_refresh_outcome_e o;
    char *at;
} result_t;

static volatile int go;
static result_t results[NTHREADS];

static void *APR_THREAD_FUNC request_thread(apr_thread_t *t, void *data)
{
    result_t *res = data;
    bff_refresh_t rf = refresher();
    bff_session_t *s = NULL;
    apr_pool_t *p;

    apr_pool_create_unmanaged_ex(&p, NULL, NULL);
    while (!__atomic_load_n(&go, __ATOMIC_SEQ_CST)) {
        apr_sleep(1000);
    }
    res->rv = rec_reload(NULL, p, &s);
    if (res->rv == APR_SUCCESS) {
        res->rv = bff_refresh_run(&rf, p, W.handle, &s, &res->o);
        res->at = strdup(s->access_token ? s->access_token : "");
    }
    apr_pool_destroy(p);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

/* The provider answers only once every other request is waiting (bounded
 * generously: on a loaded machine a thread may start late; the assertions
 * then say so). */
static void hold_until_all_wait(void)
{
    apr_time_t until = apr_time_now() + apr_time_from_sec(60);

    while (__atomic_load_n(&sleepers, __ATOMIC_SEQ_CST) < NTHREADS - 1 && apr_time_now() < until) {
        apr_sleep(1000);
    }
}

static void test_fifty_waiters_one_call(void **state)
{
    apr_pool_t *p = *state;
    apr_thread_t *th[NTHREADS];
    apr_status_t trv;
    int i, refreshed = 0, waited = 0;

    put_session(-1, "rt-0");
    threaded = 1;
    go = 0;
    W.on_call = hold_until_all_wait;
    memset(results, 0, sizeof(results));
    for (i = 0; i < NTHREADS; i++) {
        assert_int_equal(apr_thread_create(&th[i], NULL, request_thread, &results[i], p),
                         APR_SUCCESS);
    }
    __atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
    for (i = 0; i < NTHREADS; i++) {
        apr_thread_join(&trv, th[i]);
    }
    threaded = 0;
    /* All but the holder waited for it... */
    assert_int_equal(sleepers, NTHREADS - 1);
    /* ...and the provider was asked once. */
    assert_int_equal(W.calls, 1);
    assert_int_equal(W.nseen, 1);
    assert_string_equal(W.seen[0], "rt-0");
    for (i = 0; i < NTHREADS; i++) {
        assert_int_equal(results[i].rv, APR_SUCCESS);
        refreshed += results[i].o == BFF_REFRESH_REFRESHED;
        waited += results[i].o == BFF_REFRESH_WAITED;
        /* Every request relays the one new token. */
        assert_string_equal(results[i].at, "at-1");
        free(results[i].at);
    }
    assert_int_equal(refreshed, 1);
    assert_int_equal(waited, NTHREADS - 1);
    assert_string_equal(load(p)->refresh_token, "rt-1");
}

/* ---- narrower tokens: single flight per (resource, scope) ---------- */

#define RES_A "https://a.example/"
#define RES_B "https://b.example/"

static bff_refresh_endpoint_t ep_for(const char *resource)
{
    bff_refresh_endpoint_t ep = EP;
    union {
        const char *c;
        void *v;
    } u;

    u.c = resource; /* the fake provider only reads it */
    ep.baton = u.v;
    return ep;
}

/* One request for the narrower token of resource (with scope): load, run,
 * and the token it would relay. */
static apr_status_t run_narrow(apr_pool_t *p, const char *resource, const char *scope,
                               bff_refresh_outcome_e *o, const char **at)
{
    bff_refresh_endpoint_t ep = ep_for(resource);
    bff_refresh_t rf = refresher();
    bff_session_t *s = NULL;
    const bff_session_token_t *t;
    apr_status_t rv;

    rf.endpoint = &ep;
    rf.resource = resource;
    rf.scope = scope;
    rv = rec_reload(NULL, p, &s);
    if (rv == APR_SUCCESS) {
        rv = bff_refresh_run(&rf, p, W.handle, &s, o);
    }
    t = s ? bff_session_token_find(s, resource, scope) : NULL;
    *at = t ? t->access_token : NULL;
    return rv;
}

typedef struct {
    const char *resource;
    result_t r;
} narrow_job_t;

/* Plain pthreads returning from their function, as in test_clienttoken.c:
 * the lock name of a narrower token is a digest (OpenSSL's per-thread
 * state), which apr_thread_exit's pthread_exit frees in an order
 * AddressSanitizer refuses. */
static void *narrow_thread(void *data)
{
    narrow_job_t *job = data;
    const char *at = NULL;
    apr_pool_t *p;

    apr_pool_create_unmanaged_ex(&p, NULL, NULL);
    while (!__atomic_load_n(&go, __ATOMIC_SEQ_CST)) {
        apr_sleep(1000);
    }
    job->r.rv = run_narrow(p, job->resource, NULL, &job->r.o, &at);
    job->r.at = strdup(at ? at : "");
    apr_pool_destroy(p);
    return NULL;
}

/* 50 requests at once, for the resources of resource_of(i). */
static void fifty_narrow(apr_pool_t *p, narrow_job_t *jobs, const char *(*resource_of)(int))
{
    pthread_t th[NTHREADS];
    int i;

    (void)p;
    threaded = 1;
    go = 0;
    W.on_call = hold_until_all_wait;
    for (i = 0; i < NTHREADS; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].resource = resource_of(i);
        assert_int_equal(pthread_create(&th[i], NULL, narrow_thread, &jobs[i]), 0);
    }
    __atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
    for (i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
    }
    threaded = 0;
}

static const char *only_a(int i)
{
    (void)i;
    return RES_A;
}

static const char *a_or_b(int i)
{
    return i % 2 ? RES_B : RES_A;
}

static void test_narrow_fifty_one_call(void **state)
{
    apr_pool_t *p = *state;
    narrow_job_t jobs[NTHREADS];
    bff_session_t *s;
    int i, refreshed = 0;

    /* The default token is fresh: only the resource's token is missing. */
    put_session(600, "rt-0");
    fifty_narrow(p, jobs, only_a);
    assert_int_equal(W.calls, 1);
    assert_string_equal(W.seen_for[0], RES_A);
    for (i = 0; i < NTHREADS; i++) {
        assert_int_equal(jobs[i].r.rv, APR_SUCCESS);
        refreshed += jobs[i].r.o == BFF_REFRESH_REFRESHED;
        assert_string_equal(jobs[i].r.at, RES_A "#at-1");
        free(jobs[i].r.at);
    }
    assert_int_equal(refreshed, 1);
    s = load(p);
    /* The default token is untouched; the rotated refresh token is kept. */
    assert_string_equal(s->access_token, "at-0");
    assert_string_equal(s->refresh_token, "rt-1");
    assert_int_equal(s->ntokens, 1);

    /* Cached: the next request calls nobody. */
    {
        bff_refresh_outcome_e o;
        const char *at;
        assert_false(bff_refresh_token_needed(30, s, RES_A, NULL, fake_sec()));
        assert_true(bff_refresh_token_needed(30, s, RES_B, NULL, fake_sec()));
        assert_true(bff_refresh_token_needed(30, s, RES_A, "read", fake_sec()));
        advance(40); /* 60 s tokens: due at half their life */
        assert_int_equal(run_narrow(p, RES_A, NULL, &o, &at), APR_SUCCESS);
        assert_int_equal(o, BFF_REFRESH_REFRESHED);
        assert_string_equal(at, RES_A "#at-2");
        assert_string_equal(W.seen[1], "rt-1");
    }
}

static void test_narrow_two_resources(void **state)
{
    apr_pool_t *p = *state;
    narrow_job_t jobs[NTHREADS];
    const char *at_a = NULL, *at_b = NULL;
    bff_session_t *s;
    int i, calls_a = 0, calls_b = 0;

    put_session(600, "rt-0");
    fifty_narrow(p, jobs, a_or_b);
    /* One call per resource... */
    assert_int_equal(W.calls, 2);
    for (i = 0; i < W.nseen; i++) {
        calls_a += !strcmp(W.seen_for[i], RES_A);
        calls_b += !strcmp(W.seen_for[i], RES_B);
    }
    assert_int_equal(calls_a, 1);
    assert_int_equal(calls_b, 1);
    /* ... one after the other (one lock per session), the second with the
     * refresh token the first one's rotation left. */
    assert_string_equal(W.seen[0], "rt-0");
    assert_string_equal(W.seen[1], "rt-1");
    for (i = 0; i < NTHREADS; i++) {
        const char **mine = !strcmp(jobs[i].resource, RES_A) ? &at_a : &at_b;
        assert_int_equal(jobs[i].r.rv, APR_SUCCESS);
        assert_true(!strncmp(jobs[i].r.at, jobs[i].resource, strlen(jobs[i].resource)));
        /* All requests for one resource relay the same token. */
        if (!*mine) {
            *mine = apr_pstrdup(p, jobs[i].r.at);
        }
        assert_string_equal(jobs[i].r.at, *mine);
        free(jobs[i].r.at);
    }
    s = load(p);
    assert_int_equal(s->ntokens, 2);
    assert_string_equal(s->refresh_token, "rt-2");
    assert_string_equal(bff_session_token_find(s, RES_A, NULL)->access_token, at_a);
    assert_string_equal(bff_session_token_find(s, RES_B, NULL)->access_token, at_b);
    assert_string_equal(s->access_token, "at-0");
}

static void test_narrow_rotation_kept(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    const char *at;
    bff_session_t *s;

    put_session(600, "rt-0");
    assert_int_equal(run_narrow(p, RES_A, NULL, &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_string_equal(load(p)->refresh_token, "rt-1");
    /* A scope alone narrows too: its own token. */
    assert_int_equal(run_narrow(p, NULL, "read", &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_string_equal(W.seen[1], "rt-1");
    /* The default token's refresh presents the newest one. */
    advance(600);
    assert_int_equal(run(p, &o, &s), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_string_equal(W.seen[2], "rt-2");
    s = load(p);
    assert_string_equal(s->refresh_token, "rt-3");
    assert_string_equal(s->access_token, "at-3");
    assert_int_equal(s->ntokens, 2);
}

/* A resource the provider refuses: 502 for it, marked for it alone. */
static void test_narrow_refused(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    const char *at;

    put_session(600, "rt-0");
    W.refuse_for = RES_B;
    assert_int_not_equal(run_narrow(p, RES_B, NULL, &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_PROVIDER_DOWN);
    assert_null(at);
    /* Within the failure window: answered without a call. */
    assert_int_not_equal(run_narrow(p, RES_B, NULL, &o, &at), APR_SUCCESS);
    assert_int_equal(W.calls, 1);
    /* Another resource is not held back by it; the session lives on. */
    assert_int_equal(run_narrow(p, RES_A, NULL, &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_int_equal(W.calls, 2);
    assert_string_equal(load(p)->access_token, "at-0");
}

/* Without a refresh token there is no narrower token: 502, the session
 * stays. */
static void test_narrow_no_refresh_token(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    const char *at;

    put_session(600, NULL);
    assert_int_not_equal(run_narrow(p, RES_A, NULL, &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_PROVIDER_DOWN);
    assert_int_equal(W.calls, 0);
    assert_string_equal(load(p)->access_token, "at-0");
}

/* ---- the lock holder died ----------------------------------------- */

/* A request that took the lock and died while the provider answered (a
 * crashed child): a forked process runs a real refresh and exits in the
 * token call, so the lock left behind is the one the protocol takes. */

static void die(void)
{
    _exit(0);
}

static void dead_holder(apr_pool_t *p, apr_int64_t ttl)
{
    bff_refresh_outcome_e o;
    apr_pool_t *pchild;
    unsigned char *v;
    apr_size_t len;
    pid_t pid;
    int status = -1;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (apr_pool_create(&pchild, NULL) != APR_SUCCESS
            || W.st->child_init(W.st, pchild) != APR_SUCCESS) {
            _exit(10);
        }
        lock_ttl = ttl;
        W.on_call = die;
        (void)run(pchild, &o, NULL);
        _exit(11); /* not reached: it dies in the call */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* It left its lock, and the provider counted no call in this process. */
    assert_int_equal(bff_store_get(W.st, p, lock_key(p), &v, &len), APR_SUCCESS);
    assert_int_equal(W.calls, 0);
}

static void test_lock_holder_died(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    bff_session_t *s;
    apr_time_t t0;

    /* Waiters give up after the wait (12 s), without a provider call: an
     * expired token answers 504, a still valid one is used. */
    put_session(-1, "rt-0");
    dead_holder(p, BFF_REFRESH_LOCK_TTL);
    t0 = fake_now;
    assert_int_equal(run(p, &o, NULL), APR_TIMEUP);
    assert_int_equal(o, BFF_REFRESH_WAIT_TIMEOUT);
    assert_true(fake_now - t0 >= apr_time_from_msec(BFF_REFRESH_WAIT_MS));
    assert_true(fake_now - t0 < apr_time_from_sec(BFF_REFRESH_LOCK_TTL));
    assert_int_equal(W.calls, 0);

    put_session(20, "rt-0");
    assert_int_equal(run(p, &o, NULL), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_STILL_VALID);
    assert_int_equal(W.calls, 0);

    /* Once the lock's TTL has passed, the next refresh proceeds. */
    put_session(-1, "rt-0");
    fake_now = t0 + apr_time_from_sec(BFF_REFRESH_LOCK_TTL + 1);
    assert_int_equal(run(p, &o, &s), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_int_equal(W.calls, 1);
    assert_string_equal(s->access_token, "at-1");
    assert_string_equal(load(p)->refresh_token, "rt-1");
}

static void test_lock_expires_during_wait(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    bff_session_t *s;

    /* A dead holder's lock that lapses while a request waits (no answer,
     * no failure marker): that request takes the lock and refreshes. */
    put_session(-1, "rt-0");
    dead_holder(p, 3);
    assert_int_equal(run(p, &o, &s), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_int_equal(W.calls, 1);
    assert_string_equal(s->access_token, "at-1");
}

/* ---- a failure is remembered for its window and not stretched ------ */

static void test_failure_window(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    apr_time_t t0 = fake_now;

    put_session(-1, "rt-0");
    /* t0: the token endpoint does not answer: 504, remembered. */
    W.call_rv = APR_TIMEUP;
    assert_int_equal(run(p, &o, NULL), APR_TIMEUP);
    assert_int_equal(o, BFF_REFRESH_PROVIDER_TIMEOUT);
    assert_int_equal(W.calls, 1);

    /* t0+2: the same answer, without asking the provider again. */
    W.call_rv = APR_SUCCESS;
    fake_now = t0 + apr_time_from_sec(2);
    assert_int_equal(run(p, &o, NULL), APR_TIMEUP);
    assert_int_equal(o, BFF_REFRESH_PROVIDER_TIMEOUT);
    assert_int_equal(W.calls, 1);

    /* t0+3: another failure (metadata) tries to mark the window again... */
    W.prepare_rv = APR_ECONNREFUSED;
    fake_now = t0 + apr_time_from_sec(3);
    assert_int_equal(run(p, &o, NULL), APR_EGENERAL);
    assert_int_equal(o, BFF_REFRESH_PROVIDER_DOWN);

    /* ...but the first marker stays as it was (t0+4: still the 504)... */
    W.prepare_rv = APR_SUCCESS;
    fake_now = t0 + apr_time_from_sec(4);
    assert_int_equal(run(p, &o, NULL), APR_TIMEUP);
    assert_int_equal(o, BFF_REFRESH_PROVIDER_TIMEOUT);
    assert_int_equal(W.calls, 1);

    /* ...and ends with its window (t0 + 5 s): the provider is asked again. */
    fake_now = t0 + apr_time_from_sec(BFF_REFRESH_FAIL_TTL + 1);
    assert_int_equal(run(p, &o, NULL), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_int_equal(W.calls, 2);
}

/* While the token is still valid, a failure does not fail the request. */
static void test_failure_with_valid_token(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    bff_session_t *s;

    put_session(10, "rt-0");
    W.call_rv = APR_TIMEUP;
    assert_int_equal(run(p, &o, &s), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_STILL_VALID);
    assert_string_equal(s->access_token, "at-0");
    assert_string_equal(load(p)->refresh_token, "rt-0");
}

/* ---- a rotated refresh token is never lost ------------------------ */

static bff_refresh_outcome_e nested_outcome;
static apr_status_t nested_rv;

/* Another request for the same session, between the provider's answer and
 * the write of the new refresh token. */
static void another_request(void)
{
    apr_pool_t *p;

    apr_pool_create(&p, W.p);
    nested_rv = run(p, &nested_outcome, NULL);
    apr_pool_destroy(p);
}

static void test_rotation_never_lost(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    bff_session_t *s, *before;

    put_session(-1, "rt-0");
    /* The other request cannot present rt-0 (spent by now): it waits. */
    W.on_save = another_request;
    assert_int_equal(run(p, &o, &s), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_int_equal(nested_rv, APR_TIMEUP);
    assert_int_equal(nested_outcome, BFF_REFRESH_WAIT_TIMEOUT);
    assert_int_equal(W.nseen, 1);
    s = load(p);
    assert_string_equal(s->access_token, "at-1");
    assert_string_equal(s->refresh_token, "rt-1");

    /* The next refresh presents the rotated one. */
    advance(61);
    assert_int_equal(run(p, &o, NULL), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_int_equal(W.nseen, 2);
    assert_string_equal(W.seen[1], "rt-1");
    assert_string_equal(load(p)->refresh_token, "rt-2");

    /* A provider that does not rotate: the current one stays. */
    W.rotate = 0;
    advance(61);
    assert_int_equal(run(p, &o, NULL), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_string_equal(W.seen[2], "rt-2");
    s = load(p);
    assert_non_null(s->refresh_token);
    assert_string_equal(s->refresh_token, "rt-2");
    assert_string_equal(s->access_token, "at-3");

    /* A save that fails leaves the record as it was, whole (the access
     * token with the refresh token that belongs to it), and unlocked: the
     * next refresh presents the token the record holds. */
    W.rotate = 1;
    W.grace = 1; /* the provider accepts the previous one once more */
    advance(61);
    before = load(p);
    W.save_fail = 1;
    assert_int_not_equal(run(p, &o, NULL), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_STORE_DOWN);
    s = load(p);
    assert_int_equal(s->rev, before->rev);
    assert_string_equal(s->access_token, "at-3");
    assert_string_equal(s->refresh_token, "rt-2");
    assert_int_equal(s->at_expires, before->at_expires);
    /* ... and the refresh token issued in its place, held by no record, is
     * revoked rather than left valid. */
    assert_int_equal(W.nrevoked, 1);
    assert_string_equal(W.revoked[0], "rt-4");
    assert_int_equal(run(p, &o, NULL), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_string_equal(W.seen[4], "rt-2");
    s = load(p);
    assert_string_equal(s->refresh_token, "rt-5");
    assert_string_equal(s->access_token, "at-5");
}

/* ---- a logout during the refresh wins ----------------------------- */

static void logout_now(void)
{
    bff_store_remove(W.st, W.p, W.skey);
}

static void test_logout_wins(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    bff_session_t *gone;

    /* The logout lands while the provider answers: the refresh's write
     * finds no record, the session stays ended, and the refresh token the
     * provider just issued is revoked. */
    put_session(-1, "rt-0");
    W.on_call = logout_now;
    assert_int_equal(run(p, &o, NULL), APR_NOTFOUND);
    assert_int_equal(o, BFF_REFRESH_SESSION_GONE);
    assert_int_equal(rec_reload(NULL, p, &gone), APR_NOTFOUND);
    assert_int_equal(W.nrevoked, 1);
    assert_string_equal(W.revoked[0], "rt-1");
}

static void test_logout_while_waiting(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;

    /* A request waiting for another's refresh sees the logout. */
    put_session(-1, "rt-0");
    dead_holder(p, BFF_REFRESH_LOCK_TTL);
    on_sleep = logout_now;
    assert_int_equal(run(p, &o, NULL), APR_NOTFOUND);
    assert_int_equal(o, BFF_REFRESH_SESSION_GONE);
    assert_int_equal(W.calls, 0);
}

static void test_rejected_revokes(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    bff_session_t *gone;

    /* The refreshed ID token names someone else (the glue refuses it): the
     * session ends and the refresh token issued with it is revoked. */
    put_session(-1, "rt-0");
    W.reject = 1;
    assert_int_not_equal(run(p, &o, NULL), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REJECTED);
    assert_int_equal(rec_reload(NULL, p, &gone), APR_NOTFOUND);
    assert_int_equal(W.nrevoked, 1);
    assert_string_equal(W.revoked[0], "rt-1");
}

static void test_invalid_grant_ends_session(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    bff_session_t *gone;

    put_session(-1, "rt-stolen");
    assert_int_equal(run(p, &o, NULL), APR_NOTFOUND);
    assert_int_equal(o, BFF_REFRESH_GRANT_REVOKED);
    assert_int_equal(rec_reload(NULL, p, &gone), APR_NOTFOUND);
    assert_int_equal(W.nrevoked, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fifty_waiters_one_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_holder_died, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_expires_during_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_with_valid_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_never_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logout_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logout_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_revokes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_grant_ends_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_narrow_fifty_one_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_narrow_two_resources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_narrow_rotation_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_narrow_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_narrow_no_refresh_token, setup, teardown),
    };

    return unit_run("refresh", tests);
}
