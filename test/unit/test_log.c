/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* Unit tests for bff_log: the hook the glue binds, the level filter, and
 * what reaches the hook (file, line, level, status, formatted message,
 * cut at 1023 bytes). */
#include "unit.h"

#include <string.h>

#include <apr_strings.h>

#include "bff_log.h"

typedef struct {
    int calls;
    const char *file;
    int line;
    int level;
    apr_status_t rv;
    char msg[2048];
} seen_t;

static void hook(void *baton, const char *file, int line, int level, apr_status_t rv,
                 const char *msg)
{
    seen_t *s = baton;

    s->calls++;
    s->file = file;
    s->line = line;
    s->level = level;
    s->rv = rv;
    apr_cpystrn(s->msg, msg, sizeof(s->msg));
}

static int log_teardown(void **state)
{
    bff_log_bind(NULL, NULL);
    bff_log_set_level(BFF_LOG_WARNING);
    return unit_pool_teardown(state);
}

static void test_hook_gets_the_line(void **state)
{
    seen_t s = { 0 };
    int line;

    bff_log_bind(hook, &s);
    line = __LINE__ + 1;
    BFF_LOG(BFF_LOG_ERR, APR_ENOSPC, "BFF09999: %s %d", "full", 42);
    assert_int_equal(s.calls, 1);
    assert_non_null(strstr(s.file, "test_log.c"));
    assert_int_equal(s.line, line);
    assert_int_equal(s.level, BFF_LOG_ERR);
    assert_int_equal(s.rv, APR_ENOSPC);
    assert_string_equal(s.msg, "BFF09999: full 42");
}

/* The default level is warning: what is below it is neither formatted nor
 * passed on; set_level moves the line both ways. */
static void test_level_filter(void **state)
{
    seen_t s = { 0 };

    bff_log_bind(hook, &s);
    assert_true(bff_log_is_level(BFF_LOG_WARNING));
    assert_false(bff_log_is_level(BFF_LOG_NOTICE));
    BFF_LOG(BFF_LOG_INFO, APR_SUCCESS, "BFF09999: info");
    BFF_LOG(BFF_LOG_DEBUG, APR_SUCCESS, "BFF09999: debug");
    assert_int_equal(s.calls, 0);
    BFF_LOG(BFF_LOG_WARNING, APR_SUCCESS, "BFF09999: warning");
    assert_int_equal(s.calls, 1);

    bff_log_set_level(BFF_LOG_DEBUG);
    BFF_LOG(BFF_LOG_DEBUG, APR_SUCCESS, "BFF09999: debug");
    assert_int_equal(s.calls, 2);
    assert_string_equal(s.msg, "BFF09999: debug");

    bff_log_set_level(BFF_LOG_ERR);
    BFF_LOG(BFF_LOG_WARNING, APR_SUCCESS, "BFF09999: warning");
    assert_int_equal(s.calls, 2);
    BFF_LOG(BFF_LOG_EMERG, APR_SUCCESS, "BFF09999: emerg");
    assert_int_equal(s.calls, 3);
}

/* A long message is cut, never overruns; unbinding stops the calls. */
static void test_long_message_and_unbind(void **state)
{
    apr_pool_t *p = *state;
    seen_t s = { 0 };
    char *big = apr_palloc(p, 1500);

    memset(big, 'x', 1499);
    big[1499] = '\0';
    bff_log_bind(hook, &s);
    BFF_LOG(BFF_LOG_ERR, APR_SUCCESS, "BFF09999: %s", big);
    assert_int_equal(s.calls, 1);
    assert_int_equal(strlen(s.msg), 1023);
    assert_true(!strncmp(s.msg, "BFF09999: xxx", 13));

    bff_log_bind(NULL, NULL);
    BFF_LOG(BFF_LOG_ERR, APR_SUCCESS, "BFF09999: to stderr, not the hook");
    assert_int_equal(s.calls, 1);
}

/* The rate limit: the first line of a slot at its level, the next ones
 * within the interval at debug, the first after it at the level again;
 * slots are independent (one per reason). */
static void test_rate_level(void **state)
{
    static bff_log_rate_t a, b;
    apr_int64_t t0 = 1700000000;
    int i, loud = 0;

    assert_int_equal(bff_log_rate_level(&a, 10, t0, BFF_LOG_INFO), BFF_LOG_INFO);
    for (i = 0; i < 50; ++i) {
        loud += bff_log_rate_level(&a, 10, t0 + i / 10, BFF_LOG_INFO) == BFF_LOG_INFO;
    }
    assert_int_equal(loud, 0);
    assert_int_equal(bff_log_rate_level(&b, 10, t0 + 1, BFF_LOG_ERR), BFF_LOG_ERR);
    assert_int_equal(bff_log_rate_level(&a, 10, t0 + 9, BFF_LOG_INFO), BFF_LOG_DEBUG);
    assert_int_equal(bff_log_rate_level(&a, 10, t0 + 10, BFF_LOG_INFO), BFF_LOG_INFO);
    assert_int_equal(bff_log_rate_level(&a, 10, t0 + 11, BFF_LOG_INFO), BFF_LOG_DEBUG);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, unit_pool_setup, log_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_hook_gets_the_line),
        T(test_level_filter),
        T(test_long_message_and_unbind),
        T(test_rate_level),
    };

    return unit_run("log", tests);
}
