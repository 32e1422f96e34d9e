/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "bff_log.h"
#include "bff_store.h"
#include "bff_store_ketama.h"
#include "bff_store_journal.h"
#include "bff_store_memcache.h"
#include "log_capture.h"
#include "store_contract.h"

/* These tests run real memcached processes, children of the test (killed
 * with it through PR_SET_PDEATHSIG) on free loopback ports, and stop them
 * by PID. Without memcached the tests fail: the backend would be untested. */

#define MEMCACHED "/usr/bin/memcached"
#define OP_TIMEOUT_MS 300
#define RETRY_MS 1000
#define MCD_MAX 8

/* ---- memcached processes ---- */

typedef struct {
    pid_t pid;
    int port;
} mcd_t;

static pid_t mcd_pids[MCD_MAX];

static void mcd_track(pid_t pid, int add)
{
    int i;

    for (i = 0; i < MCD_MAX; i++) {
        if (add ? mcd_pids[i] == 0 : mcd_pids[i] == pid) {
            mcd_pids[i] = add ? pid : 0;
            return;
        }
    }
}

/* A failed assertion leaves a test early: stop its servers anyway. */
static void mcd_reap_all(void)
{
    int i;

    for (i = 0; i < MCD_MAX; i++) {
        if (mcd_pids[i] > 0) {
            kill(mcd_pids[i], SIGCONT);
            kill(mcd_pids[i], SIGKILL);
            waitpid(mcd_pids[i], NULL, 0);
            mcd_pids[i] = 0;
        }
    }
}

static int test_setup(void **state)
{
    log_count = 0;
    return unit_pool_setup(state);
}

static int test_teardown(void **state)
{
    log_stop();
    mcd_reap_all();
    return unit_pool_teardown(state);
}

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t slen = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &slen), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static int raw_connect(int port)
{
    struct sockaddr_in sa;
    struct timeval tv = { 2, 0 };
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send cmd, read until the reply ends with end. 0 on success. */
static int raw_cmd(int port, const char *cmd, const char *end, char *buf, size_t cap)
{
    size_t n = 0, elen = strlen(end);
    ssize_t r;
    int fd = raw_connect(port);

    if (fd < 0) {
        return -1;
    }
    if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
        close(fd);
        return -1;
    }
    while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0) {
        n += (size_t)r;
        buf[n] = '\0';
        if (n >= elen && !strcmp(buf + n - elen, end)) {
            close(fd);
            return 0;
        }
    }
    close(fd);
    return -1;
}

static long stat_of(int port, const char *name)
{
    char buf[8192], pat[64], *s;

    assert_int_equal(raw_cmd(port, "stats\r\n", "END\r\n", buf, sizeof(buf)), 0);
    apr_snprintf(pat, sizeof(pat), "STAT %s ", name);
    assert_non_null(s = strstr(buf, pat));
    return strtol(s + strlen(pat), NULL, 10);
}

static void mcd_start_mem(mcd_t *m, int port, const char *mem_mb)
{
    char portstr[16], buf[256];
    int i, devnull;
    pid_t pid;

    if (access(MEMCACHED, X_OK) != 0) {
        fail_msg("%s is not installed: the memcache store cannot be tested", MEMCACHED);
    }
    m->port = port ? port : free_port();
    apr_snprintf(portstr, sizeof(portstr), "%d", m->port);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 1);
        dup2(devnull, 2);
        /* memcached refuses to run as root without -u. */
        if (geteuid() == 0) {
            execl(MEMCACHED, "memcached", "-l", "127.0.0.1", "-p", portstr, "-U", "0", "-m", mem_mb,
                  "-t", "2", "-u", "root", (char *)NULL);
        }
        else {
            execl(MEMCACHED, "memcached", "-l", "127.0.0.1", "-p", portstr, "-U", "0", "-m", mem_mb,
                  "-t", "2", (char *)NULL);
        }
        _exit(127);
    }
    m->pid = pid;
    mcd_track(pid, 1);
    for (i = 0; i < 300; i++) {
        if (raw_cmd(m->port, "version\r\n", "\r\n", buf, sizeof(buf)) == 0
            && !strncmp(buf, "VERSION ", 8)) {
            return;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            mcd_track(pid, 0);
            fail_msg("memcached exited at start (port %d)", m->port);
        }
        apr_sleep(apr_time_from_msec(10));
    }
    fail_msg("memcached did not answer on port %d", m->port);
}

static void mcd_start(mcd_t *m, int port)
{
    mcd_start_mem(m, port, "64");
}

/* Returns once the process is really stopped: kill() alone may return
 * while memcached still answers a request or two. */
static void mcd_pause(mcd_t *m)
{
    int status;

    assert_int_equal(kill(m->pid, SIGSTOP), 0);
    assert_int_equal(waitpid(m->pid, &status, WUNTRACED), m->pid);
    assert_true(WIFSTOPPED(status));
}

static void mcd_stop(mcd_t *m, int sig)
{
    kill(m->pid, SIGCONT);
    kill(m->pid, sig);
    waitpid(m->pid, NULL, 0);
    mcd_track(m->pid, 0);
    m->pid = 0;
}

/* ---- helpers ---- */

static apr_interval_time_t ms_since(apr_time_t t0)
{
    return apr_time_as_msec(apr_time_now() - t0);
}

static void test_opts(bff_store_memcache_opts_t *o)
{
    bff_store_memcache_opts_default(o);
    o->op_timeout = apr_time_from_msec(OP_TIMEOUT_MS);
    o->retry_after = apr_time_from_msec(RETRY_MS);
}

static bff_store_t *mkstore(apr_pool_t *p, const char *servers, const bff_store_memcache_opts_t *o)
{
    bff_store_memcache_opts_t def;
    bff_store_t *st = NULL;
    const char *err = NULL;
    apr_status_t rv;

    if (!o) {
        test_opts(&def);
        o = &def;
    }
    rv = bff_store_memcache_create(p, servers, o, &st, &err);
    if (rv != APR_SUCCESS) {
        fail_msg("create(%s): %s", servers, err ? err : "?");
    }
    assert_non_null(st);
    assert_string_equal(st->name, "memcache");
    return st;
}

static const char *servers1(apr_pool_t *p, const mcd_t *a)
{
    return apr_psprintf(p, "127.0.0.1:%d", a->port);
}

static const char *servers2(apr_pool_t *p, const mcd_t *a, const mcd_t *b)
{
    return apr_psprintf(p, "127.0.0.1:%d,127.0.0.1:%d", a->port, b->port);
}

/* A store failure: neither an answer nor a refusal of the input. */
#define expect_unavailable(call) expect_unavailable_at((call), __LINE__)
static void expect_unavailable_at(apr_status_t rv, int line)
{
    if (rv == APR_SUCCESS || rv == APR_NOTFOUND || rv == APR_EEXIST || rv == APR_ENOSPC
        || rv == APR_EINVAL) {
        fail_msg("line %d: expected a store failure, got status %d", line, rv);
    }
}

static void set_ok(bff_store_t *st, apr_pool_t *p, const char *key, const char *val)
{
    assert_int_equal(bff_store_set(st, p, key, (const unsigned char *)val, strlen(val),
                                   store_now() + 3600),
                     APR_SUCCESS);
}

/* ---- options and creation ---- */

static void test_opts_default(void **state)
{
    bff_store_memcache_opts_t o;

    memset(&o, 0x55, sizeof(o));
    bff_store_memcache_opts_default(&o);
    assert_int_equal(o.conn_min, 0);
    assert_int_equal(o.conn_smax, 25);
    assert_int_equal(o.conn_max, 25);
    assert_int_equal(o.op_timeout, apr_time_from_msec(500));
    assert_int_equal(o.retry_after, apr_time_from_sec(5));
    assert_int_equal(o.max_item, 1024 * 1024);
    assert_true(o.conn_ttl >= 0);
}

static void create_bad(apr_pool_t *p, const char *servers, const bff_store_memcache_opts_t *o)
{
    bff_store_t *st = (bff_store_t *)&st;
    const char *err = NULL;

    if (bff_store_memcache_create(p, servers, o, &st, &err) != APR_EINVAL) {
        fail_msg("create accepted '%s'", servers ? servers : "(null)");
    }
    assert_null(st);
    assert_non_null(err);
}

static void test_create_bad(void **state)
{
    apr_pool_t *p = *state;
    bff_store_memcache_opts_t o;
    static const char *const bad[] = { "",        "host",  "host:",  ":11211",      "h:0",
                                       "h:65536", "h:12a", "h:-1",   "[::1]:11211", "a:1,,b:2",
                                       "a:1,",    ",a:1",  "h st:1", "h/x:1",       "h\n:1",
                                       NULL };
    bff_store_t *st;
    const char *err;
    const char *many;
    int i;

    create_bad(p, NULL, NULL);
    for (i = 0; bad[i]; i++) {
        create_bad(p, bad[i], NULL);
    }
    many = "h:1";
    for (i = 1; i < 65; i++) {
        many = apr_pstrcat(p, many, ",h:1", NULL);
    }
    create_bad(p, many, NULL);

#define BAD_OPT(field, value) \
    do { \
        test_opts(&o); \
        o.field = (value); \
        create_bad(p, "h:1", &o); \
    } while (0)
    BAD_OPT(conn_max, 0);
    BAD_OPT(conn_min, -1);
    BAD_OPT(conn_smax, 26);
    BAD_OPT(conn_ttl, -1);
    BAD_OPT(op_timeout, 0);
    BAD_OPT(op_timeout, -5);
    BAD_OPT(op_timeout, apr_time_from_sec(61));
    BAD_OPT(retry_after, -1);
    BAD_OPT(max_item, 0);
    test_opts(&o);
    o.conn_min = 5;
    o.conn_smax = 4;
    create_bad(p, "h:1", &o);
#undef BAD_OPT

    /* Nothing connects at create: no server needed, names allowed. */
    assert_int_equal(bff_store_memcache_create(p, "localhost:1,127.0.0.1:2", NULL, &st, &err),
                     APR_SUCCESS);
    assert_non_null(st);
    assert_int_equal(bff_store_memcache_server_index(st, "a b"), -1);
    assert_int_equal(bff_store_memcache_server_index(st, ""), -1);
    i = bff_store_memcache_server_index(st, "k1");
    assert_true(i == 0 || i == 1);
}

/* ---- semantics ---- */

/* What the contract's ENOSPC leaves to the backend: a value over max_item
 * is refused before anything is sent; one over the server's own item limit
 * (-I 1m) but within max_item is refused by the server, which is a failure
 * (memcached also drops the old value then), and the server is not treated
 * as down. */
static void test_enospc(void **state)
{
    apr_pool_t *p = *state;
    bff_store_memcache_opts_t o;
    unsigned char *v1000 = store_pattern(p, 1001, 3), *huge;
    mcd_t a;
    bff_store_t *st;
    long sets;

    mcd_start(&a, 0);
    test_opts(&o);
    o.max_item = 1000;
    st = mkstore(p, servers1(p, &a), &o);

    set_ok(st, p, "k", "small");
    assert_int_equal(bff_store_set(st, p, "k2", NULL, 0, store_now() + 60), APR_SUCCESS);
    sets = stat_of(a.port, "cmd_set");
    assert_int_equal(bff_store_set(st, p, "k", v1000, 1001, store_now() + 60), APR_ENOSPC);
    assert_int_equal(bff_store_add(st, p, "k2", v1000, 1001, store_now() + 60), APR_ENOSPC);
    assert_int_equal(bff_store_replace(st, p, "k", v1000, 1001, store_now() + 60), APR_ENOSPC);
    assert_int_equal(stat_of(a.port, "cmd_set"), sets);

    o.max_item = 2 * 1024 * 1024;
    st = mkstore(p, servers1(p, &a), &o);
    huge = store_pattern(p, 1536 * 1024, 5);
    log_start();
    expect_unavailable(bff_store_set(st, p, "k", huge, 1536 * 1024, store_now() + 60));
    store_expect_gone(st, p, "k");
    store_expect_val(st, p, "k2", "", 0);
    assert_int_equal(log_has("BFF01601", NULL), 0);
    log_stop();

    mcd_stop(&a, SIGKILL);
}

/* Keys memcached's text protocol cannot carry (the contract covers the
 * length limit) are refused before anything is sent. */
static void test_bad_keys(void **state)
{
    apr_pool_t *p = *state;
    const unsigned char *x = (const unsigned char *)"x";
    char k128[129];
    static const char *const bad[] = { "",      "a b",         "a\r\nset", "a\tb",   "a\x01",
                                       "a\x7f", "caf\xc3\xa9", " lead",    "trail ", NULL };
    mcd_t a;
    bff_store_t *st;
    unsigned char *v;
    apr_size_t len;
    int i;

    mcd_start(&a, 0);
    st = mkstore(p, servers1(p, &a), NULL);
    memset(k128, 'k', 128);
    k128[128] = '\0';

    for (i = 0; bad[i]; i++) {
        assert_int_equal(bff_store_get(st, p, bad[i], &v, &len), APR_EINVAL);
        assert_int_equal(bff_store_set(st, p, bad[i], x, 1, store_now() + 60), APR_EINVAL);
        assert_int_equal(bff_store_add(st, p, bad[i], x, 1, store_now() + 60), APR_EINVAL);
        assert_int_equal(bff_store_replace(st, p, bad[i], x, 1, store_now() + 60), APR_EINVAL);
        assert_int_equal(bff_store_remove(st, p, bad[i]), APR_EINVAL);
    }
    assert_int_equal(bff_store_get(st, p, NULL, &v, &len), APR_EINVAL);
    assert_int_equal(bff_store_set(st, p, NULL, x, 1, store_now() + 60), APR_EINVAL);
    assert_int_equal(bff_store_remove(st, p, NULL), APR_EINVAL);
    assert_int_equal(bff_store_set(st, p, k128, x, 1, store_now() + 60), APR_EINVAL);
    assert_int_equal(bff_store_get(st, p, k128, &v, &len), APR_EINVAL);
    /* nothing reached the server */
    assert_int_equal(stat_of(a.port, "cmd_set"), 0);
    assert_int_equal(stat_of(a.port, "cmd_get"), 0);
    assert_int_equal(stat_of(a.port, "delete_misses") + stat_of(a.port, "delete_hits"), 0);

    mcd_stop(&a, SIGKILL);
}

/* ---- several servers and faults ---- */

#define NKEYS 48

static const char *key_n(apr_pool_t *p, int i)
{
    return apr_psprintf(p, "sess-%04d-key", i);
}

static void test_spread(void **state)
{
    apr_pool_t *p = *state;
    mcd_t a, b;
    bff_store_t *st;
    int i, on_a = 0;

    mcd_start(&a, 0);
    mcd_start(&b, 0);
    st = mkstore(p, servers2(p, &a, &b), NULL);
    for (i = 0; i < NKEYS; i++) {
        set_ok(st, p, key_n(p, i), key_n(p, i));
        on_a += bff_store_memcache_server_index(st, key_n(p, i)) == 0;
    }
    assert_true(on_a > 0 && on_a < NKEYS);
    /* The servers hold exactly the keys the index says. */
    assert_int_equal(stat_of(a.port, "curr_items"), on_a);
    assert_int_equal(stat_of(b.port, "curr_items"), NKEYS - on_a);
    for (i = 0; i < NKEYS; i++) {
        store_expect_val(st, p, key_n(p, i), key_n(p, i), strlen(key_n(p, i)));
    }
    mcd_stop(&a, SIGKILL);
    mcd_stop(&b, SIGKILL);
}

static void test_server_down_and_back(void **state)
{
    apr_pool_t *p = *state;
    mcd_t a, b;
    bff_store_t *st;
    unsigned char *v;
    apr_size_t len;
    apr_time_t t0;
    apr_interval_time_t worst = 0, took;
    apr_status_t rv;
    const char *bport, *kb = NULL;
    int i, ok = 0, failed = 0;

    mcd_start(&a, 0);
    mcd_start(&b, 0);
    st = mkstore(p, servers2(p, &a, &b), NULL);
    assert_int_equal(st->child_init(st, p), APR_SUCCESS);
    for (i = 0; i < NKEYS; i++) {
        set_ok(st, p, key_n(p, i), key_n(p, i));
    }

    log_start();
    mcd_stop(&b, SIGKILL);
    for (i = 0; i < NKEYS; i++) {
        t0 = apr_time_now();
        rv = bff_store_get(st, p, key_n(p, i), &v, &len);
        took = ms_since(t0);
        worst = took > worst ? took : worst;
        if (bff_store_memcache_server_index(st, key_n(p, i)) == 0) {
            assert_int_equal(rv, APR_SUCCESS);
            assert_int_equal(len, strlen(key_n(p, i)));
            ok++;
        }
        else {
            expect_unavailable(rv);
            kb = key_n(p, i);
            failed++;
        }
    }
    assert_true(ok > 0 && failed > 0);
    assert_non_null(kb);
    /* every kind of operation on a key of the dead server fails, fast */
    t0 = apr_time_now();
    expect_unavailable(bff_store_set(st, p, kb, (const unsigned char *)"x", 1, store_now() + 60));
    expect_unavailable(bff_store_add(st, p, kb, (const unsigned char *)"x", 1, store_now() + 60));
    expect_unavailable(bff_store_add(st, p, kb, (const unsigned char *)"x", 1, store_now() - 60));
    expect_unavailable(bff_store_remove(st, p, kb));
    took = ms_since(t0);
    worst = took > worst ? took : worst;
    print_message("    killed server: worst op %" APR_TIME_T_FMT " ms\n", worst);
    assert_true(worst < 2000);
    bport = apr_psprintf(p, ":%d", b.port);
    assert_int_equal(log_has("BFF01601", bport), 1);
    assert_int_equal(log_count, 1);

    /* back on the same port (empty): used again once retry_after passed */
    mcd_start(&b, b.port);
    expect_unavailable(bff_store_get(st, p, kb, &v, &len));
    apr_sleep(apr_time_from_msec(RETRY_MS + 100));
    store_expect_gone(st, p, kb);
    assert_int_equal(log_has("BFF01602", bport), 1);
    set_ok(st, p, kb, "again");
    store_expect_val(st, p, kb, "again", 5);
    for (i = 0; i < NKEYS; i++) {
        rv = bff_store_get(st, p, key_n(p, i), &v, &len);
        assert_true(rv == APR_SUCCESS || rv == APR_NOTFOUND);
    }
    assert_int_equal(log_count, 2);
    log_stop();

    mcd_stop(&a, SIGKILL);
    mcd_stop(&b, SIGKILL);
}

static void burst(apr_pool_t *p, bff_store_t *st, int nthreads, int ops);

/* memcached restarted between two requests: the idle connections (several,
 * after a burst of concurrent requests) are all dead but nothing failed
 * yet. The next request must not fail on them. */
static void test_restart_stale_connections(void **state)
{
    apr_pool_t *p = *state;
    mcd_t a;
    bff_store_t *st;
    int port;

    mcd_start(&a, 0);
    st = mkstore(p, servers1(p, &a), NULL);
    burst(p, st, 6, 20);
    /* several idle connections now (+1: the stats connection itself) */
    assert_true(stat_of(a.port, "curr_connections") >= 3 + 1);
    set_ok(st, p, "k", "v");
    store_expect_val(st, p, "k", "v", 1);
    port = a.port;
    mcd_stop(&a, SIGKILL);
    mcd_start(&a, port);

    log_start();
    store_expect_gone(st, p, "k");
    set_ok(st, p, "k", "w");
    store_expect_val(st, p, "k", "w", 1);
    assert_int_equal(log_count, 0);
    log_stop();
    mcd_stop(&a, SIGKILL);
}

static void test_stopped_server(void **state)
{
    apr_pool_t *p = *state;
    mcd_t a, b;
    bff_store_t *st;
    unsigned char *v;
    apr_size_t len;
    apr_time_t t0;
    apr_interval_time_t took;
    const char *ka = NULL, *kb = NULL;
    int i;

    mcd_start(&a, 0);
    mcd_start(&b, 0);
    st = mkstore(p, servers2(p, &a, &b), NULL);
    for (i = 0; i < NKEYS && (!ka || !kb); i++) {
        if (bff_store_memcache_server_index(st, key_n(p, i)) == 0) {
            ka = key_n(p, i);
        }
        else {
            kb = key_n(p, i);
        }
    }
    assert_non_null(ka);
    assert_non_null(kb);
    set_ok(st, p, ka, "a");
    set_ok(st, p, kb, "b");

    log_start();
    mcd_pause(&b);
    t0 = apr_time_now();
    expect_unavailable(bff_store_get(st, p, kb, &v, &len));
    took = ms_since(t0);
    print_message("    stopped server: first op failed after %" APR_TIME_T_FMT " ms "
                  "(op_timeout %d ms)\n",
                  took, OP_TIMEOUT_MS);
    assert_true(took >= OP_TIMEOUT_MS - 50 && took <= 2 * OP_TIMEOUT_MS);
    /* then fail fast while it is skipped; the other server still works */
    t0 = apr_time_now();
    expect_unavailable(bff_store_set(st, p, kb, (const unsigned char *)"x", 1, store_now() + 60));
    expect_unavailable(bff_store_remove(st, p, kb));
    took = ms_since(t0);
    assert_true(took < 50);
    store_expect_val(st, p, ka, "a", 1);
    assert_int_equal(log_has("BFF01601", apr_psprintf(p, ":%d", b.port)), 1);

    /* one request tries again after retry_after: bounded again */
    apr_sleep(apr_time_from_msec(RETRY_MS + 50));
    t0 = apr_time_now();
    expect_unavailable(bff_store_get(st, p, kb, &v, &len));
    took = ms_since(t0);
    print_message("    stopped server: retry failed after %" APR_TIME_T_FMT " ms\n", took);
    assert_true(took <= 2 * OP_TIMEOUT_MS);
    t0 = apr_time_now();
    expect_unavailable(bff_store_get(st, p, kb, &v, &len));
    assert_true(ms_since(t0) < 50);

    /* resumed: its data is still there once retry_after passed */
    assert_int_equal(kill(b.pid, SIGCONT), 0);
    apr_sleep(apr_time_from_msec(RETRY_MS + 50));
    store_expect_val(st, p, kb, "b", 1);
    set_ok(st, p, kb, "b2");
    store_expect_val(st, p, kb, "b2", 2);
    assert_int_equal(log_has("BFF01602", NULL), 1);
    assert_int_equal(log_has("BFF01601", NULL), 1);
    log_stop();

    mcd_stop(&a, SIGKILL);
    mcd_stop(&b, SIGKILL);
}

static void test_no_server_at_start(void **state)
{
    apr_pool_t *p = *state;
    mcd_t a;
    bff_store_t *st;
    unsigned char *v;
    apr_size_t len;
    apr_time_t t0;
    const char *owner = NULL;
    int port = free_port();

    st = mkstore(p, apr_psprintf(p, "127.0.0.1:%d", port), NULL);
    assert_int_equal(st->child_init(st, p), APR_SUCCESS);
    log_start();
    t0 = apr_time_now();
    expect_unavailable(bff_store_get(st, p, "k", &v, &len));
    expect_unavailable(bff_store_set(st, p, "k", (const unsigned char *)"x", 1, store_now() + 60));
    /* a store that is down: a failure, never "not found" or "exists" */
    expect_unavailable(bff_store_add(st, p, "k", (const unsigned char *)"x", 1, store_now() + 60));
    expect_unavailable(
        bff_store_replace(st, p, "k", (const unsigned char *)"x", 1, store_now() + 60));
    expect_unavailable(bff_store_remove(st, p, "k"));
    expect_unavailable(bff_store_lock(st, p, "l:k", 60, &owner));
    assert_null(owner);
    assert_true(ms_since(t0) < 1000);
    assert_int_equal(log_has("BFF01601", NULL), 1);

    mcd_start(&a, port);
    expect_unavailable(bff_store_get(st, p, "k", &v, &len));
    apr_sleep(apr_time_from_msec(RETRY_MS + 50));
    store_expect_gone(st, p, "k");
    set_ok(st, p, "k", "v");
    store_expect_val(st, p, "k", "v", 1);
    assert_int_equal(log_has("BFF01602", NULL), 1);
    log_stop();
    mcd_stop(&a, SIGKILL);
}

/* ---- processes and threads ---- */

static int child_work(bff_store_t *st)
{
    apr_pool_t *p;
    unsigned char *v;
    apr_size_t len;
    int i;

    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return 10;
    }
    for (i = 0; i < 50; i++) {
        if (bff_store_get(st, p, "parent", &v, &len) != APR_SUCCESS || len != 6
            || memcmp(v, "parent", 6)) {
            return 11;
        }
        if (bff_store_set(st, p, "child", (const unsigned char *)"child", 5, store_now() + 60)
            != APR_SUCCESS) {
            return 12;
        }
    }
    return 0;
}

/* Used in the parent without child_init, then in a forked child: the child
 * must open its own connections (sharing the parent's sockets would mix
 * replies between the two). */
static void test_fork(void **state)
{
    apr_pool_t *p = *state;
    mcd_t a;
    bff_store_t *st;
    pid_t pid;
    int status, i;
    long conns_before;

    mcd_start(&a, 0);
    st = mkstore(p, servers1(p, &a), NULL);
    set_ok(st, p, "parent", "parent");
    conns_before = stat_of(a.port, "total_connections");
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(child_work(st));
    }
    for (i = 0; i < 50; i++) {
        store_expect_val(st, p, "parent", "parent", 6);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    store_expect_val(st, p, "child", "child", 5);
    /* the child connected itself (plus our stats connection) */
    assert_true(stat_of(a.port, "total_connections") >= conns_before + 2);
    mcd_stop(&a, SIGKILL);
}

#define NTHREADS 8
#define THREAD_OPS 150

typedef struct {
    bff_store_t *st;
    int id;
    int ops;
    int errors;
} thr_arg_t;

static void *APR_THREAD_FUNC thr_main(apr_thread_t *t, void *data)
{
    thr_arg_t *a = data;
    apr_pool_t *p;
    unsigned char *v;
    apr_size_t len;
    char key[32], val[64];
    int i;

    apr_pool_create(&p, NULL);
    for (i = 0; i < a->ops; i++) {
        apr_snprintf(key, sizeof(key), "t%d-%d", a->id, i % 10);
        apr_snprintf(val, sizeof(val), "value-%d-%d", a->id, i);
        if (bff_store_set(a->st, p, key, (unsigned char *)val, strlen(val), store_now() + 60)
                != APR_SUCCESS
            || bff_store_get(a->st, p, key, &v, &len) != APR_SUCCESS || len != strlen(val)
            || memcmp(v, val, len)) {
            a->errors++;
        }
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void burst(apr_pool_t *p, bff_store_t *st, int nthreads, int ops)
{
    apr_thread_t *t[NTHREADS];
    thr_arg_t args[NTHREADS];
    apr_status_t trv;
    int i;

    assert_true(nthreads <= NTHREADS);
    for (i = 0; i < nthreads; i++) {
        args[i].st = st;
        args[i].id = i;
        args[i].ops = ops;
        args[i].errors = 0;
        assert_int_equal(apr_thread_create(&t[i], NULL, thr_main, &args[i], p), APR_SUCCESS);
    }
    for (i = 0; i < nthreads; i++) {
        apr_thread_join(&trv, t[i]);
    }
    for (i = 0; i < nthreads; i++) {
        assert_int_equal(args[i].errors, 0);
    }
}

/* Many threads, fewer connections than threads, client built lazily by
 * whichever thread comes first. */
static void test_threads(void **state)
{
    apr_pool_t *p = *state;
    bff_store_memcache_opts_t o;
    mcd_t a, b;
    bff_store_t *st;

    mcd_start(&a, 0);
    mcd_start(&b, 0);
    test_opts(&o);
    o.conn_smax = o.conn_max = 3;
    o.op_timeout = apr_time_from_sec(2);
    st = mkstore(p, servers2(p, &a, &b), &o);
    burst(p, st, NTHREADS, THREAD_OPS);
    assert_true(stat_of(a.port, "curr_connections") <= 3 + 2 + 10);
    mcd_stop(&a, SIGKILL);
    mcd_stop(&b, SIGKILL);
}

/* ---- replicas ---- */

static bff_store_t *mkstore_r(apr_pool_t *p, const char *servers, int replicas)
{
    bff_store_memcache_opts_t o;
    bff_store_t *st;

    test_opts(&o);
    o.replicas = replicas;
    st = mkstore(p, servers, &o);
    assert_int_equal(st->child_init(st, p), APR_SUCCESS);
    return st;
}

static const char *servers3(apr_pool_t *p, const mcd_t *m)
{
    return apr_psprintf(p, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", m[0].port, m[1].port,
                        m[2].port);
}

/* Whether a server holds key, asked over memcached's own protocol. */
static int raw_has(int port, const char *key)
{
    char cmd[256], buf[4096];

    apr_snprintf(cmd, sizeof(cmd), "get %s\r\n", key);
    assert_int_equal(raw_cmd(port, cmd, "END\r\n", buf, sizeof(buf)), 0);
    return !strncmp(buf, "VALUE ", 6);
}

static void raw_ok(int port, const char *cmd, const char *end)
{
    char buf[256];

    assert_int_equal(raw_cmd(port, cmd, end, buf, sizeof(buf)), 0);
}

static void raw_del(int port, const char *key)
{
    char cmd[256], buf[64];

    apr_snprintf(cmd, sizeof(cmd), "delete %s\r\n", key);
    assert_int_equal(raw_cmd(port, cmd, "\r\n", buf, sizeof(buf)), 0);
}

/* What a removal leaves on a replica: "!" + hex(MD5(key)). */
static const char *tomb_of(apr_pool_t *p, const char *key)
{
    unsigned char d[16];
    char *t = apr_palloc(p, 34);
    int i;

    bff_ketama_digest(key, strlen(key), d);
    t[0] = '!';
    for (i = 0; i < 16; i++) {
        apr_snprintf(t + 1 + 2 * i, 3, "%02x", d[i]);
    }
    return t;
}

static int first_replica(bff_store_t *st, const char *key, int *second)
{
    int idx[64];

    assert_int_equal(bff_store_memcache_replica_servers(st, key, idx), 2);
    if (second) {
        *second = idx[1];
    }
    return idx[0];
}

/* Every write lands on both replicas and on no other server. */
static void test_replicas_placement(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m[3];
    bff_store_t *st;
    int i, j, a, b;

    for (i = 0; i < 3; i++) {
        mcd_start(&m[i], 0);
    }
    st = mkstore_r(p, servers3(p, m), 2);
    for (i = 0; i < NKEYS; i++) {
        set_ok(st, p, key_n(p, i), key_n(p, i));
    }
    for (i = 0; i < NKEYS; i++) {
        a = first_replica(st, key_n(p, i), &b);
        for (j = 0; j < 3; j++) {
            assert_int_equal(raw_has(m[j].port, key_n(p, i)), j == a || j == b);
        }
    }
    assert_int_equal(stat_of(m[0].port, "curr_items") + stat_of(m[1].port, "curr_items")
                         + stat_of(m[2].port, "curr_items"),
                     2 * NKEYS);
    /* a reader with the servers listed in another order finds them all */
    {
        bff_store_t *other = mkstore_r(p,
                                       apr_psprintf(p, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d",
                                                    m[2].port, m[0].port, m[1].port),
                                       2);
        for (i = 0; i < NKEYS; i++) {
            store_expect_val(other, p, key_n(p, i), key_n(p, i), strlen(key_n(p, i)));
        }
    }
}

/* Any one server killed: every entry is still there; restarted empty, it
 * gets its entries back as they are read (first replica) or written. */
static void test_replicas_kill_restart(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m[3];
    bff_store_t *st;
    int i, x, a, b, back, wrote;

    for (i = 0; i < 3; i++) {
        mcd_start(&m[i], 0);
    }
    st = mkstore_r(p, servers3(p, m), 2);
    for (i = 0; i < NKEYS; i++) {
        set_ok(st, p, key_n(p, i), key_n(p, i));
    }
    for (x = 0; x < 3; x++) {
        mcd_stop(&m[x], SIGKILL);
        for (i = 0; i < NKEYS; i++) {
            store_expect_val(st, p, key_n(p, i), key_n(p, i), strlen(key_n(p, i)));
            assert_int_equal(bff_store_add(st, p, key_n(p, i), (const unsigned char *)"y", 1,
                                           store_now() + 60),
                             APR_EEXIST);
        }
        mcd_start(&m[x], m[x].port);
        apr_sleep(apr_time_from_msec(RETRY_MS + 100));
        back = wrote = 0;
        for (i = 0; i < NKEYS; i++) {
            store_expect_val(st, p, key_n(p, i), key_n(p, i), strlen(key_n(p, i)));
            a = first_replica(st, key_n(p, i), &b);
            if (a == x) {
                assert_true(raw_has(m[x].port, key_n(p, i)));
                back++;
            }
            else if (b == x) {
                /* second replica: not read, so not written back yet */
                assert_false(raw_has(m[x].port, key_n(p, i)));
                assert_int_equal(bff_store_replace(st, p, key_n(p, i),
                                                   (const unsigned char *)key_n(p, i),
                                                   strlen(key_n(p, i)), store_now() + 3600),
                                 APR_SUCCESS);
                assert_true(raw_has(m[x].port, key_n(p, i)));
                wrote++;
            }
        }
        print_message("    server %d restarted empty: %d entries back by reads, %d by writes\n", x,
                      back, wrote);
        assert_true(back > 0 && wrote > 0);
    }
}

/* A removal is not undone by a replica that lost the entry, nor by one that
 * kept it while it was away. */
static void test_replicas_remove_stays(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m[3];
    bff_store_t *st;
    const char *k = "s:logout-stays";
    int a, b;

    for (a = 0; a < 3; a++) {
        mcd_start(&m[a], 0);
    }
    st = mkstore_r(p, servers3(p, m), 2);
    a = first_replica(st, k, &b);

    /* removed, then a replica killed and back empty */
    set_ok(st, p, k, "v1");
    assert_int_equal(bff_store_remove(st, p, k), APR_SUCCESS);
    mcd_stop(&m[b], SIGKILL);
    mcd_start(&m[b], m[b].port);
    apr_sleep(apr_time_from_msec(RETRY_MS + 100));
    store_expect_gone(st, p, k);

    /* removed while the first replica was down (killed), back empty */
    set_ok(st, p, k, "v2");
    mcd_stop(&m[a], SIGKILL);
    assert_int_equal(bff_store_remove(st, p, k), APR_SUCCESS);
    mcd_start(&m[a], m[a].port);
    apr_sleep(apr_time_from_msec(RETRY_MS + 100));
    store_expect_gone(st, p, k);
    assert_false(raw_has(m[b].port, k));

    /* removed while the first replica did not answer but kept its data
     * (stopped, as in a network split): it must not serve it again */
    set_ok(st, p, k, "v3");
    log_start();
    mcd_pause(&m[a]);
    assert_int_equal(bff_store_remove(st, p, k), APR_SUCCESS);
    kill(m[a].pid, SIGCONT);
    assert_true(raw_has(m[a].port, k)); /* it still holds it */
    apr_sleep(apr_time_from_msec(RETRY_MS + 100));
    store_expect_gone(st, p, k);
    assert_false(raw_has(m[a].port, k));
    assert_int_equal(log_has("BFF01602", ""), 1);
    assert_int_equal(log_has("BFF01605", ""), 0);
    log_stop();
}

/* What a server missed while it did not answer but kept its data (stopped)
 * is undone before anything is read from it, also by a process that never
 * saw it fail: the stores here share the journal, as a node's children and
 * its next generation after a restart do. While one replays, the others
 * read the other replica. */
static void test_replicas_journal(void **state)
{
    apr_pool_t *p = *state;
    bff_store_memcache_opts_t o;
    bff_store_journal_t *j = NULL;
    bff_store_t *st, *other;
    const char *gone = "s:gone-while-away", *hot = NULL;
    apr_uint64_t claim;
    int slot;
    mcd_t m[3];
    int a, b, i, x;

    for (a = 0; a < 3; a++) {
        mcd_start(&m[a], 0);
    }
    assert_int_equal(bff_store_journal_create(p, 3, NULL, &j), APR_SUCCESS);
    test_opts(&o);
    o.replicas = 2;
    o.journal = j;
    st = mkstore(p, servers3(p, m), &o);
    other = mkstore(p, servers3(p, m), &o);
    a = first_replica(st, gone, &b);
    for (i = 0; !hot; i++) {
        if (first_replica(st, key_n(p, i), NULL) == a) {
            hot = key_n(p, i);
        }
    }
    set_ok(st, p, gone, "v1");
    set_ok(st, p, hot, "v1");
    store_expect_val(other, p, hot, "v1", 2);

    log_start();
    mcd_pause(&m[a]);
    assert_int_equal(bff_store_remove(st, p, gone), APR_SUCCESS);
    assert_int_equal(bff_store_replace(st, p, hot, (const unsigned char *)"v2", 2,
                                       store_now() + 3600),
                     APR_SUCCESS);
    kill(m[a].pid, SIGCONT);
    assert_true(raw_has(m[a].port, gone)); /* it still holds the old entries */

    /* Another process is replaying: this one reads the second replica. */
    slot = bff_store_journal_slot(j, apr_psprintf(p, "127.0.0.1:%d", m[a].port));
    assert_true(slot >= 0);
    assert_int_equal(bff_store_journal_claim(j, slot, &claim), APR_SUCCESS);
    store_expect_val(other, p, hot, "v2", 2);
    store_expect_gone(other, p, gone);
    assert_true(raw_has(m[a].port, gone));
    bff_store_journal_release(j, slot, claim);

    /* other never saw the server fail: its next operation replays first */
    store_expect_gone(other, p, gone);
    assert_false(raw_has(m[a].port, gone));
    store_expect_val(other, p, hot, "v2", 2);
    x = raw_has(m[a].port, hot); /* written back by the read */
    assert_true(x);
    assert_false(bff_store_journal_pending(j, slot));
    assert_int_equal(log_has("BFF01606", ""), 1);
    assert_int_equal(log_has("BFF01605", ""), 0);
    log_stop();

    /* With no operation at all: the watchdog's tend replays. */
    set_ok(other, p, gone, "v3"); /* st still skips the server for a while */
    assert_true(raw_has(m[a].port, gone));
    assert_int_equal(bff_store_memcache_tend(other, p), APR_SUCCESS); /* nothing noted */
    mcd_pause(&m[a]);
    assert_int_equal(bff_store_remove(st, p, gone), APR_SUCCESS);
    kill(m[a].pid, SIGCONT);
    assert_true(raw_has(m[a].port, gone));
    assert_true(bff_store_journal_pending(j, slot));
    assert_int_equal(bff_store_memcache_tend(other, p), APR_SUCCESS);
    assert_false(raw_has(m[a].port, gone));
    assert_false(bff_store_journal_pending(j, slot));

    /* Removed while its only copy is on a server that does not answer (after
     * a change of the list, before the copy to the other replica): a
     * tombstone on the others, so that a copy made from the old one before
     * the journal's replay is undone. */
    set_ok(other, p, gone, "v4");
    raw_del(m[b].port, gone);
    mcd_pause(&m[a]);
    assert_int_equal(bff_store_remove(st, p, gone), APR_NOTFOUND);
    kill(m[a].pid, SIGCONT);
    assert_true(raw_has(m[b].port, tomb_of(p, gone)));
    assert_true(raw_has(m[a].port, gone));
    assert_int_equal(bff_store_memcache_tend(other, p), APR_SUCCESS);
    assert_false(raw_has(m[a].port, gone));
}

static const char *list_of(apr_pool_t *p, const mcd_t *m, const int *which, int n)
{
    const char *l = "";
    int i;

    for (i = 0; i < n; i++) {
        l = apr_psprintf(p, "%s%s127.0.0.1:%d", l, i ? "," : "", m[which[i]].port);
    }
    return l;
}

static long sets_of(const mcd_t *m, int n)
{
    long t = 0;
    int i;

    for (i = 0; i < n; i++) {
        t += stat_of(m[i].port, "cmd_set");
    }
    return t;
}

/* After a change of the server list, the first read of an entry copies it
 * to its new replicas, so that a second change right after loses nothing
 * that was read in between; with an unchanged list (in any order) a read
 * writes nothing. */
static void test_replicas_rehome(void **state)
{
    apr_pool_t *p = *state;
    static const int ring1[] = { 0, 1, 2 }, ring1b[] = { 2, 0, 1 }, ring2[] = { 0, 1, 2, 3 },
                     ring3[] = { 0, 2, 3, 4 };
    const int nkeys = 200;
    bff_store_t *st1, *st1b, *st2, *st3;
    mcd_t m[5];
    long sets;
    int i, lost = 0;

    for (i = 0; i < 5; i++) {
        mcd_start(&m[i], 0);
    }
    st1 = mkstore_r(p, list_of(p, m, ring1, 3), 2);
    st1b = mkstore_r(p, list_of(p, m, ring1b, 3), 2);
    for (i = 0; i < nkeys; i++) {
        set_ok(st1, p, apr_psprintf(p, "s:rehome-%d", i), "v");
    }
    sets = sets_of(m, 5);
    for (i = 0; i < nkeys; i++) {
        store_expect_val(st1b, p, apr_psprintf(p, "s:rehome-%d", i), "v", 1);
    }
    assert_int_equal(sets_of(m, 5), sets); /* the same list: nothing written */

    st2 = mkstore_r(p, list_of(p, m, ring2, 4), 2); /* server 3 added */
    for (i = 0; i < nkeys; i++) {
        store_expect_val(st2, p, apr_psprintf(p, "s:rehome-%d", i), "v", 1);
    }
    print_message("    server added: %ld copy attempts (add) by the first reads\n",
                  sets_of(m, 5) - sets);
    sets = sets_of(m, 5);
    for (i = 0; i < nkeys; i++) {
        store_expect_val(st2, p, apr_psprintf(p, "s:rehome-%d", i), "v", 1);
    }
    /* Once per entry and process, but for collisions in the process's cache
     * of entries copied (4096 slots: about 5 of 200 keys). */
    print_message("    read again: %ld copy attempts\n", sets_of(m, 5) - sets);
    assert_true(sets_of(m, 5) - sets <= nkeys / 10);

    /* then server 1 replaced by server 4: without the copies, about 6% of
     * the entries would have none on their new replicas */
    st3 = mkstore_r(p, list_of(p, m, ring3, 4), 2);
    for (i = 0; i < nkeys; i++) {
        unsigned char *v;
        apr_size_t len;
        lost += bff_store_get(st3, p, apr_psprintf(p, "s:rehome-%d", i), &v, &len) != APR_SUCCESS;
    }
    assert_int_equal(lost, 0);
}

/* A write-back that races with a removal is undone by the tombstone. */
static void test_replicas_tombstone(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m[3];
    bff_store_t *st;
    const char *k = "s:racing", *cmd;
    int a, b;

    for (a = 0; a < 3; a++) {
        mcd_start(&m[a], 0);
    }
    st = mkstore_r(p, servers3(p, m), 2);
    a = first_replica(st, k, &b);

    /* lost on the first replica: read from the second, written back */
    set_ok(st, p, k, "v1");
    raw_del(m[a].port, k);
    store_expect_val(st, p, k, "v1", 2);
    assert_true(raw_has(m[a].port, k));

    /* a removal half done: tombstones set, the first replica deleted, the
     * second not yet. A reader must not bring the entry back. */
    cmd = apr_psprintf(p, "set %s 0 60 1\r\n1\r\n", tomb_of(p, k));
    raw_ok(m[a].port, cmd, "STORED\r\n");
    raw_ok(m[b].port, cmd, "STORED\r\n");
    raw_del(m[a].port, k);
    store_expect_gone(st, p, k);
    assert_false(raw_has(m[a].port, k));
    assert_false(raw_has(m[b].port, k));

    /* a new entry under that key (a lock taken again) is not removed */
    assert_int_equal(bff_store_add(st, p, k, (const unsigned char *)"v2", 2, store_now() + 60),
                     APR_SUCCESS);
    assert_false(raw_has(m[a].port, tomb_of(p, k)));
    raw_del(m[a].port, k);
    store_expect_val(st, p, k, "v2", 2);
}

/* Locks over replicas: two nodes never both hold one while they reach a
 * common replica; a replica that kept a lock the other lost still holds it. */
static void test_replicas_lock(void **state)
{
    apr_pool_t *p = *state;
    mcd_t m[3];
    bff_store_t *n1, *n2;
    const char *k = "l:refresh", *o1 = NULL, *o2 = NULL;
    int a, b;

    for (a = 0; a < 3; a++) {
        mcd_start(&m[a], 0);
    }
    n1 = mkstore_r(p, servers3(p, m), 2);
    n2 = mkstore_r(p, servers3(p, m), 2);
    a = first_replica(n1, k, &b);

    assert_int_equal(bff_store_lock(n1, p, k, 60, &o1), APR_SUCCESS);
    assert_int_equal(bff_store_lock(n2, p, k, 60, &o2), APR_EEXIST);
    /* the first replica lost it (restarted): still held, nothing left behind */
    raw_del(m[a].port, k);
    assert_int_equal(bff_store_lock(n2, p, k, 60, &o2), APR_EEXIST);
    assert_false(raw_has(m[a].port, k));
    /* the second replica killed: still held (the first got it back on read) */
    store_expect_val(n1, p, k, o1, strlen(o1));
    mcd_stop(&m[b], SIGKILL);
    assert_int_equal(bff_store_lock(n2, p, k, 60, &o2), APR_EEXIST);
    assert_int_equal(bff_store_unlock(n2, p, k, "not-the-owner"), APR_NOTFOUND);
    assert_int_equal(bff_store_unlock(n1, p, k, o1), APR_SUCCESS);
    assert_int_equal(bff_store_lock(n2, p, k, 60, &o2), APR_SUCCESS);
    assert_int_equal(bff_store_lock(n1, p, k, 60, &o1), APR_EEXIST);
}

/* memcached full: the store says it is evicting, once per check. */
static void test_evictions(void **state)
{
    apr_pool_t *p = *state;
    mcd_t a;
    bff_store_t *st;
    unsigned char *big = store_pattern(p, 3000, 7);
    int i;

    mcd_start_mem(&a, 0, "2");
    st = mkstore_r(p, servers1(p, &a), 1);
    /* the same size as the filler: memcached evicts within a slab class */
    assert_int_equal(bff_store_set(st, p, "s:first", big, 3000, store_now() + 3600), APR_SUCCESS);
    for (i = 0; i < 3000; i++) {
        assert_int_equal(bff_store_set(st, p, key_n(p, i), big, 3000, store_now() + 3600),
                         APR_SUCCESS);
    }
    assert_true(stat_of(a.port, "evictions") > 0);
    log_start();
    store_expect_gone(st, p, "s:first");
    assert_int_equal(log_has("BFF01604", "evictions"), 1);
    assert_int_equal(log_has("BFF01604", apr_psprintf(p, ":%d", a.port)), 1);
    /* at most one line per check interval */
    store_expect_gone(st, p, "s:first");
    assert_int_equal(log_count, 1);
    log_stop();
}

/* ---- the store contract ---- */

#define CONTRACT_MAX_ITEM 1000

/* n fresh servers, replicas per entry. */
static bff_store_t *contract_open_n(apr_pool_t *p, int small, int n, int replicas)
{
    bff_store_memcache_opts_t o;
    bff_store_t *st;
    mcd_t m[3];
    int i;

    for (i = 0; i < n; i++) {
        mcd_start(&m[i], 0);
    }
    test_opts(&o);
    o.replicas = replicas;
    if (small) {
        o.max_item = CONTRACT_MAX_ITEM;
    }
    st = mkstore(p, n == 1 ? servers1(p, &m[0]) : servers3(p, m), &o);
    assert_int_equal(st->child_init(st, p), APR_SUCCESS);
    return st;
}

static bff_store_t *contract_open(apr_pool_t *p, int small)
{
    return contract_open_n(p, small, 1, 1);
}

static apr_size_t contract_max_value(bff_store_t *st)
{
    return CONTRACT_MAX_ITEM;
}

/* The same contract over three servers with two replicas per entry. */
static bff_store_t *contract_open_r2(apr_pool_t *p, int small)
{
    return contract_open_n(p, small, 3, 2);
}

/* The header with the expiry takes 11 bytes of an item. */
static apr_size_t contract_max_value_r2(bff_store_t *st)
{
    return CONTRACT_MAX_ITEM - 11;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_opts_default, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_create_bad, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_enospc, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_bad_keys, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_spread, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_server_down_and_back, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_restart_stale_connections, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_stopped_server, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_no_server_at_start, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_fork, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_threads, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_replicas_placement, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_replicas_kill_restart, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_replicas_remove_stays, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_replicas_journal, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_replicas_rehome, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_replicas_tombstone, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_replicas_lock, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_evictions, test_setup, test_teardown),
    };

    /* httpd ignores SIGPIPE; a write to a killed memcached must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    /* An unbounded wait is the bug these tests look for: fail, not hang. */
    alarm(120);
    static const store_contract_t contract = { .name = "memcache",
                                               .open = contract_open,
                                               .max_value = contract_max_value,
                                               .close = mcd_reap_all };

    static const store_contract_t contract_r2 = { .name = "memcache_replicas",
                                                  .open = contract_open_r2,
                                                  .max_value = contract_max_value_r2,
                                                  .close = mcd_reap_all };

    return unit_run("store_memcache", tests) + store_contract_run(&contract)
           + store_contract_run(&contract_r2);
}
