/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <string.h>

#include <apr_strings.h>

#include "bff_store_ketama.h"

/* Expected placements computed by an independent implementation of the
 * scheme as docs/deployment.md writes it down (Python's hashlib, outside
 * this code base), so that a change of the scheme fails here. */
static const char *const HOSTS[] = { "10.0.0.1", "10.0.0.2", "cache-c.example" };
static const apr_port_t PORTS[] = { 11211, 11211, 11311 };
static const char *const NAMES[] = { "10.0.0.1:11211", "10.0.0.2:11211", "cache-c.example:11311" };

static bff_ketama_t *ring3(apr_pool_t *p, const int *order, int n)
{
    const char *h[BFF_KETAMA_SERVERS_MAX], *nm[BFF_KETAMA_SERVERS_MAX];
    apr_port_t pt[BFF_KETAMA_SERVERS_MAX];
    bff_ketama_t *r = NULL;
    int i;

    for (i = 0; i < n; i++) {
        h[i] = HOSTS[order[i]];
        pt[i] = PORTS[order[i]];
        nm[i] = NAMES[order[i]];
    }
    assert_int_equal(bff_ketama_create(p, n, h, pt, nm, &r), APR_SUCCESS);
    return r;
}

static const char *server_of(bff_ketama_t *r, const int *order, const char *key)
{
    int out[1];

    assert_int_equal(bff_ketama_servers(r, key, strlen(key), 1, out), 1);
    return NAMES[order[out[0]]];
}

static void test_vectors(void **state)
{
    static const struct {
        const char *key;
        apr_uint32_t hash;
        const char *server;
    } v[] = {
        { "s:0", 0x67b08239, "cache-c.example:11311" },
        { "s:1", 0xfd8f34b7, "10.0.0.1:11211" },
        { "u:abc", 0x591cf612, "10.0.0.2:11211" },
        { "l:xyz", 0x3150c352, "10.0.0.2:11211" },
        { "a", 0xb975c10c, "10.0.0.2:11211" },
        { "session-key-42", 0x13b18a1f, "10.0.0.1:11211" },
        { "x:sid:ff", 0x7c645cf7, "10.0.0.1:11211" },
    };
    static const int order[] = { 0, 1, 2 };
    bff_ketama_t *r = ring3(*state, order, 3);
    size_t i;

    /* the point strings: "host-k" for 11211, "host:port-k" otherwise */
    assert_int_equal(bff_ketama_hash("10.0.0.1-0", 10), 0x2194783c);
    assert_int_equal(bff_ketama_hash("cache-c.example:11311-39", 24) != 0, 1);
    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(bff_ketama_hash(v[i].key, strlen(v[i].key)), v[i].hash);
        assert_string_equal(server_of(r, order, v[i].key), v[i].server);
    }
}

#define NK 20000

static const char *key_n(apr_pool_t *p, int i)
{
    return apr_psprintf(p, "s:%08x%d", (unsigned)(i * 2654435761u), i);
}

/* The listing order does not matter. */
static void test_order(void **state)
{
    apr_pool_t *p = *state;
    static const int a[] = { 0, 1, 2 }, b[] = { 2, 0, 1 }, c[] = { 1, 2, 0 };
    bff_ketama_t *ra = ring3(p, a, 3), *rb = ring3(p, b, 3), *rc = ring3(p, c, 3);
    int i;

    for (i = 0; i < NK; i++) {
        const char *k = key_n(p, i);
        const char *s = server_of(ra, a, k);

        assert_string_equal(s, server_of(rb, b, k));
        assert_string_equal(s, server_of(rc, c, k));
    }
}

/* A third server takes about a third of the keys, all from the others; a
 * server removed gives away only its own. */
static void test_movement(void **state)
{
    apr_pool_t *p = *state;
    static const int two[] = { 0, 1 }, three[] = { 0, 1, 2 };
    bff_ketama_t *r2 = ring3(p, two, 2), *r3 = ring3(p, three, 3);
    int i, stay = 0, count[3] = { 0, 0, 0 };

    for (i = 0; i < NK; i++) {
        const char *k = key_n(p, i);
        const char *s2 = server_of(r2, two, k), *s3 = server_of(r3, three, k);

        if (!strcmp(s2, s3)) {
            stay++;
        }
        else {
            /* a key that moves, moves to the new server */
            assert_string_equal(s3, NAMES[2]);
        }
        count[!strcmp(s3, NAMES[0]) ? 0 : !strcmp(s3, NAMES[1]) ? 1 : 2]++;
    }
    print_message("    2 -> 3 servers: %.1f%% of keys stay; shares %d/%d/%d\n", 100.0 * stay / NK,
                  count[0], count[1], count[2]);
    assert_true(stay >= NK * 55 / 100 && stay <= NK * 80 / 100);
    for (i = 0; i < 3; i++) {
        assert_true(count[i] >= NK / 5 && count[i] <= NK / 2);
    }
}

static void test_replicas(void **state)
{
    apr_pool_t *p = *state;
    static const int three[] = { 0, 1, 2 }, one[] = { 1 };
    bff_ketama_t *r3 = ring3(p, three, 3), *r1 = ring3(p, one, 1);
    int out[4], i, n;

    for (i = 0; i < 200; i++) {
        const char *k = key_n(p, i);
        int first[1];

        n = bff_ketama_servers(r3, k, strlen(k), 3, out);
        assert_int_equal(n, 3);
        assert_true(out[0] != out[1] && out[1] != out[2] && out[0] != out[2]);
        assert_int_equal(bff_ketama_servers(r3, k, strlen(k), 1, first), 1);
        assert_int_equal(first[0], out[0]);
        /* more than there are: all of them */
        assert_int_equal(bff_ketama_servers(r3, k, strlen(k), 5, out), 3);
    }
    assert_int_equal(bff_ketama_servers(r1, "k", 1, 2, out), 1);
    assert_int_equal(out[0], 0);
}

static void test_bad(void **state)
{
    bff_ketama_t *r = NULL;

    assert_int_equal(bff_ketama_create(*state, 0, HOSTS, PORTS, NAMES, &r), APR_EINVAL);
    assert_int_equal(bff_ketama_create(*state, BFF_KETAMA_SERVERS_MAX + 1, HOSTS, PORTS, NAMES, &r),
                     APR_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vectors, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_order, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_movement, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_replicas, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_bad, unit_pool_setup, unit_pool_teardown),
    };

    return unit_run("store_ketama", tests);
}
