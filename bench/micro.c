/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* The per-request steps of a relayed request, timed natively one by one:
 * what callgrind cannot show (under valgrind OpenSSL takes slower code paths,
 * without SHA-NI or VAES). A session record of the size the benchmark's
 * logins produce; the shm store as httpd sets it up (pthread mutex).
 * Prints "name ns-per-call" lines; bench/bench.mjs puts them in the report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <apr_general.h>
#include <apr_global_mutex.h>
#include <apr_strings.h>

#include "bff_cookie.h"
#include "bff_crypto.h"
#include "bff_metrics.h"
#include "bff_session.h"
#include "bff_store.h"
#include "bff_store_shm.h"
#include "bff_util.h"

#define ROUNDS 200000

static double now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static char *filler(apr_pool_t *p, int n)
{
    char *s = apr_palloc(p, (apr_size_t)n + 1);
    int i;

    for (i = 0; i < n; i++) {
        s[i] = (char)('a' + (i * 7 + n) % 26);
    }
    s[n] = '\0';
    return s;
}

typedef struct {
    apr_pool_t *p;
    bff_keyring_t *ring;
    const char *id, *key, *cookie_hdr;
    unsigned char *rec;
    apr_size_t len;
    bff_store_t *store;
    bff_store_t *counted; /* store through the counting wrapper (bff-status) */
    bff_metrics_t *metrics;
} fixture_t;

enum {
    STORE_KEY,
    SESSION_OPEN,
    COOKIE_GET,
    COOKIE_STRIP,
    SHM_GET,
    SHM_GET_COUNTED,
    METRICS_RELAY,
    NSTEPS
};
static const char *const step_names[NSTEPS] = { "store_key (HMAC-SHA256 of the cookie)",
                                                "session_open (AES-256-GCM + decode)",
                                                "cookie_get",
                                                "cookie_strip",
                                                "shm_get (lock, lookup, copy)",
                                                "shm_get counted (bff-status store wrapper)",
                                                "metrics_relay (one relaxed atomic add)" };

static void step(const fixture_t *f, apr_pool_t *sp, int which)
{
    static const char *const names[] = { "__Host-Http-bff", "__Host-Http-bff-tx", NULL };
    bff_session_t *s;
    unsigned char *v;
    apr_size_t l;
    int ki;

    switch (which) {
    case STORE_KEY:
        if (!bff_crypto_store_key(sp, f->ring, 0, "s:", f->id)) {
            abort();
        }
        break;
    case SESSION_OPEN:
        if (bff_session_open(sp, f->ring, f->key, f->rec, f->len, &s, &ki) != APR_SUCCESS) {
            abort();
        }
        break;
    case COOKIE_GET:
        if (!bff_cookie_get(sp, f->cookie_hdr, "__Host-Http-bff")) {
            abort();
        }
        break;
    case COOKIE_STRIP:
        (void)bff_cookie_strip(sp, f->cookie_hdr, names);
        break;
    case SHM_GET:
        if (bff_store_get(f->store, sp, f->key, &v, &l) != APR_SUCCESS) {
            abort();
        }
        break;
    case SHM_GET_COUNTED:
        if (bff_store_get(f->counted, sp, f->key, &v, &l) != APR_SUCCESS) {
            abort();
        }
        break;
    case METRICS_RELAY:
        bff_metrics_relay(f->metrics, BFF_M_RELAY_USER);
        break;
    }
}

static int setup(fixture_t *f)
{
    bff_session_t s;
    apr_global_mutex_t *mx;

    memset(&s, 0, sizeof(s));
    s.iss = "https://127.0.0.1:9443";
    s.sub = "alice-0123456789";
    s.sid = filler(f->p, 21);
    s.access_token = filler(f->p, 43);
    s.token_type = "Bearer";
    s.refresh_token = filler(f->p, 43);
    s.id_token = filler(f->p, 900);
    s.claims = apr_pstrcat(f->p, "{\"name\":\"", filler(f->p, 240), "\"}", NULL);
    s.logout_id = filler(f->p, 43);
    s.at_expires = s.expires = bff_util_now() + 3600;
    s.at_issued = s.created = s.last_access = bff_util_now();
    if (bff_crypto_keyring_create(f->p, &f->ring) != APR_SUCCESS
        || bff_crypto_keyring_add_random(f->ring) != APR_SUCCESS) {
        return 0;
    }
    f->id = bff_session_new_id(f->p);
    f->key = bff_crypto_store_key(f->p, f->ring, 0, "s:", f->id);
    f->cookie_hdr = apr_pstrcat(f->p, "__Host-Http-bff=", f->id, NULL);
    if (!f->key || bff_session_seal(f->p, f->ring, f->key, &s, &f->rec, &f->len) != APR_SUCCESS
        || apr_global_mutex_create(&mx, NULL, APR_LOCK_DEFAULT, f->p) != APR_SUCCESS
        || bff_store_shm_create(f->p, 16 * 1024 * 1024, mx, &f->store) != APR_SUCCESS
        || bff_store_set(f->store, f->p, f->key, f->rec, f->len, s.expires) != APR_SUCCESS) {
        return 0;
    }
    {
        bff_store_spec_t spec = { BFF_STORE_SHM, 16 * 1024 * 1024, NULL };
        if (bff_metrics_create(f->p, &f->metrics) != APR_SUCCESS) {
            return 0;
        }
        f->counted = bff_metrics_store_counted(f->p, f->store,
                                               bff_metrics_store_slot(f->metrics, &spec));
    }
    printf("record %lu bytes\n", (unsigned long)f->len);
    return 1;
}

int main(void)
{
    fixture_t f;
    apr_pool_t *sp;
    double t0, total = 0;
    int i, k;

    apr_initialize();
    memset(&f, 0, sizeof(f));
    apr_pool_create(&f.p, NULL);
    if (!setup(&f)) {
        fprintf(stderr, "micro: set-up failed\n");
        return 1;
    }
    apr_pool_create(&sp, f.p);
    for (k = 0; k < NSTEPS; k++) {
        for (i = 0; i < 1000; i++) {
            step(&f, sp, k); /* warm caches and per-thread contexts */
        }
        apr_pool_clear(sp);
        t0 = now_ns();
        for (i = 0; i < ROUNDS; i++) {
            step(&f, sp, k);
            if ((i & 255) == 255) {
                apr_pool_clear(sp);
            }
        }
        t0 = (now_ns() - t0) / ROUNDS;
        /* A relayed request reads its session through the counting store
         * and adds one to the relay counter: the plain shm_get is shown for
         * comparison, not counted in the request's total. */
        if (k != SHM_GET) {
            total += t0;
        }
        printf("%s\t%.0f\n", step_names[k], t0);
    }
    printf("all steps\t%.0f\n", total);
    apr_terminate();
    return 0;
}
