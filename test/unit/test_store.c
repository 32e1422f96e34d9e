/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* Unit tests for bff_store.c: the BFFSessionStore spec and memcache server
 * parsers, and the lock over a store's failures (a fake store). Lock
 * ownership against the real backends is in the store contract suite
 * (store_contract.c, run by test_store_shm and test_store_memcache). */
#include "unit.h"

#include <string.h>

#include <apr_strings.h>

#include "bff_store.h"

/* ---- BFFSessionStore ---- */

static void test_spec_parse_ok(void **state)
{
    apr_pool_t *p = *state;
    bff_store_spec_t spec;
    const char *err;

    assert_int_equal(bff_store_spec_parse(p, "shm", &spec, &err), APR_SUCCESS);
    assert_int_equal(spec.kind, BFF_STORE_SHM);
    assert_int_equal(spec.shm_size, BFF_STORE_SHM_DEFAULT_SIZE);
    assert_null(err);
    assert_int_equal(bff_store_spec_parse(p, "shm:256M", &spec, &err), APR_SUCCESS);
    assert_int_equal(spec.kind, BFF_STORE_SHM);
    assert_int_equal(spec.shm_size, (apr_size_t)256 * 1024 * 1024);
    assert_int_equal(bff_store_spec_parse(p, "shm:1M", &spec, &err), APR_SUCCESS);
    assert_int_equal(spec.shm_size, (apr_size_t)1024 * 1024);
    assert_int_equal(bff_store_spec_parse(p, "shm:1024K", &spec, &err), APR_SUCCESS);
    assert_int_equal(spec.shm_size, (apr_size_t)1024 * 1024);
    assert_int_equal(bff_store_spec_parse(p, "shm:64G", &spec, &err), APR_SUCCESS);
    assert_int_equal(spec.shm_size, (apr_size_t)64 * 1024 * 1024 * 1024);

    assert_int_equal(bff_store_spec_parse(p, "memcache:127.0.0.1:11211", &spec, &err), APR_SUCCESS);
    assert_int_equal(spec.kind, BFF_STORE_MEMCACHE);
    assert_string_equal(spec.servers, "127.0.0.1:11211");
    assert_int_equal(bff_store_spec_parse(p, "memcache:mc1.example.com:1,mc-2:65535,[::1]:11211",
                                          &spec, &err),
                     APR_SUCCESS);
    assert_string_equal(spec.servers, "mc1.example.com:1,mc-2:65535,[::1]:11211");
}

static void test_spec_option(void **state)
{
    apr_pool_t *p = *state;
    static const char *const bad[] = { "replicas=0",  "replicas=4",  "replicas=", "replicas=2x",
                                       "replicas=-1", "replicas= 2", "replica=2", "weight=2" };
    bff_store_spec_t spec;
    const char *err = NULL;
    size_t i;

    assert_int_equal(bff_store_spec_parse(p, "memcache:a:1,b:2,c:3", &spec, &err), APR_SUCCESS);
    assert_int_equal(spec.nservers, 3);
    assert_int_equal(spec.replicas, 1);
    assert_int_equal(bff_store_spec_option(p, "replicas=2", &spec, &err), APR_SUCCESS);
    assert_int_equal(spec.replicas, 2);
    assert_int_equal(bff_store_spec_option(p, "REPLICAS=3", &spec, &err), APR_SUCCESS);
    assert_int_equal(spec.replicas, 3);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        assert_int_equal(bff_store_spec_option(p, bad[i], &spec, &err), APR_EINVAL);
        assert_non_null(err);
    }
    /* not for shm */
    assert_int_equal(bff_store_spec_parse(p, "shm", &spec, &err), APR_SUCCESS);
    assert_int_equal(bff_store_spec_option(p, "replicas=1", &spec, &err), APR_EINVAL);
}

static void test_spec_parse_bad(void **state)
{
    apr_pool_t *p = *state;
    static const char *const bad[] = { "",
                                       "sh",
                                       "shmx",
                                       "redis:h:1",
                                       "shm:",
                                       "shm:0",
                                       "shm:512K",
                                       "shm:1048575",
                                       "shm:65G",
                                       "shm:abc",
                                       "shm:-1M",
                                       "shm:10M ",
                                       "shm: 10M",
                                       "memcache",
                                       "memcache:",
                                       "memcache:host",
                                       "memcache::11211",
                                       "memcache:h:",
                                       "memcache:h:0",
                                       "memcache:h:65536",
                                       "memcache:h:99999999999999999999",
                                       "memcache:h:12x",
                                       "memcache:h:-1",
                                       "memcache:h:1,",
                                       "memcache:,h:1",
                                       "memcache:h:1,,h:2",
                                       "memcache:h o:1",
                                       "memcache:h/x:1",
                                       "memcache:user@h:1",
                                       "memcache:[::1:11211",
                                       "memcache:[]:11211",
                                       "memcache:::1:11211",
                                       "memcache:h:1 ",
                                       NULL };
    bff_store_spec_t spec;
    const char *err;
    int i;

    for (i = 0; bad[i]; i++) {
        err = NULL;
        if (bff_store_spec_parse(p, bad[i], &spec, &err) != APR_EINVAL) {
            fail_msg("accepted '%s'", bad[i]);
        }
        assert_non_null(err);
        assert_true(strlen(err) > 10);
    }
    assert_int_equal(bff_store_spec_parse(p, NULL, &spec, &err), APR_EINVAL);
    assert_non_null(strstr(err, "expected shm, shm:<size> (e.g. shm:256M) or "
                                "memcache:host:port[,host:port...]"));
    assert_int_equal(bff_store_spec_parse(p, "redis:x", &spec, &err), APR_EINVAL);
    assert_non_null(strstr(err, "expected shm"));
    assert_int_equal(bff_store_spec_parse(p, "shm:512K", &spec, &err), APR_EINVAL);
    assert_non_null(strstr(err, "1M to 64G"));
    assert_int_equal(bff_store_spec_parse(p, "memcache:h:0", &spec, &err), APR_EINVAL);
    assert_non_null(strstr(err, "1 to 65535"));
}

static void test_server_parse(void **state)
{
    apr_pool_t *p = *state;
    static const char list[] = "mc1.example.com:11211,[fe80::1%eth0]:1";
    const char *host = NULL, *err = NULL;
    apr_port_t port = 0;
    int ipv6 = -1;

    /* len bounds the server: the rest of the list is not part of it */
    assert_int_equal(bff_store_server_parse(p, list, 21, &host, &port, &ipv6, &err), APR_SUCCESS);
    assert_string_equal(host, "mc1.example.com");
    assert_int_equal(port, 11211);
    assert_int_equal(ipv6, 0);
    assert_int_equal(bff_store_server_parse(p, list + 22, strlen(list + 22), &host, &port, &ipv6,
                                            &err),
                     APR_SUCCESS);
    assert_string_equal(host, "fe80::1%eth0");
    assert_int_equal(port, 1);
    assert_int_equal(ipv6, 1);
    assert_int_equal(bff_store_server_parse(p, "h_1:65535", 9, NULL, NULL, NULL, &err),
                     APR_SUCCESS);

    /* a refusal names the server and says what was expected */
    assert_int_equal(bff_store_server_parse(p, list, 16, &host, &port, &ipv6, &err), APR_EINVAL);
    assert_non_null(strstr(err, "'mc1.example.com:'"));
    assert_non_null(strstr(err, "1 to 65535"));
    assert_int_equal(bff_store_server_parse(p, "[h_1]:1", 7, NULL, NULL, NULL, &err), APR_EINVAL);
    assert_non_null(strstr(err, "invalid character"));
    assert_int_equal(bff_store_server_parse(p, "h", 1, NULL, NULL, NULL, &err), APR_EINVAL);
    assert_non_null(strstr(err, "has no port"));
    assert_int_equal(bff_store_server_parse(p, "[]:1", 4, NULL, NULL, NULL, &err), APR_EINVAL);
    assert_non_null(strstr(err, "[ipv6-address]:port"));
}

/* ---- bff_store_lock / bff_store_unlock over a failing store ---- */

typedef struct {
    apr_status_t add_rv, get_rv, remove_rv;
    const char *value; /* what get returns */
    int adds, removes;
} fake_t;

static apr_status_t fake_get(bff_store_t *st, apr_pool_t *p, const char *key, unsigned char **val,
                             apr_size_t *len)
{
    fake_t *f = st->ctx;

    *val = (unsigned char *)apr_pstrdup(p, f->value ? f->value : "");
    *len = strlen((char *)*val);
    return f->get_rv;
}

static apr_status_t fake_add(bff_store_t *st, apr_pool_t *p, const char *key,
                             const unsigned char *val, apr_size_t len, apr_int64_t expires)
{
    fake_t *f = st->ctx;

    f->adds++;
    return f->add_rv;
}

static apr_status_t fake_remove(bff_store_t *st, apr_pool_t *p, const char *key)
{
    fake_t *f = st->ctx;

    f->removes++;
    return f->remove_rv;
}

static void test_lock_store_failures(void **state)
{
    apr_pool_t *p = *state;
    fake_t f = { .add_rv = APR_ECONNREFUSED, .get_rv = APR_SUCCESS, .remove_rv = APR_SUCCESS };
    bff_store_t st = {
        .name = "fake", .ctx = &f, .get = fake_get, .add = fake_add, .remove = fake_remove
    };
    const char *owner = "untouched";

    /* a store failure is passed on, and no owner is made up */
    assert_int_equal(bff_store_lock(&st, p, "l:k", 60, &owner), APR_ECONNREFUSED);
    assert_string_equal(owner, "untouched");
    f.add_rv = APR_SUCCESS;
    assert_int_equal(bff_store_lock(&st, p, "l:k", 60, &owner), APR_SUCCESS);
    assert_string_not_equal(owner, "untouched");
    assert_int_equal(f.adds, 2);

    /* unlock: a failed read removes nothing */
    f.get_rv = APR_TIMEUP;
    f.value = owner;
    assert_int_equal(bff_store_unlock(&st, p, "l:k", owner), APR_TIMEUP);
    assert_int_equal(f.removes, 0);
    /* someone else's lock is not removed; ours is, and its failure is passed on */
    f.get_rv = APR_SUCCESS;
    f.value = "someone-else";
    assert_int_equal(bff_store_unlock(&st, p, "l:k", owner), APR_NOTFOUND);
    assert_int_equal(f.removes, 0);
    f.value = owner;
    f.remove_rv = APR_ECONNRESET;
    assert_int_equal(bff_store_unlock(&st, p, "l:k", owner), APR_ECONNRESET);
    assert_int_equal(f.removes, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, unit_pool_setup, unit_pool_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_spec_parse_ok), T(test_spec_parse_bad),      T(test_spec_option),
        T(test_server_parse),  T(test_lock_store_failures),
    };

    return unit_run("store", tests);
}
