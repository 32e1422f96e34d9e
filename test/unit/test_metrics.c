/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_global_mutex.h>
#include <apr_strings.h>
#include <jansson.h>

#include "bff_metrics.h"
#include "bff_store_shm.h"

/* A store that is always down: every call fails as a backend's does when
 * its server is unreachable. */
static apr_status_t down_get(bff_store_t *st, apr_pool_t *p, const char *key, unsigned char **val,
                             apr_size_t *len)
{
    (void)st, (void)p, (void)key, (void)val, (void)len;
    return APR_ECONNREFUSED;
}
static apr_status_t down_put(bff_store_t *st, apr_pool_t *p, const char *key,
                             const unsigned char *val, apr_size_t len, apr_int64_t expires)
{
    (void)st, (void)p, (void)key, (void)val, (void)len, (void)expires;
    return APR_TIMEUP;
}
static apr_status_t down_remove(bff_store_t *st, apr_pool_t *p, const char *key)
{
    (void)st, (void)p, (void)key;
    return APR_EGENERAL;
}
static bff_store_t down_store = { .name = "memcache",
                                  .get = down_get,
                                  .set = down_put,
                                  .add = down_put,
                                  .replace = down_put,
                                  .remove = down_remove };

static bff_metrics_t *block(apr_pool_t *p)
{
    bff_metrics_t *m = NULL;

    assert_int_equal(bff_metrics_create(p, &m), APR_SUCCESS);
    assert_true(bff_metrics_compatible(m));
    return m;
}

static bff_store_t *shm_store(apr_pool_t *p)
{
    apr_global_mutex_t *mx;
    bff_store_t *st;

    assert_int_equal(apr_global_mutex_create(&mx, NULL, APR_LOCK_DEFAULT, p), APR_SUCCESS);
    assert_int_equal(bff_store_shm_create(p, 1024 * 1024, mx, &st), APR_SUCCESS);
    return st;
}

/* Every answer of the store contract is "ok" (the store worked); only a
 * failure is an error. The wrapper passes statuses and values unchanged. */
static void test_counted_store(void **state)
{
    apr_pool_t *p = *state;
    bff_metrics_t *m = block(p);
    bff_store_spec_t shm = { BFF_STORE_SHM, 1024 * 1024, NULL };
    bff_metrics_store_t *slot = bff_metrics_store_slot(m, &shm);
    bff_store_t *inner = shm_store(p), *st = bff_metrics_store_counted(p, inner, slot);
    unsigned char *v;
    apr_size_t l;

    assert_non_null(slot);
    assert_string_equal(st->name, "shm");
    assert_int_equal(bff_store_get(st, p, "s:a", &v, &l), APR_NOTFOUND);
    assert_int_equal(bff_store_add(st, p, "s:a", (const unsigned char *)"1", 1, 4102444800),
                     APR_SUCCESS);
    assert_int_equal(bff_store_add(st, p, "s:a", (const unsigned char *)"2", 1, 4102444800),
                     APR_EEXIST);
    assert_int_equal(bff_store_add_noevict(st, p, "u:x", (const unsigned char *)"1", 1, 4102444800),
                     APR_SUCCESS);
    assert_int_equal(bff_store_get(st, p, "s:a", &v, &l), APR_SUCCESS);
    assert_int_equal(l, 1);
    assert_memory_equal(v, "1", 1);
    assert_int_equal(bff_store_replace(st, p, "s:b", (const unsigned char *)"1", 1, 4102444800),
                     APR_NOTFOUND);
    assert_int_equal(bff_store_remove(st, p, "s:a"), APR_SUCCESS);
    assert_int_equal(slot->ops_ok.v, 7);
    assert_int_equal(slot->ops_error.v, 0);
}

static void test_counted_errors(void **state)
{
    apr_pool_t *p = *state;
    bff_metrics_t *m = block(p);
    bff_store_spec_t mc = { BFF_STORE_MEMCACHE, 0, "127.0.0.1:1,127.0.0.1:2" };
    bff_metrics_store_t *slot = bff_metrics_store_slot(m, &mc);
    bff_store_t *st = bff_metrics_store_counted(p, &down_store, slot);
    unsigned char *v;
    apr_size_t l;

    assert_int_equal(bff_store_get(st, p, "k", &v, &l), APR_ECONNREFUSED);
    assert_int_equal(bff_store_set(st, p, "k", (const unsigned char *)"1", 1, 0), APR_TIMEUP);
    assert_int_equal(bff_store_remove(st, p, "k"), APR_EGENERAL);
    /* No add_noevict in the backend: none in the wrapper (add is used). */
    assert_null(st->add_noevict);
    assert_int_equal(bff_store_add_noevict(st, p, "k", (const unsigned char *)"1", 1, 0),
                     APR_TIMEUP);
    assert_int_equal(slot->ops_ok.v, 0);
    assert_int_equal(slot->ops_error.v, 4);
    assert_int_equal(slot->nservers, 2);
}

static apr_int64_t fake_now;
static apr_int64_t fake_clock(void *baton)
{
    (void)baton;
    return fake_now;
}

/* The sessions gauge: live entries under "s:", not the other namespaces,
 * not expired ones. */
static void test_shm_sessions(void **state)
{
    apr_pool_t *p = *state;
    bff_store_t *st = shm_store(p);
    const unsigned char *v = (const unsigned char *)"1";
    apr_uint64_t n = 99;

    fake_now = 1000000;
    bff_store_shm_set_clock(st, fake_clock, NULL);
    assert_int_equal(bff_store_shm_count_live(st, "s:", &n), APR_SUCCESS);
    assert_int_equal(n, 0);
    assert_int_equal(bff_store_add(st, p, "s:a", v, 1, fake_now + 1000), APR_SUCCESS);
    assert_int_equal(bff_store_add(st, p, "s:b", v, 1, fake_now + 10), APR_SUCCESS);
    assert_int_equal(bff_store_add(st, p, "u:s:c", v, 1, fake_now + 1000), APR_SUCCESS);
    assert_int_equal(bff_store_add(st, p, "l:s:a", v, 1, fake_now + 1000), APR_SUCCESS);
    assert_int_equal(bff_store_shm_count_live(st, "s:", &n), APR_SUCCESS);
    assert_int_equal(n, 2);
    fake_now += 100;
    assert_int_equal(bff_store_shm_count_live(st, "s:", &n), APR_SUCCESS);
    assert_int_equal(n, 1);
    assert_int_equal(bff_store_remove(st, p, "s:a"), APR_SUCCESS);
    assert_int_equal(bff_store_shm_count_live(st, "s:", &n), APR_SUCCESS);
    assert_int_equal(n, 0);
}

/* A slot per distinct BFFSessionStore value, the same one when asked again
 * (a graceful restart), none past the last. */
static void test_slots(void **state)
{
    apr_pool_t *p = *state;
    bff_metrics_t *m = block(p);
    bff_store_spec_t a = { BFF_STORE_SHM, 1024, NULL };
    bff_store_spec_t b = { BFF_STORE_MEMCACHE, 0, "h:1" };
    bff_metrics_store_t *sa = bff_metrics_store_slot(m, &a), *sb = bff_metrics_store_slot(m, &b);
    int i;

    assert_non_null(sa);
    assert_non_null(sb);
    assert_ptr_not_equal(sa, sb);
    assert_ptr_equal(bff_metrics_store_slot(m, &a), sa);
    assert_ptr_equal(bff_metrics_store_slot(m, &b), sb);
    for (i = 2; i < BFF_METRICS_STORES; ++i) {
        bff_store_spec_t s = { BFF_STORE_SHM, (apr_size_t)(2048 + i), NULL };
        assert_non_null(bff_metrics_store_slot(m, &s));
    }
    {
        bff_store_spec_t s = { BFF_STORE_SHM, 99, NULL };
        assert_null(bff_metrics_store_slot(m, &s));
        /* A graceful restart that uses a and b only: the others' slots
         * stay theirs while children of the last start-up may count. */
        bff_metrics_new_generation(m);
        assert_ptr_equal(bff_metrics_store_slot(m, &a), sa);
        assert_ptr_equal(bff_metrics_store_slot(m, &b), sb);
        assert_null(bff_metrics_store_slot(m, &s));
        /* One more: a slot none of the last two used goes to the new
         * store, its counters from zero; a and b keep theirs. */
        sa->ops_ok.v = 5;
        bff_metrics_new_generation(m);
        assert_ptr_equal(bff_metrics_store_slot(m, &a), sa);
        assert_ptr_equal(bff_metrics_store_slot(m, &b), sb);
        {
            bff_metrics_store_t *ss = bff_metrics_store_slot(m, &s);
            assert_non_null(ss);
            assert_ptr_not_equal(ss, sa);
            assert_ptr_not_equal(ss, sb);
            assert_int_equal(ss->ops_ok.v, 0);
            assert_string_equal(ss->spec, "shm:99");
        }
        assert_int_equal(sa->ops_ok.v, 5);
    }
    /* Without a block nothing is counted, nothing crashes. */
    assert_null(bff_metrics_store_slot(NULL, &a));
    assert_ptr_equal(bff_metrics_store_counted(p, &down_store, NULL), &down_store);
    bff_metrics_relay(NULL, BFF_M_RELAY_USER);
    bff_metrics_login_failed(NULL, BFF_OUTCOME_INTERNAL);
    bff_metrics_store_server(NULL, 0, 1);
}

/* Children forked after the block was made all count into it. */
static void test_shared_by_children(void **state)
{
    apr_pool_t *p = *state;
    bff_metrics_t *m = block(p);
    int i, k, status;
    pid_t pid;

    for (k = 0; k < 4; ++k) {
        if ((pid = fork()) == 0) {
            for (i = 0; i < 10000; ++i) {
                bff_metrics_relay(m, BFF_M_RELAY_USER);
            }
            bff_metrics_login_completed(m);
            _exit(0);
        }
        assert_true(pid > 0);
    }
    for (k = 0; k < 4; ++k) {
        assert_true(wait(&status) > 0);
        assert_int_equal(status, 0);
    }
    assert_int_equal(m->relay[BFF_M_RELAY_USER].v, 40000);
    assert_int_equal(m->logins_completed, 4);
    assert_int_equal(m->relay[BFF_M_RELAY_CLIENT].v, 0);
}

static const char *render(apr_pool_t *p, bff_metrics_t *m, const bff_metrics_store_view_t *v, int n,
                          bff_metrics_format_e f)
{
    const char *out = NULL;

    assert_int_equal(bff_metrics_render(p, m, v, n, f, &out), APR_SUCCESS);
    assert_non_null(out);
    return out;
}

/* The per-server rows of a memcache store, by the names in its list; the
 * up gauge only for servers the backend has reported on. */
static void test_render_servers(void **state)
{
    apr_pool_t *p = *state;
    bff_metrics_t *m = block(p);
    bff_store_spec_t mc = { BFF_STORE_MEMCACHE, 0, "10.0.0.1:11211,[::1]:11212,mc3:1" };
    bff_metrics_store_t *slot = bff_metrics_store_slot(m, &mc);
    bff_metrics_store_view_t v;
    const char *t;

    memset(&v, 0, sizeof(v));
    v.slot = slot;
    v.servers = mc.servers;
    bff_metrics_store_server(slot, 0, 0);
    bff_metrics_store_server(slot, 0, 0);
    bff_metrics_store_server(slot, 1, 1);
    bff_metrics_store_server(slot, 64, 1); /* ignored */
    bff_metrics_store_server(slot, -1, 1); /* ignored */
    t = render(p, m, &v, 1, BFF_METRICS_TEXT);
    assert_non_null(strstr(t, "bff_memcache_server_operations_total{server=\"10.0.0.1:11211\","
                              "result=\"ok\"} 2\n"));
    assert_non_null(strstr(
        t, "bff_memcache_server_operations_total{server=\"[::1]:11212\",result=\"error\"} 1\n"));
    assert_non_null(
        strstr(t, "bff_memcache_server_operations_total{server=\"mc3:1\",result=\"ok\"} 0\n"));
    assert_non_null(strstr(t, "bff_memcache_server_up{server=\"10.0.0.1:11211\"} 1\n"));
    assert_non_null(strstr(t, "bff_memcache_server_up{server=\"[::1]:11212\"} 0\n"));
    assert_null(strstr(t, "bff_memcache_server_up{server=\"mc3:1\"}"));
    assert_non_null(
        strstr(t,
               "bff_store_operations_total{backend=\"memcache\",server=\"\",result=\"ok\"} 0\n"));
    /* No shm store: no shm gauges at all. */
    assert_null(strstr(t, "bff_shm_store"));
}

/* Text and JSON carry the same families and samples; every family has
 * HELP and TYPE; the fill ratio is the fuller of entries and blocks. */
static void test_render_formats(void **state)
{
    apr_pool_t *p = *state;
    bff_metrics_t *m = block(p);
    bff_store_spec_t shm = { BFF_STORE_SHM, 1024 * 1024, NULL };
    bff_metrics_store_view_t v;
    const char *t, *j, *line;
    json_t *doc, *fam;
    json_error_t err;
    size_t i, samples = 0, lines = 0, help = 0, type = 0;

    memset(&v, 0, sizeof(v));
    v.slot = bff_metrics_store_slot(m, &shm);
    v.has_shm = 1;
    v.entries_used = 10;
    v.entries_max = 100;
    v.blocks_used = 30;
    v.blocks_max = 120;
    v.sessions = 4;
    bff_metrics_refresh(m, BFF_REFRESH_GRANT_REVOKED);
    bff_metrics_callback_refused(m, BFF_M_CB_REPLAYED);
    bff_metrics_backchannel_ended(m, 3);
    t = render(p, m, &v, 1, BFF_METRICS_TEXT);
    j = render(p, m, &v, 1, BFF_METRICS_JSON);
    assert_non_null(strstr(t, "bff_refreshes_total{outcome=\"invalid_grant\"} 1\n"));
    assert_non_null(strstr(t, "bff_callbacks_refused_total{reason=\"replayed\"} 1\n"));
    assert_non_null(strstr(t, "bff_backchannel_logouts_total{outcome=\"ended\"} 1\n"));
    assert_non_null(strstr(t, "bff_backchannel_logout_sessions_total 3\n"));
    assert_non_null(strstr(t, "bff_shm_store_sessions 4\n"));
    assert_non_null(strstr(t, "bff_shm_store_fill_ratio 0.25\n"));
    for (line = t; *line; line = strchr(line, '\n') + 1) {
        if (!strncmp(line, "# HELP ", 7)) {
            help++;
        }
        else if (!strncmp(line, "# TYPE ", 7)) {
            type++;
        }
        else {
            lines++;
        }
    }
    doc = json_loads(j, 0, &err);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "metrics")), help);
    assert_int_equal(help, type);
    json_array_foreach(json_object_get(doc, "metrics"), i, fam)
    {
        samples += json_array_size(json_object_get(fam, "samples"));
    }
    assert_int_equal(samples, lines);
    json_decref(doc);
    assert_string_equal(bff_metrics_content_type(BFF_METRICS_TEXT),
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(bff_metrics_content_type(BFF_METRICS_JSON), "application/json");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counted_store, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_counted_errors, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_slots, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_shm_sessions, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_shared_by_children, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_render_servers, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_render_formats, unit_pool_setup, unit_pool_teardown),
    };
    return unit_run("metrics", tests);
}
