/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * The client token (src/bff_clienttoken.c) against the real shm store, a fake clock (which
 * also decides the store's expiry) and a fake token endpoint: one fetch for 50 threads, the
 * cache and its refetch when due, a key rotation, a provider down (the failure window), a dead
 * lock holder, a store that does not take the write.
 */
#include "unit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <apr_global_mutex.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_time.h>

#include "bff_clienttoken.h"
#include "bff_crypto.h"
#include "bff_ns.h"
#include "bff_store.h"
#include "bff_store_shm.h"

/* ---- the fake clock ---------------------------------------------- */

/* Single-threaded tests: a sleep advances fake time. The threaded test: a
 * sleep really sleeps a little and leaves it. */
static apr_time_t fake_now;
static int threaded;
static volatile apr_uint32_t sleepers;
static __thread int has_slept;

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
    if (fake_now > apr_time_from_sec(2000000000)) {
        fail_msg("a waiter kept waiting past any deadline");
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

/* ---- the world: a store, a key ring, a provider ------------------- */

#define SITE_ORIGIN "https://app.example"
#define ISSUER "https://op.example"
#define K1 "client token test secret one 123"
#define K2 "client token test secret two 456"

typedef struct {
    apr_pool_t *p;
    bff_store_t *st;
    bff_keyring_t *ring;
    const char *site;

    /* the fake provider */
    apr_thread_mutex_t *mx;
    apr_uint32_t calls;
    int serial;
    apr_int64_t expires_in;
    apr_status_t prepare_rv;
    apr_status_t call_rv; /* transport failure */
    const char *refuse;   /* an OAuth error */
    const char *last_scope;
    void (*on_call)(void);
} world_t;

static world_t W;

static apr_status_t ep_prepare(void *baton, apr_pool_t *p)
{
    (void)baton;
    (void)p;
    return W.prepare_rv;
}

static apr_status_t ep_call(void *baton, apr_pool_t *p, const char *scope, bff_refresh_grant_t *g,
                            const char **err)
{
    int n;

    (void)baton;
    __atomic_add_fetch(&W.calls, 1, __ATOMIC_SEQ_CST);
    if (W.on_call) {
        W.on_call();
    }
    if (W.call_rv != APR_SUCCESS) {
        *err = "no answer";
        return W.call_rv;
    }
    if (W.refuse) {
        g->result = BFF_GRANT_REFUSED;
        g->error = W.refuse;
        return APR_SUCCESS;
    }
    apr_thread_mutex_lock(W.mx);
    n = ++W.serial;
    W.last_scope = scope ? apr_pstrdup(W.p, scope) : "(none)";
    apr_thread_mutex_unlock(W.mx);
    g->result = BFF_GRANT_ISSUED;
    g->access_token = apr_psprintf(p, "ct-%d", n);
    g->token_type = "Bearer";
    g->expires_in = W.expires_in;
    return APR_SUCCESS;
}

static const char *ep_where(void *baton)
{
    (void)baton;
    return "https://op.example/token";
}

static const bff_clienttoken_endpoint_t EP = { ep_prepare, ep_call, ep_where, NULL };

static bff_clienttoken_t config(const bff_keyring_t *ring, const char *scope)
{
    bff_clienttoken_t ct;

    memset(&ct, 0, sizeof(ct));
    ct.store = W.st;
    ct.ring = ring;
    ct.site = W.site;
    ct.issuer = ISSUER;
    ct.scope = scope;
    ct.refresh_before = 30;
    ct.clock = &fake_clock;
    ct.endpoint = &EP;
    return ct;
}

static bff_keyring_t *ring_of(apr_pool_t *p, const char *a, const char *b)
{
    bff_keyring_t *ring;

    assert_int_equal(bff_crypto_keyring_create(p, &ring), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add_ctx(ring, a, strlen(a), W.site), APR_SUCCESS);
    if (b) {
        assert_int_equal(bff_crypto_keyring_add_ctx(ring, b, strlen(b), W.site), APR_SUCCESS);
    }
    return ring;
}

/* One request: the token it relays ("" on failure) and its outcome. */
static apr_status_t get(apr_pool_t *p, const bff_keyring_t *ring, const char *scope,
                        bff_refresh_outcome_e *o, const char **at)
{
    bff_clienttoken_t ct = config(ring, scope);
    bff_clienttoken_value_t tok;
    apr_status_t rv;

    memset(&tok, 0, sizeof(tok));
    rv = bff_clienttoken_get(&ct, p, &tok, o);
    *at = rv == APR_SUCCESS ? tok.access_token : "";
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
    fake_now = apr_time_from_sec(apr_time_sec(apr_time_now()));
    W.site = bff_ns_site(p, SITE_ORIGIN, "client");
    if (apr_global_mutex_create(&m, NULL, APR_LOCK_DEFAULT, p) != APR_SUCCESS
        || bff_store_shm_create(p, (apr_size_t)1024 * 1024, m, &W.st) != APR_SUCCESS
        || apr_thread_mutex_create(&W.mx, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        return -1;
    }
    bff_store_shm_set_clock(W.st, shm_clock, NULL);
    W.ring = ring_of(p, K1, NULL);
    W.expires_in = 300;
    W.prepare_rv = APR_SUCCESS;
    W.call_rv = APR_SUCCESS;
    return 0;
}

static int teardown(void **state)
{
    apr_pool_destroy((apr_pool_t *)*state);
    return 0;
}

/* ---- cached, sealed, refetched when due --------------------------- */

static void test_cached_then_refetched(void **state)
{
    apr_pool_t *p = *state;
    bff_clienttoken_t ct = config(W.ring, "api:read");
    bff_refresh_outcome_e o;
    const char *at;
    unsigned char *v;
    apr_size_t len;

    assert_int_equal(get(p, W.ring, "api:read", &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_string_equal(at, "ct-1");
    assert_string_equal(W.last_scope, "api:read");
    /* Stored sealed: the token is not in the store's bytes. */
    assert_int_equal(bff_store_get(W.st, p, bff_clienttoken_key(p, &ct), &v, &len), APR_SUCCESS);
    assert_null(memmem(v, len, "ct-1", 4));

    /* Later requests use it without asking the provider... */
    advance(200);
    assert_int_equal(get(p, W.ring, "api:read", &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_NOT_NEEDED);
    assert_string_equal(at, "ct-1");
    assert_int_equal(W.calls, 1);

    /* ...until it is within BFFRefreshBeforeExpiry of its expiry. */
    advance(75);
    assert_int_equal(get(p, W.ring, "api:read", &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_string_equal(at, "ct-2");
    assert_int_equal(W.calls, 2);

    /* Another scope is another token; no scope sends none. */
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_SUCCESS);
    assert_string_equal(at, "ct-3");
    assert_string_equal(W.last_scope, "(none)");
    assert_int_equal(get(p, W.ring, "api:read", &o, &at), APR_SUCCESS);
    assert_string_equal(at, "ct-2");
    assert_int_equal(W.calls, 3);
}

/* No expires_in: cached for the default lifetime. */
static void test_no_expires_in(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    const char *at;

    W.expires_in = 0;
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_SUCCESS);
    advance(BFF_CLIENTTOKEN_DEFAULT_TTL - 31);
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_NOT_NEEDED);
    advance(2);
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_int_equal(W.calls, 2);
}

/* ---- 50 requests at once -> one provider call --------------------- */

#define NTHREADS 50

typedef struct {
    apr_status_t rv;
    bff_refresh_outcome_e o;
    char *at;
} result_t;

static volatile int go;
static result_t results[NTHREADS];

/* Plain pthreads returning from their function: OpenSSL's per-thread state
 * (the entry is sealed and opened in each thread) is then freed at thread
 * exit in an order AddressSanitizer accepts, which apr_thread_exit's
 * pthread_exit is not; bff_crypto's cached contexts are freed by hand. */
static void *request_thread(void *data)
{
    result_t *res = data;
    const char *at = NULL;
    apr_pool_t *p;

    apr_pool_create_unmanaged_ex(&p, NULL, NULL);
    while (!__atomic_load_n(&go, __ATOMIC_SEQ_CST)) {
        apr_sleep(1000);
    }
    res->rv = get(p, W.ring, "api:read", &res->o, &at);
    res->at = strdup(at ? at : "");
    apr_pool_destroy(p);
    bff_crypto_thread_cleanup();
    return NULL;
}

/* The provider answers once every other request waits (bounded: a thread
 * that starts late shows in the assertions). */
static void hold_until_all_wait(void)
{
    apr_time_t until = apr_time_now() + apr_time_from_sec(60);

    while (__atomic_load_n(&sleepers, __ATOMIC_SEQ_CST) < NTHREADS - 1 && apr_time_now() < until) {
        apr_sleep(1000);
    }
}

static void test_fifty_requests_one_call(void **state)
{
    (void)state;
    pthread_t th[NTHREADS];
    int i, fetched = 0, waited = 0;

    threaded = 1;
    go = 0;
    W.on_call = hold_until_all_wait;
    memset(results, 0, sizeof(results));
    for (i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, request_thread, &results[i]), 0);
    }
    __atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
    for (i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
    }
    threaded = 0;
    assert_int_equal(sleepers, NTHREADS - 1);
    assert_int_equal(W.calls, 1);
    for (i = 0; i < NTHREADS; i++) {
        assert_int_equal(results[i].rv, APR_SUCCESS);
        fetched += results[i].o == BFF_REFRESH_REFRESHED;
        waited += results[i].o == BFF_REFRESH_WAITED;
        assert_string_equal(results[i].at, "ct-1");
        free(results[i].at);
    }
    assert_int_equal(fetched, 1);
    assert_int_equal(waited, NTHREADS - 1);
}

/* ---- key rotation ------------------------------------------------- */

/* A token sealed under K1 is used by a node whose ring is [K2, K1]; a node
 * that no longer holds K1 fetches its own rather than failing. */
static void test_key_rotation(void **state)
{
    apr_pool_t *p = *state;
    bff_keyring_t *rotated = ring_of(p, K2, K1);
    bff_keyring_t *only_new = ring_of(p, K2, NULL);
    bff_refresh_outcome_e o;
    const char *at;

    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_SUCCESS);
    assert_string_equal(at, "ct-1");
    assert_int_equal(get(p, rotated, NULL, &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_NOT_NEEDED);
    assert_string_equal(at, "ct-1");
    assert_int_equal(W.calls, 1);

    assert_int_equal(get(p, only_new, NULL, &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_string_equal(at, "ct-2");
    /* Sealed under K2 now: the rotated ring reads it, the old one cannot. */
    assert_int_equal(get(p, rotated, NULL, &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_NOT_NEEDED);
    assert_string_equal(at, "ct-2");
    assert_int_equal(W.calls, 2);
}

/* ---- the provider fails ------------------------------------------- */

static void test_provider_down_window(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    const char *at;

    W.call_rv = APR_ECONNREFUSED;
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_EGENERAL);
    assert_int_equal(o, BFF_REFRESH_PROVIDER_DOWN);
    assert_int_equal(bff_refresh_outcome_general(o), BFF_OUTCOME_PROVIDER_DOWN);
    assert_int_equal(W.calls, 1);
    /* Within the window: the same answer without asking again. */
    W.call_rv = APR_SUCCESS;
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_EGENERAL);
    assert_int_equal(o, BFF_REFRESH_PROVIDER_DOWN);
    assert_int_equal(W.calls, 1);
    /* After it: asked again, and the token is there. */
    advance(BFF_REFRESH_FAIL_TTL + 1);
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_SUCCESS);
    assert_string_equal(at, "ct-1");
    assert_int_equal(W.calls, 2);

    /* A timeout is a 504, its window too. */
    advance(300);
    W.call_rv = APR_TIMEUP;
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_TIMEUP);
    assert_int_equal(o, BFF_REFRESH_PROVIDER_TIMEOUT);
    assert_int_equal(bff_refresh_outcome_general(o), BFF_OUTCOME_PROVIDER_TIMEOUT);
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_TIMEUP);
    assert_int_equal(W.calls, 3);

    /* Metadata not at hand: the same, without a call. */
    advance(BFF_REFRESH_FAIL_TTL + 1);
    W.prepare_rv = APR_ECONNREFUSED;
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_EGENERAL);
    assert_int_equal(W.calls, 3);
}

/* Due but not expired: a failure keeps the current token in use. */
static void test_provider_down_token_still_valid(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    const char *at;

    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_SUCCESS);
    advance(290);
    W.call_rv = APR_ECONNREFUSED;
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_STILL_VALID);
    assert_string_equal(at, "ct-1");
    assert_int_equal(W.calls, 2);
    /* Within the failure window the provider is not asked again. */
    advance(2);
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_STILL_VALID);
    assert_string_equal(at, "ct-1");
    assert_int_equal(W.calls, 2);
    advance(9);
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_EGENERAL);
    assert_int_equal(W.calls, 3);
}

/* An OAuth error (the grant not allowed, an unknown scope): 502. */
static void test_refused(void **state)
{
    apr_pool_t *p = *state;
    bff_refresh_outcome_e o;
    const char *at;

    W.refuse = "unauthorized_client";
    assert_int_equal(get(p, W.ring, "x", &o, &at), APR_EGENERAL);
    assert_int_equal(o, BFF_REFRESH_PROVIDER_DOWN);
    assert_string_equal(at, "");
}

/* ---- a dead lock holder ------------------------------------------- */

/* A lock left by a request that died: the waiters wait, bounded; when the
 * lock expires, one of them fetches. */
static void test_lock_holder_died(void **state)
{
    apr_pool_t *p = *state;
    bff_clienttoken_t ct = config(W.ring, NULL);
    const char *key = bff_clienttoken_key(p, &ct);
    const char *lk = bff_ns_key(p, W.ring, BFF_NS_LOCK, 0, W.site, key);
    const char *owner;
    bff_refresh_outcome_e o;
    const char *at;

    assert_int_equal(bff_store_lock_until(W.st, p, lk, fake_sec() + 3, &owner), APR_SUCCESS);
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_SUCCESS);
    assert_int_equal(o, BFF_REFRESH_REFRESHED);
    assert_string_equal(at, "ct-1");
    assert_int_equal(W.calls, 1);

    /* A lock that outlives the wait: 504, the provider never asked. */
    advance(400);
    assert_int_equal(bff_store_lock_until(W.st, p, lk, fake_sec() + 60, &owner), APR_SUCCESS);
    assert_int_equal(get(p, W.ring, NULL, &o, &at), APR_TIMEUP);
    assert_int_equal(o, BFF_REFRESH_WAIT_TIMEOUT);
    assert_int_equal(W.calls, 1);
}

/* ---- a store that does not take the write ------------------------- */

static apr_status_t set_fails(bff_store_t *st, apr_pool_t *p, const char *key,
                              const unsigned char *val, apr_size_t len, apr_int64_t expires)
{
    (void)st;
    (void)p;
    (void)key;
    (void)val;
    (void)len;
    (void)expires;
    return APR_EGENERAL;
}

static void test_store_write_fails(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t broken = *W.st;
    bff_clienttoken_t ct;
    bff_clienttoken_value_t tok;
    bff_refresh_outcome_e o;

    broken.set = set_fails;
    ct = config(W.ring, NULL);
    ct.store = &broken;
    /* This request relays the token it fetched; the next one fetches again. */
    assert_int_equal(bff_clienttoken_get(&ct, p, &tok, &o), APR_SUCCESS);
    assert_string_equal(tok.access_token, "ct-1");
    assert_int_equal(bff_clienttoken_get(&ct, p, &tok, &o), APR_SUCCESS);
    assert_string_equal(tok.access_token, "ct-2");
    assert_int_equal(W.calls, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cached_then_refetched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_expires_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifty_requests_one_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_down_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_down_token_still_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_holder_died, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_write_fails, setup, teardown),
    };

    return unit_run("clienttoken", tests);
}
