/* Shared set-up for the cmocka unit tests: one APR pool per test. */
#ifndef BFF_UNIT_H
#define BFF_UNIT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>

static inline int unit_pool_setup(void **state)
{
    apr_pool_t *p;
    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return -1;
    }
    *state = p;
    return 0;
}

static inline int unit_pool_teardown(void **state)
{
    apr_pool_destroy((apr_pool_t *)*state);
    return 0;
}

/* Usage: return unit_run("name", tests); with tests declared using
 * cmocka_unit_test_setup_teardown(fn, unit_pool_setup, unit_pool_teardown). */
#define unit_run(name, tests) \
    (apr_initialize(), \
     _cmocka_run_group_tests((name), (tests), sizeof(tests) / sizeof((tests)[0]), NULL, NULL))

#endif
