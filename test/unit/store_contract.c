/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* The store contract suite: see store_contract.h. */
#include "unit.h"

#include <string.h>

#include <apr_strings.h>
#include <apr_time.h>

#include "store_contract.h"

static const store_contract_t *backend;

/* ---- shared helpers ---- */

apr_int64_t store_now(void)
{
    return (apr_int64_t)apr_time_sec(apr_time_now());
}

unsigned char *store_pattern(apr_pool_t *p, apr_size_t len, unsigned seed)
{
    unsigned char *v = apr_palloc(p, len ? len : 1);
    apr_size_t i;

    for (i = 0; i < len; i++) {
        v[i] = (unsigned char)(seed * 131u + i * 7u + (i >> 8));
    }
    return v;
}

void store_expect_val(bff_store_t *st, apr_pool_t *p, const char *key, const void *want,
                      apr_size_t wlen)
{
    unsigned char *v;
    apr_size_t len;

    assert_int_equal(bff_store_get(st, p, key, &v, &len), APR_SUCCESS);
    assert_non_null(v);
    assert_int_equal(len, wlen);
    if (wlen) {
        assert_memory_equal(v, want, wlen);
    }
}

void store_expect_gone(bff_store_t *st, apr_pool_t *p, const char *key)
{
    static unsigned char sentinel[1];
    unsigned char *v = sentinel;
    apr_size_t len = 99;

    assert_int_equal(bff_store_get(st, p, key, &v, &len), APR_NOTFOUND);
    assert_null(v);
    assert_int_equal(len, 0);
}

#define V(s) ((const unsigned char *)(s))

/* ---- per test ---- */

static bff_store_t *open_store(void **state, int small)
{
    bff_store_t *st = backend->open(*state, small);

    assert_non_null(st);
    return st;
}

static void check_store(bff_store_t *st, apr_pool_t *p)
{
    if (backend->check) {
        backend->check(st, p);
    }
}

static int contract_teardown(void **state)
{
    if (backend->close) {
        backend->close();
    }
    return unit_pool_teardown(state);
}

/* ---- the contract ---- */

static void get_set_add_remove(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = open_store(state, 0);
    apr_int64_t exp = store_now() + 3600;

    store_expect_gone(st, p, "a");
    assert_int_equal(bff_store_remove(st, p, "a"), APR_NOTFOUND);
    assert_int_equal(bff_store_set(st, p, "a", V("value-one"), 9, exp), APR_SUCCESS);
    store_expect_val(st, p, "a", "value-one", 9);

    /* add: refused while the key lives, the value unchanged */
    assert_int_equal(bff_store_add(st, p, "a", V("two"), 3, exp), APR_EEXIST);
    store_expect_val(st, p, "a", "value-one", 9);
    assert_int_equal(bff_store_add(st, p, "b", V("two"), 3, exp), APR_SUCCESS);
    store_expect_val(st, p, "b", "two", 3);

    /* set over a live entry, with a shorter value */
    assert_int_equal(bff_store_set(st, p, "a", V("v1"), 2, exp), APR_SUCCESS);
    store_expect_val(st, p, "a", "v1", 2);

    assert_int_equal(bff_store_remove(st, p, "a"), APR_SUCCESS);
    store_expect_gone(st, p, "a");
    assert_int_equal(bff_store_remove(st, p, "a"), APR_NOTFOUND);
    assert_int_equal(bff_store_remove(st, p, "never"), APR_NOTFOUND);
    store_expect_val(st, p, "b", "two", 3);
    check_store(st, p);
}

/* An empty value is a value; a missing one is refused. */
static void empty_and_null_values(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = open_store(state, 0);
    apr_int64_t exp = store_now() + 60;

    assert_int_equal(bff_store_set(st, p, "e1", V(""), 0, exp), APR_SUCCESS);
    store_expect_val(st, p, "e1", "", 0);
    assert_int_equal(bff_store_set(st, p, "e2", NULL, 0, exp), APR_SUCCESS);
    store_expect_val(st, p, "e2", "", 0);
    assert_int_equal(bff_store_add(st, p, "e3", V(""), 0, exp), APR_SUCCESS);
    store_expect_val(st, p, "e3", "", 0);

    assert_int_equal(bff_store_set(st, p, "n", NULL, 5, exp), APR_EINVAL);
    assert_int_equal(bff_store_add(st, p, "n", NULL, 5, exp), APR_EINVAL);
    assert_int_equal(bff_store_replace(st, p, "e1", NULL, 5, exp), APR_EINVAL);
    store_expect_gone(st, p, "n");
    store_expect_val(st, p, "e1", "", 0);
    check_store(st, p);
}

/* Values are bytes: NULs and what looks like protocol lines come back as
 * they went in, and so does a large value. */
static void binary_values(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = open_store(state, 0);
    static const unsigned char bin[] = "x\r\nEND\r\n\0VALUE k 0 3\r\n\0\xff";
    apr_size_t blen = 300 * 1024;
    unsigned char *big = store_pattern(p, blen, 7);
    apr_int64_t exp = store_now() + 60;

    assert_int_equal(bff_store_set(st, p, "bin", bin, sizeof(bin), exp), APR_SUCCESS);
    store_expect_val(st, p, "bin", bin, sizeof(bin));
    assert_int_equal(bff_store_set(st, p, "big", big, blen, exp), APR_SUCCESS);
    store_expect_val(st, p, "big", big, blen);
    /* and a large value replaced by a small one, and back */
    assert_int_equal(bff_store_set(st, p, "big", bin, sizeof(bin), exp), APR_SUCCESS);
    store_expect_val(st, p, "big", bin, sizeof(bin));
    assert_int_equal(bff_store_replace(st, p, "big", big, blen, exp), APR_SUCCESS);
    store_expect_val(st, p, "big", big, blen);
    store_expect_val(st, p, "bin", bin, sizeof(bin));
    check_store(st, p);
}

/* Keys: up to 127 bytes; empty, NULL and longer keys are refused by every
 * operation. */
static void key_limits(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = open_store(state, 0);
    static const char punct[] = "~!#$%&'()*+,-./:;<=>?@[\\]^_`{|}";
    const char *bad[3];
    apr_int64_t exp = store_now() + 60;
    char k127[128], k128[129];
    unsigned char *v;
    apr_size_t len;
    int i;

    memset(k127, 'k', 127);
    k127[127] = '\0';
    memset(k128, 'k', 128);
    k128[128] = '\0';
    bad[0] = "";
    bad[1] = NULL;
    bad[2] = k128;
    for (i = 0; i < 3; i++) {
        assert_int_equal(bff_store_get(st, p, bad[i], &v, &len), APR_EINVAL);
        assert_int_equal(bff_store_set(st, p, bad[i], V("x"), 1, exp), APR_EINVAL);
        assert_int_equal(bff_store_add(st, p, bad[i], V("x"), 1, exp), APR_EINVAL);
        assert_int_equal(bff_store_replace(st, p, bad[i], V("x"), 1, exp), APR_EINVAL);
        assert_int_equal(bff_store_remove(st, p, bad[i]), APR_EINVAL);
    }
    assert_int_equal(bff_store_set(st, p, k127, V("L"), 1, exp), APR_SUCCESS);
    store_expect_val(st, p, k127, "L", 1);
    assert_int_equal(bff_store_set(st, p, punct, V("punct"), 5, exp), APR_SUCCESS);
    store_expect_val(st, p, punct, "punct", 5);
    /* a key is the whole key: its prefix is another one */
    store_expect_gone(st, p, apr_pstrndup(p, k127, 126));
    check_store(st, p);
}

/* replace stores only over a live entry: a removed or expired one is not
 * brought back (a logout must beat a refresh that started before it). */
static void replace_only_live(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = open_store(state, 0);
    apr_int64_t t = store_now();
    unsigned char *big = store_pattern(p, 100 * 1024, 5);

    assert_int_equal(bff_store_replace(st, p, "k", V("v"), 1, t + 60), APR_NOTFOUND);
    store_expect_gone(st, p, "k");

    assert_int_equal(bff_store_add(st, p, "k", V("one"), 3, t + 60), APR_SUCCESS);
    assert_int_equal(bff_store_replace(st, p, "k", V("two"), 3, t + 60), APR_SUCCESS);
    store_expect_val(st, p, "k", "two", 3);
    assert_int_equal(bff_store_replace(st, p, "k", big, 100 * 1024, t + 60), APR_SUCCESS);
    store_expect_val(st, p, "k", big, 100 * 1024);

    assert_int_equal(bff_store_remove(st, p, "k"), APR_SUCCESS);
    assert_int_equal(bff_store_replace(st, p, "k", V("three"), 5, t + 60), APR_NOTFOUND);
    store_expect_gone(st, p, "k");

    /* an expired entry is no entry */
    assert_int_equal(bff_store_set(st, p, "x", V("old"), 3, t - 1), APR_SUCCESS);
    assert_int_equal(bff_store_replace(st, p, "x", V("new"), 3, t + 60), APR_NOTFOUND);
    store_expect_gone(st, p, "x");

    /* a past expiry ends the live entry; over none it is not found */
    assert_int_equal(bff_store_set(st, p, "y", V("live"), 4, t + 60), APR_SUCCESS);
    assert_int_equal(bff_store_replace(st, p, "y", V("v"), 1, t - 10), APR_SUCCESS);
    store_expect_gone(st, p, "y");
    assert_int_equal(bff_store_replace(st, p, "y", V("v"), 1, t - 10), APR_NOTFOUND);
    store_expect_gone(st, p, "y");
    check_store(st, p);
}

/* Expiry given in the past: nothing is stored, a live entry ends (set) or
 * is kept (add); an expired entry is gone for every operation. */
static void expiry_in_the_past(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = open_store(state, 0);
    apr_int64_t t = store_now();

    assert_int_equal(bff_store_set(st, p, "never", V("v"), 1, t - 10), APR_SUCCESS);
    store_expect_gone(st, p, "never");
    assert_int_equal(bff_store_set(st, p, "old", V("live"), 4, t + 60), APR_SUCCESS);
    assert_int_equal(bff_store_set(st, p, "old", V("v"), 1, t - 10), APR_SUCCESS);
    store_expect_gone(st, p, "old");

    /* add over an expired entry succeeds and stores the new value */
    assert_int_equal(bff_store_set(st, p, "k", V("old"), 3, t - 1), APR_SUCCESS);
    assert_int_equal(bff_store_add(st, p, "k", V("new"), 3, t + 60), APR_SUCCESS);
    store_expect_val(st, p, "k", "new", 3);
    assert_int_equal(bff_store_add(st, p, "k", V("3rd"), 3, t + 60), APR_EEXIST);
    /* an add that would expire at once still reports the live entry */
    assert_int_equal(bff_store_add(st, p, "k", V("4th"), 3, t - 10), APR_EEXIST);
    store_expect_val(st, p, "k", "new", 3);
    assert_int_equal(bff_store_add(st, p, "gone", V("x"), 1, t - 10), APR_SUCCESS);
    store_expect_gone(st, p, "gone");

    /* remove of an expired entry: not found, and it is gone */
    assert_int_equal(bff_store_set(st, p, "r", V("v"), 1, t - 1), APR_SUCCESS);
    assert_int_equal(bff_store_remove(st, p, "r"), APR_NOTFOUND);
    store_expect_gone(st, p, "r");

    /* the near and the far future are live (memcached takes more than 30
     * days as an absolute time) */
    assert_int_equal(bff_store_set(st, p, "edge", V("e"), 1, t + 1), APR_SUCCESS);
    store_expect_val(st, p, "edge", "e", 1);
    assert_int_equal(bff_store_set(st, p, "long", V("l"), 1, t + 40 * 24 * 3600), APR_SUCCESS);
    store_expect_val(st, p, "long", "l", 1);
    assert_int_equal(bff_store_set(st, p, "far", V("f"), 1, APR_INT64_C(1) << 40), APR_SUCCESS);
    store_expect_val(st, p, "far", "f", 1);
    check_store(st, p);
}

/* Entries end when their time comes, whatever wrote them. memcached's
 * clock ticks once a second: t + 1 is gone within 3 s. */
static void expiry_on_the_clock(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = open_store(state, 0);
    apr_int64_t t = store_now();

    assert_int_equal(bff_store_set(st, p, "short", V("x"), 1, t + 1), APR_SUCCESS);
    assert_int_equal(bff_store_add(st, p, "short-add", V("x"), 1, t + 1), APR_SUCCESS);
    assert_int_equal(bff_store_set(st, p, "short-rep", V("x"), 1, t + 60), APR_SUCCESS);
    assert_int_equal(bff_store_replace(st, p, "short-rep", V("y"), 1, t + 1), APR_SUCCESS);
    assert_int_equal(bff_store_set(st, p, "long", V("x"), 1, t + 3600), APR_SUCCESS);
    store_expect_val(st, p, "short", "x", 1);
    store_expect_val(st, p, "short-add", "x", 1);
    store_expect_val(st, p, "short-rep", "y", 1);

    apr_sleep(apr_time_from_msec(3100));
    store_expect_gone(st, p, "short");
    store_expect_gone(st, p, "short-add");
    store_expect_gone(st, p, "short-rep");
    assert_int_equal(bff_store_replace(st, p, "short-rep", V("z"), 1, store_now() + 60),
                     APR_NOTFOUND);
    assert_int_equal(bff_store_remove(st, p, "short"), APR_NOTFOUND);
    assert_int_equal(bff_store_replace(st, p, "short-add", V("z"), 1, store_now() + 60),
                     APR_NOTFOUND);
    assert_int_equal(bff_store_add(st, p, "short-add", V("w"), 1, store_now() + 60), APR_SUCCESS);
    store_expect_val(st, p, "short-add", "w", 1);
    store_expect_val(st, p, "long", "x", 1);
    check_store(st, p);
}

/* A value larger than the store takes is refused by set, add and replace
 * alike, and leaves what was there; the largest one fits. */
static void enospc(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = open_store(state, 1);
    apr_size_t max = backend->max_value(st);
    unsigned char *big = store_pattern(p, max + 1, 3);
    apr_int64_t exp = store_now() + 60;

    assert_int_equal(bff_store_set(st, p, "k", V("small"), 5, exp), APR_SUCCESS);
    assert_int_equal(bff_store_set(st, p, "k2", NULL, 0, exp), APR_SUCCESS);
    assert_int_equal(bff_store_set(st, p, "k", big, max + 1, exp), APR_ENOSPC);
    assert_int_equal(bff_store_set(st, p, "huge", big, max + 1, exp), APR_ENOSPC);
    assert_int_equal(bff_store_add(st, p, "k2", big, max + 1, exp), APR_ENOSPC);
    assert_int_equal(bff_store_add(st, p, "k2", big, max + 1, store_now() - 60), APR_ENOSPC);
    assert_int_equal(bff_store_add(st, p, "huge", big, max + 1, exp), APR_ENOSPC);
    assert_int_equal(bff_store_replace(st, p, "k", big, max + 1, exp), APR_ENOSPC);
    assert_int_equal(bff_store_set(st, p, "x", big, (apr_size_t)-1, exp), APR_ENOSPC);
    /* nothing truncated or replaced */
    store_expect_val(st, p, "k", "small", 5);
    store_expect_val(st, p, "k2", "", 0);
    store_expect_gone(st, p, "huge");
    store_expect_gone(st, p, "x");

    assert_int_equal(bff_store_set(st, p, "k", big, max, exp), APR_SUCCESS);
    store_expect_val(st, p, "k", big, max);
    check_store(st, p);
}

/* A lock is removed only by its owner: an owner whose lock expired and was
 * taken over must not remove the new owner's. */
static void lock_owner(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = open_store(state, 0);
    const char *a = NULL, *b = NULL, *c = NULL;

    assert_int_equal(bff_store_lock(st, p, "l:k", 60, &a), APR_SUCCESS);
    assert_non_null(a);
    assert_true(strlen(a) >= 22);
    assert_int_equal(bff_store_lock(st, p, "l:k", 60, &b), APR_EEXIST);
    assert_null(b);

    /* a's lock ends (as at its TTL) and b takes it over */
    assert_int_equal(bff_store_remove(st, p, "l:k"), APR_SUCCESS);
    assert_int_equal(bff_store_lock(st, p, "l:k", 60, &b), APR_SUCCESS);
    assert_non_null(b);
    assert_string_not_equal(a, b);
    /* a's late unlock leaves b's lock in place */
    assert_int_equal(bff_store_unlock(st, p, "l:k", a), APR_NOTFOUND);
    store_expect_val(st, p, "l:k", b, strlen(b));
    assert_int_equal(bff_store_lock(st, p, "l:k", 60, &c), APR_EEXIST);
    /* a prefix of the owner, or no owner, is not the owner */
    assert_int_equal(bff_store_unlock(st, p, "l:k", apr_pstrndup(p, b, strlen(b) - 1)),
                     APR_NOTFOUND);
    assert_int_equal(bff_store_unlock(st, p, "l:k", NULL), APR_NOTFOUND);
    store_expect_val(st, p, "l:k", b, strlen(b));

    assert_int_equal(bff_store_unlock(st, p, "l:k", b), APR_SUCCESS);
    store_expect_gone(st, p, "l:k");
    assert_int_equal(bff_store_unlock(st, p, "l:k", b), APR_NOTFOUND);
    assert_int_equal(bff_store_lock(st, p, "l:k", 60, &c), APR_SUCCESS);

    /* an expired lock is free */
    assert_int_equal(bff_store_lock(st, p, "l:e", -1, &a), APR_SUCCESS);
    assert_int_equal(bff_store_lock(st, p, "l:e", 60, &b), APR_SUCCESS);
    check_store(st, p);
}

#define C(fn) cmocka_unit_test_setup_teardown(fn, unit_pool_setup, contract_teardown)

int store_contract_run(const store_contract_t *b)
{
    const struct CMUnitTest tests[] = {
        C(get_set_add_remove), C(empty_and_null_values), C(binary_values),       C(key_limits),
        C(replace_only_live),  C(expiry_in_the_past),    C(expiry_on_the_clock), C(enospc),
        C(lock_owner),
    };

    static char name[64];

    backend = b;
    apr_snprintf(name, sizeof(name), "store_contract_%s", b->name);
    return unit_run(name, tests);
}
