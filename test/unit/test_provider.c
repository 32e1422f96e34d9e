/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * The provider cache (src/bff_provider.c) against a fake provider on the
 * loopback (http_srv.c serving discovery and JWKS, counting requests) and a
 * fake clock: one fetch for many callers, held snapshots outliving a
 * refetch, the hourly refetch, the back-off after failures, the unknown-kid
 * refetch and its window, a waiter taking another thread's keys, and the
 * documents that must be refused. Time moves by setting the clock; threads
 * hand off through the fake provider's gate, so each test takes
 * milliseconds. Run under ASan too: a snapshot must be freed when its last
 * holder's pool goes (and not before).
 */
#include "unit.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_time.h>

#include "bff_http.h"
#include "bff_jose.h"
#include "bff_provider.h"
#include "http_srv.h"
#include "log_capture.h"

/* Two Ed25519 public keys: the provider's key before and after a rotation. */
#define JWK_1 \
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k1\",\"use\":\"sig\"," \
    "\"x\":\"ZJx0fpE7YCuDHVRXqQYRzBQ6mazzJI0a_KGzUfGo2q0\"}"
#define JWK_2 \
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k2\",\"use\":\"sig\"," \
    "\"x\":\"T2KSJ46dpl5i-BdHPFNstptknULA0gUns8DcpIPCm3U\"}"
#define JWKS_1 "{\"keys\":[" JWK_1 "]}"
#define JWKS_2 "{\"keys\":[" JWK_2 "]}"

/* ---- the fake clock ------------------------------------------------ */

static apr_time_t fake_now;

static apr_time_t clock_now(void *baton)
{
    (void)baton;
    return __atomic_load_n(&fake_now, __ATOMIC_SEQ_CST);
}

static const bff_pcache_clock_t fake_clock = { clock_now, NULL };

static void clock_add(int sec)
{
    __atomic_add_fetch(&fake_now, apr_time_from_sec(sec), __ATOMIC_SEQ_CST);
}

/* ---- the fake provider --------------------------------------------- */

/* What it serves and what it saw; under mu. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const char *issuer;        /* the cache's BFFProvider */
    const char *served_issuer; /* the issuer the document names; NULL: issuer */
    const char *jwks;          /* the JWKS body */
    int meta_status, jwks_status;
    int meta_hits, jwks_hits;
    int alias_hits; /* discovery at /tenant/meta (BFFProviderMetadataURL) */
    int gate_jwks;  /* JWKS requests wait until it is 0 again */
    int gate_meta;  /* discovery requests likewise */
    int gated;      /* requests waiting at a gate */
} fake_t;

static fake_t F;

/* A call in another thread (static: a failed test's teardown still joins
 * it after opening the gates, instead of hanging on them). */
typedef struct {
    apr_status_t rv;
    bff_pcache_view_t v;
    apr_pool_t *r;
    int wait; /* refresh_jwks_wait instead of refresh_jwks; -1: get */
    pthread_t t;
    int running;
} call_t;

static call_t calls[2];
static srv_t *S;
static pthread_t S_thread;
static apr_pool_t *pchild; /* the "child process": the cache's mutex, holders' pools */
static bff_pcache_t *pc;

static const char *answer(apr_pool_t *p, int status, const char *body)
{
    return apr_psprintf(p,
                        "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                        "Content-Length: %" APR_SIZE_T_FMT "\r\nConnection: close\r\n\r\n%s",
                        status, strlen(body), body);
}

static void gate_wait(int *gate)
{
    if (*gate) {
        F.gated++;
        pthread_cond_broadcast(&F.cv);
        while (*gate) {
            pthread_cond_wait(&F.cv, &F.mu);
        }
        F.gated--;
    }
}

static const char *route(void *baton, apr_pool_t *p, const char *req, apr_size_t len)
{
    const char *resp;

    (void)baton;
    (void)len;
    pthread_mutex_lock(&F.mu);
    if (!strncmp(req, "GET /.well-known/openid-configuration ", 38)
        || !strncmp(req, "GET /tenant/meta ", 17)) {
        const char *iss = F.served_issuer ? F.served_issuer : F.issuer;
        ++*(req[5] == 't' ? &F.alias_hits : &F.meta_hits);
        gate_wait(&F.gate_meta);
        resp = answer(p, F.meta_status,
                      apr_psprintf(p,
                                   "{\"issuer\":\"%s\",\"authorization_endpoint\":\"%s/auth\","
                                   "\"token_endpoint\":\"%s/token\",\"jwks_uri\":\"%s/jwks\","
                                   "\"id_token_signing_alg_values_supported\":[\"EdDSA\"]}",
                                   iss, F.issuer, F.issuer, F.issuer));
    }
    else if (!strncmp(req, "GET /jwks ", 10)) {
        F.jwks_hits++;
        gate_wait(&F.gate_jwks);
        resp = answer(p, F.jwks_status, F.jwks);
    }
    else {
        resp = answer(p, 404, "{}");
    }
    pthread_mutex_unlock(&F.mu);
    return resp;
}

static int hits(const int *counter)
{
    int n;

    pthread_mutex_lock(&F.mu);
    n = *counter;
    pthread_mutex_unlock(&F.mu);
    return n;
}

static void set_jwks(const char *jwks)
{
    pthread_mutex_lock(&F.mu);
    F.jwks = jwks;
    pthread_mutex_unlock(&F.mu);
}

static void set_gate(int *gate, int on)
{
    pthread_mutex_lock(&F.mu);
    *gate = on;
    pthread_cond_broadcast(&F.cv);
    pthread_mutex_unlock(&F.mu);
}

/* Until n requests wait at a gate (the fetching thread is inside its fetch). */
static void await_gated(int n)
{
    pthread_mutex_lock(&F.mu);
    while (F.gated < n) {
        pthread_cond_wait(&F.cv, &F.mu);
    }
    pthread_mutex_unlock(&F.mu);
}

static int setup(void **state)
{
    apr_pool_t *p;

    if (unit_pool_setup(state)) {
        return -1;
    }
    p = *state;
    pthread_mutex_init(&F.mu, NULL);
    pthread_cond_init(&F.cv, NULL);
    S = srv_listen(p);
    F.issuer = apr_psprintf(p, "http://127.0.0.1:%d", S->port);
    F.served_issuer = NULL;
    F.jwks = JWKS_1;
    F.meta_status = F.jwks_status = 200;
    F.meta_hits = F.jwks_hits = F.gate_jwks = F.gate_meta = F.gated = 0;
    F.alias_hits = 0;
    S_thread = srv_serve(S, route, NULL);
    fake_now = apr_time_from_sec(1700000000);
    apr_pool_create(&pchild, p);
    pc = bff_pcache_create(p, F.issuer, NULL, &fake_clock);
    assert_int_equal(bff_pcache_child_init(pc, pchild), APR_SUCCESS);
    log_start();
    return 0;
}

/* Waits for the call; its pool (and the view held there) lives on until
 * the teardown. */
static void call_join(call_t *c)
{
    if (c->running) {
        pthread_join(c->t, NULL);
        c->running = 0;
    }
}

static int teardown(void **state)
{
    int i;

    log_stop();
    set_gate(&F.gate_jwks, 0);
    set_gate(&F.gate_meta, 0);
    for (i = 0; i < 2; i++) {
        call_join(&calls[i]);
        if (calls[i].r) {
            apr_pool_destroy(calls[i].r);
            calls[i].r = NULL;
        }
    }
    /* The child ends: the cache's own snapshot, the holders' pools. */
    bff_pcache_drop(pc);
    apr_pool_destroy(pchild);
    srv_stop(S, S_thread);
    pthread_cond_destroy(&F.cv);
    pthread_mutex_destroy(&F.mu);
    bff_http_thread_release();
    return unit_pool_teardown(state);
}

/* A "request": a pool of the child whose cleanup releases its views. */
static apr_pool_t *request_pool(void)
{
    apr_pool_t *r;

    apr_pool_create(&r, pchild);
    return r;
}

static apr_status_t get(apr_pool_t *r, bff_pcache_view_t *v)
{
    memset(v, 0, sizeof(*v));
    return bff_pcache_get(pc, r, NULL, v);
}

/* ---- one fetch for many callers ------------------------------------ */

#define THREADS 8
#define GETS 25

typedef struct {
    const bff_oidc_meta_t *meta[GETS];
    int failed;
} getter_t;

static void *getter_main(void *baton)
{
    getter_t *g = baton;
    apr_pool_t *r;
    bff_pcache_view_t v;
    int i;

    for (i = 0; i < GETS; i++) {
        /* apr pools are not thread-safe: each thread its own allocator. */
        apr_pool_create_unmanaged_ex(&r, NULL, NULL);
        g->failed += get(r, &v) != APR_SUCCESS || !bff_jose_jwks_has_kid(v.jwks, "k1");
        g->meta[i] = v.meta;
        apr_pool_destroy(r);
    }
    bff_http_thread_release();
    return NULL;
}

static void test_one_fetch_for_all(void **state)
{
    getter_t g[THREADS];
    pthread_t t[THREADS];
    int i, j;

    (void)state;
    memset(g, 0, sizeof(g));
    for (i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, getter_main, &g[i]), 0);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    for (i = 0; i < THREADS; i++) {
        assert_int_equal(g[i].failed, 0);
        for (j = 0; j < GETS; j++) {
            assert_ptr_equal(g[i].meta[j], g[0].meta[0]);
        }
    }
    assert_int_equal(hits(&F.meta_hits), 1);
    assert_int_equal(hits(&F.jwks_hits), 1);
}

static void test_not_initialised(void **state)
{
    bff_pcache_t *bare = bff_pcache_create(*state, F.issuer, NULL, &fake_clock);
    bff_pcache_view_t v = { 0 };

    assert_int_equal(bff_pcache_get(bare, *state, NULL, &v), APR_EGENERAL);
    assert_int_equal(bff_pcache_refresh_jwks(bare, *state, NULL, &v), APR_EGENERAL);
    assert_int_equal(hits(&F.meta_hits), 0);
    assert_true(bff_pcache_http(bare)->allow_http); /* a loopback issuer */
}

/* ---- snapshots outlive a refetch ----------------------------------- */

static void test_held_view_survives_refetch(void **state)
{
    apr_pool_t *r1 = request_pool(), *r2 = request_pool();
    bff_pcache_view_t v1, v2;

    (void)state;
    assert_int_equal(get(r1, &v1), APR_SUCCESS);
    set_jwks(JWKS_2);
    clock_add(BFF_PCACHE_META_TTL);
    assert_int_equal(get(r2, &v2), APR_SUCCESS);
    assert_int_equal(hits(&F.meta_hits), 2);
    assert_ptr_not_equal(v2.meta, v1.meta);
    assert_true(bff_jose_jwks_has_kid(v2.jwks, "k2"));
    /* The first request still reads its own snapshot (ASan: not freed). */
    assert_true(bff_jose_jwks_has_kid(v1.jwks, "k1"));
    assert_false(bff_jose_jwks_has_kid(v1.jwks, "k2"));
    assert_string_equal(v1.meta->issuer, F.issuer);
    assert_string_equal(v1.meta->jwks_uri, apr_pstrcat(*state, F.issuer, "/jwks", NULL));
    /* Released (ASan: freed here, else a leak at exit). */
    apr_pool_destroy(r1);
    apr_pool_destroy(r2);
    /* A third snapshot retires the second, which nobody holds any more. */
    set_jwks(JWKS_1);
    clock_add(BFF_PCACHE_META_TTL);
    r1 = request_pool();
    assert_int_equal(get(r1, &v1), APR_SUCCESS);
    assert_true(bff_jose_jwks_has_kid(v1.jwks, "k1"));
    assert_int_equal(hits(&F.meta_hits), 3);
}

/* ---- the hourly refetch -------------------------------------------- */

static void test_hourly_refetch(void **state)
{
    apr_pool_t *r = request_pool();
    bff_pcache_view_t v;

    (void)state;
    assert_int_equal(get(r, &v), APR_SUCCESS);
    clock_add(BFF_PCACHE_META_TTL - 1);
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_int_equal(hits(&F.meta_hits), 1);
    assert_int_equal(hits(&F.jwks_hits), 1);
    clock_add(1);
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_int_equal(hits(&F.meta_hits), 2);
    assert_int_equal(hits(&F.jwks_hits), 2);
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_int_equal(hits(&F.meta_hits), 2);
}

static void *call_main(void *baton)
{
    call_t *c = baton;

    if (c->wait < 0) {
        c->rv = bff_pcache_get(pc, c->r, NULL, &c->v);
    }
    else if (c->wait) {
        c->rv = bff_pcache_refresh_jwks_wait(pc, c->r, NULL, &c->v);
    }
    else {
        c->rv = bff_pcache_refresh_jwks(pc, c->r, NULL, &c->v);
    }
    bff_http_thread_release();
    return NULL;
}

/* A caller pool per thread: apr pools are not thread-safe. The pool and
 * the view last until call_join(). */
static call_t *call_start(int i, int wait, const bff_pcache_view_t *v)
{
    call_t *c = &calls[i];

    memset(c, 0, sizeof(*c));
    apr_pool_create_unmanaged_ex(&c->r, NULL, NULL);
    c->wait = wait;
    if (v) {
        c->v = *v;
    }
    assert_int_equal(pthread_create(&c->t, NULL, call_main, c), 0);
    c->running = 1;
    return c;
}

static void test_hourly_refetch_does_not_block(void **state)
{
    apr_pool_t *r = request_pool();
    bff_pcache_view_t v, old;
    call_t *c;

    (void)state;
    assert_int_equal(get(r, &old), APR_SUCCESS);
    clock_add(BFF_PCACHE_META_TTL);
    set_jwks(JWKS_2);
    set_gate(&F.gate_meta, 1);
    c = call_start(0, -1, NULL);
    await_gated(1);
    /* One thread refetches; meanwhile the others take the old snapshot at
     * once (this call would hang on the gate otherwise). */
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_ptr_equal(v.meta, old.meta);
    assert_int_equal(hits(&F.meta_hits), 2);
    set_gate(&F.gate_meta, 0);
    call_join(c);
    assert_int_equal(c->rv, APR_SUCCESS);
    assert_true(bff_jose_jwks_has_kid(c->v.jwks, "k2"));
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_true(bff_jose_jwks_has_kid(v.jwks, "k2"));
}

/* ---- failures and back-off ----------------------------------------- */

static void test_failed_first_fetch_backs_off(void **state)
{
    apr_pool_t *r = request_pool();
    bff_pcache_view_t v;

    (void)state;
    F.meta_status = 500;
    assert_int_equal(get(r, &v), APR_EGENERAL);
    assert_int_equal(log_has("BFF00307: ", "answered HTTP 500"), 1);
    assert_int_equal(hits(&F.meta_hits), 1);
    F.meta_status = 200;
    /* Within the back-off: no request to the provider. */
    assert_int_equal(get(r, &v), APR_EAGAIN);
    clock_add(BFF_PCACHE_FAIL_RETRY - 1);
    assert_int_equal(get(r, &v), APR_EAGAIN);
    assert_int_equal(hits(&F.meta_hits), 1);
    clock_add(1);
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_int_equal(hits(&F.meta_hits), 2);
    assert_true(bff_jose_jwks_has_kid(v.jwks, "k1"));
}

static void test_failed_hourly_refetch_keeps_old(void **state)
{
    apr_pool_t *r = request_pool();
    bff_pcache_view_t v, old;

    (void)state;
    assert_int_equal(get(r, &old), APR_SUCCESS);
    clock_add(BFF_PCACHE_META_TTL);
    F.jwks_status = 503;
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_ptr_equal(v.meta, old.meta);
    assert_int_equal(log_has("BFF00303: ", "answered HTTP 503"), 1);
    assert_int_equal(hits(&F.jwks_hits), 2);
    /* The old snapshot serves; the next try comes a minute later. */
    clock_add(BFF_PCACHE_STALE_RETRY - 1);
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_int_equal(hits(&F.meta_hits), 2);
    F.jwks_status = 200;
    set_jwks(JWKS_2);
    clock_add(1);
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_int_equal(hits(&F.meta_hits), 3);
    assert_true(bff_jose_jwks_has_kid(v.jwks, "k2"));
}

static void test_provider_unreachable(void **state)
{
    bff_pcache_t *gone = bff_pcache_create(*state, "http://127.0.0.1:1", NULL, &fake_clock);
    bff_pcache_view_t v = { 0 };

    assert_int_equal(bff_pcache_child_init(gone, pchild), APR_SUCCESS);
    assert_int_not_equal(bff_pcache_get(gone, request_pool(), NULL, &v), APR_SUCCESS);
    bff_pcache_drop(gone); /* nothing to drop */
    assert_int_equal(log_has("BFF00306: ", "http://127.0.0.1:1/.well-known/"), 1);
    assert_null(v.meta);
}

/* ---- the unknown-kid refetch --------------------------------------- */

static void test_kid_refetch_window(void **state)
{
    apr_pool_t *r = request_pool();
    bff_pcache_view_t v, first;

    (void)state;
    /* Nothing cached yet: nothing to refetch with. */
    assert_int_equal(bff_pcache_refresh_jwks(pc, r, NULL, &v), APR_EGENERAL);
    assert_int_equal(get(r, &first), APR_SUCCESS);
    set_jwks(JWKS_2);
    v = first;
    assert_int_equal(bff_pcache_refresh_jwks(pc, r, NULL, &v), APR_SUCCESS);
    assert_true(bff_jose_jwks_has_kid(v.jwks, "k2"));
    assert_int_equal(log_has("BFF00309: ", NULL), 1);
    /* Only the keys: the metadata is the cached one. */
    assert_int_equal(hits(&F.meta_hits), 1);
    assert_int_equal(hits(&F.jwks_hits), 2);
    assert_string_equal(v.meta->token_endpoint, first.meta->token_endpoint);
    assert_true(bff_jose_jwks_has_kid(first.jwks, "k1")); /* still held */
    /* Within the window: EAGAIN with the current keys, no request. */
    set_jwks(JWKS_1);
    assert_int_equal(bff_pcache_refresh_jwks(pc, r, NULL, &v), APR_EAGAIN);
    assert_true(bff_jose_jwks_has_kid(v.jwks, "k2"));
    clock_add(BFF_PCACHE_JWKS_REFETCH_MIN - 1);
    assert_int_equal(bff_pcache_refresh_jwks(pc, r, NULL, &v), APR_EAGAIN);
    assert_int_equal(hits(&F.jwks_hits), 2);
    clock_add(1);
    assert_int_equal(bff_pcache_refresh_jwks(pc, r, NULL, &v), APR_SUCCESS);
    assert_true(bff_jose_jwks_has_kid(v.jwks, "k1"));
    assert_int_equal(hits(&F.jwks_hits), 3);
    /* The get sees the refetched keys too. */
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_true(bff_jose_jwks_has_kid(v.jwks, "k1"));
    assert_int_equal(hits(&F.meta_hits), 1);
}

static void test_kid_refetch_one_at_a_time(void **state)
{
    apr_pool_t *r = request_pool();
    bff_pcache_view_t v, first;
    call_t *c;

    (void)state;
    assert_int_equal(get(r, &first), APR_SUCCESS);
    set_jwks(JWKS_2);
    set_gate(&F.gate_jwks, 1);
    c = call_start(0, 0, &first);
    await_gated(1);
    /* The refetch runs outside the mutex: a get answers at once. */
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_ptr_equal(v.jwks, first.jwks);
    /* Past the window but the refetch still runs: no second one. */
    clock_add(BFF_PCACHE_JWKS_REFETCH_MIN);
    v = first;
    assert_int_equal(bff_pcache_refresh_jwks(pc, r, NULL, &v), APR_EAGAIN);
    assert_ptr_equal(v.jwks, first.jwks);
    assert_int_equal(hits(&F.jwks_hits), 2);
    set_gate(&F.gate_jwks, 0);
    call_join(c);
    assert_int_equal(c->rv, APR_SUCCESS);
    assert_true(bff_jose_jwks_has_kid(c->v.jwks, "k2"));
    assert_int_equal(hits(&F.jwks_hits), 2);
}

static void test_kid_refetch_wait_takes_other_keys(void **state)
{
    apr_pool_t *r = request_pool();
    bff_pcache_view_t first;
    call_t *a, *b;

    (void)state;
    assert_int_equal(get(r, &first), APR_SUCCESS);
    set_jwks(JWKS_2);
    set_gate(&F.gate_jwks, 1);
    /* A (say, a back-channel logout) refetches; B (a user's callback) has
     * the same unknown kid and waits for A's keys. */
    a = call_start(0, 0, &first);
    await_gated(1);
    b = call_start(1, 1, &first);
    apr_sleep(apr_time_from_msec(20)); /* B reaches its wait */
    set_gate(&F.gate_jwks, 0);
    call_join(a);
    call_join(b);
    assert_int_equal(a->rv, APR_SUCCESS);
    assert_int_equal(b->rv, APR_SUCCESS);
    assert_true(bff_jose_jwks_has_kid(b->v.jwks, "k2"));
    assert_int_equal(hits(&F.jwks_hits), 2); /* B did not fetch */
}

static void test_kid_refetch_wait_alone(void **state)
{
    apr_pool_t *r = request_pool();
    bff_pcache_view_t v, first;

    (void)state;
    assert_int_equal(get(r, &first), APR_SUCCESS);
    /* Nobody else refetching: it fetches itself. */
    set_jwks(JWKS_2);
    v = first;
    assert_int_equal(bff_pcache_refresh_jwks_wait(pc, r, NULL, &v), APR_SUCCESS);
    assert_true(bff_jose_jwks_has_kid(v.jwks, "k2"));
    /* Refetched within the window by someone else: the caller's older keys
     * make the current ones an answer... */
    v = first;
    assert_int_equal(bff_pcache_refresh_jwks_wait(pc, r, NULL, &v), APR_SUCCESS);
    assert_true(bff_jose_jwks_has_kid(v.jwks, "k2"));
    /* ...but not for a caller who already has them. */
    assert_int_equal(bff_pcache_refresh_jwks_wait(pc, r, NULL, &v), APR_EAGAIN);
    assert_int_equal(hits(&F.jwks_hits), 2);
}

/* ---- documents that must be refused -------------------------------- */

static void test_issuer_mismatch_refused(void **state)
{
    apr_pool_t *r = request_pool();
    bff_pcache_view_t v = { 0 }, old;
    const char *other[] = { "https://evil.example", NULL, NULL };
    int i;

    other[1] = apr_pstrcat(*state, F.issuer, "/", NULL); /* no normalisation */
    for (i = 0; i < 2; i++) {
        F.served_issuer = other[i];
        clock_add(BFF_PCACHE_FAIL_RETRY);
        assert_int_not_equal(get(r, &v), APR_SUCCESS);
        assert_null(v.meta);
    }
    assert_int_equal(log_has("BFF00308: ", "issuer does not equal"), 2);
    assert_int_equal(hits(&F.jwks_hits), 0); /* its jwks_uri is never used */
    /* The hourly refetch: a changed issuer does not replace the snapshot. */
    F.served_issuer = NULL;
    clock_add(BFF_PCACHE_FAIL_RETRY);
    assert_int_equal(get(r, &old), APR_SUCCESS);
    F.served_issuer = other[0];
    clock_add(BFF_PCACHE_META_TTL);
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_ptr_equal(v.meta, old.meta);
    assert_string_equal(v.meta->issuer, F.issuer);
    assert_int_equal(log_has("BFF00308: ", "issuer does not equal"), 3);
}

/* BFFProviderMetadataURL: discovery from there only; a document there that
 * names another issuer (a {tenantid} placeholder) is refused, and BFF01901
 * says so with both values. */
static void test_metadata_url(void **state)
{
    apr_pool_t *r = request_pool();
    bff_pcache_view_t v = { 0 };

    bff_pcache_set_metadata_url(pc, apr_pstrcat(*state, F.issuer, "/tenant/meta", NULL));
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_string_equal(v.meta->issuer, F.issuer);
    assert_int_equal(hits(&F.alias_hits), 1);
    assert_int_equal(hits(&F.meta_hits), 0);

    bff_pcache_drop(pc);
    v.meta = NULL;
    F.served_issuer = "https://login.example/{tenantid}/v2.0";
    assert_int_not_equal(get(r, &v), APR_SUCCESS);
    assert_null(v.meta);
    assert_int_equal(log_has("BFF01901: ", "/tenant/meta"), 1);
    assert_int_equal(log_has("BFF01901: ", "'https://login.example/{tenantid}/v2.0'"), 1);
    assert_int_equal(log_has("BFF01901: ", apr_psprintf(*state, "'%s'", F.issuer)), 1);
    assert_int_equal(log_has("BFF00308: ", ""), 0);
    assert_int_equal(hits(&F.jwks_hits), 1); /* the refused document's jwks_uri is never used */
}

static void test_bad_jwks_refused(void **state)
{
    apr_pool_t *p = *state, *r = request_pool();
    bff_pcache_view_t v = { 0 }, good;
    char *big = apr_palloc(p, 300 * 1024), *huge = apr_palloc(p, 1100 * 1024);
    const char *bad[] = {
        "{\"keys\":[" JWK_1 "", /* truncated */
        "[" JWK_1 "]",
        "{\"keys\":" JWK_1 "}",
        "{\"keys\":[]}",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}",          /* HMAC: never */
        "{\"keys\":[" JWK_1 "],\"keys\":[" JWK_2 "]}",                /* duplicate */
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":7}]}", /* not a key */
        "",
        NULL,
        NULL,
    };
    int i, n = 0;

    /* Over the JWKS limit (256 KiB), and over the body limit (1 MiB). */
    memset(big, ' ', 300 * 1024 - 1);
    big[300 * 1024 - 1] = '\0';
    memcpy(big, JWKS_1, strlen(JWKS_1));
    memset(huge, ' ', 1100 * 1024 - 1);
    huge[1100 * 1024 - 1] = '\0';
    memcpy(huge, JWKS_1, strlen(JWKS_1));
    bad[8] = big;
    bad[9] = huge;
    for (i = 0; i < 10; i++) {
        set_jwks(bad[i]);
        clock_add(BFF_PCACHE_FAIL_RETRY);
        assert_int_not_equal(get(r, &v), APR_SUCCESS);
        assert_null(v.meta);
        n++;
    }
    assert_int_equal(log_has("BFF00304: ", NULL), 9);
    assert_int_equal(log_has("BFF00302: ", NULL), 1);
    assert_int_equal(hits(&F.jwks_hits), n);
    /* A good one is taken; a bad one after an unknown kid keeps it. */
    set_jwks(JWKS_1);
    clock_add(BFF_PCACHE_FAIL_RETRY);
    assert_int_equal(get(r, &good), APR_SUCCESS);
    for (i = 0; i < 10; i++) {
        set_jwks(bad[i]);
        clock_add(BFF_PCACHE_JWKS_REFETCH_MIN);
        v = good;
        assert_int_not_equal(bff_pcache_refresh_jwks(pc, r, NULL, &v), APR_SUCCESS);
        assert_ptr_equal(v.jwks, good.jwks);
    }
    assert_int_equal(log_has("BFF00309: ", NULL), 0);
    assert_int_equal(get(r, &v), APR_SUCCESS);
    assert_ptr_equal(v.jwks, good.jwks);
}

/* ---- where the log lines go ---------------------------------------- */

static int sink_lines;

static void sink(void *baton, const char *file, int line, int level, apr_status_t rv,
                 const char *msg)
{
    (void)file;
    (void)line;
    (void)rv;
    *(int *)baton += level == BFF_LOG_ERR && strstr(msg, "BFF00307: ") != NULL;
}

static void test_log_to_caller(void **state)
{
    bff_pcache_log_t log = { sink, &sink_lines };
    bff_pcache_view_t v;

    (void)state;
    sink_lines = 0;
    F.meta_status = 404;
    assert_int_equal(bff_pcache_get(pc, request_pool(), &log, &v), APR_EGENERAL);
    assert_int_equal(sink_lines, 1);
    assert_int_equal(log_count, 0); /* not the core hook */
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_one_fetch_for_all),
        T(test_not_initialised),
        T(test_held_view_survives_refetch),
        T(test_hourly_refetch),
        T(test_hourly_refetch_does_not_block),
        T(test_failed_first_fetch_backs_off),
        T(test_failed_hourly_refetch_keeps_old),
        T(test_provider_unreachable),
        T(test_kid_refetch_window),
        T(test_kid_refetch_one_at_a_time),
        T(test_kid_refetch_wait_takes_other_keys),
        T(test_kid_refetch_wait_alone),
        T(test_issuer_mismatch_refused),
        T(test_metadata_url),
        T(test_bad_jwks_refused),
        T(test_log_to_caller),
    };

    /* A client that gives up on a big body closes its end mid-send. */
    signal(SIGPIPE, SIG_IGN);
    /* A regression that hangs a waiter must fail the run, not hang it. */
    alarm(120);
    if (bff_http_global_init() != APR_SUCCESS) {
        return 1;
    }
    return unit_run("provider", tests);
}
