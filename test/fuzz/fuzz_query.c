/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* Query strings and urlencoded forms from outside: the callback's query
 * (state, code, iss, error), /bff/login's (returnTo), /bff/logout's (sid,
 * returnTo) and the back-channel logout POST body (logout_token), all
 * parsed by bff_url_parse_query() and handled the way the glue handles them.
 * Invariants: at most 64 parameters, no name empty, no value or name with
 * an embedded NUL (the decoded strings are C strings: a NUL would cut a
 * value short and make two different inputs compare equal). */
#include "fuzz.h"
#include "bff_url.h"
#include "bff_util.h"

static int count_cb(void *rec, const char *key, const char *value)
{
    (*(int *)rec)++;
    FUZZ_ASSERT(key && *key && value);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *s = fuzz_str(p, data, size), *v;
    apr_table_t *q = NULL;
    char *dec = NULL;
    int n = 0;

    if (bff_url_parse_query(p, s, &q) == APR_SUCCESS) {
        FUZZ_ASSERT(q != NULL);
        apr_table_do(count_cb, &n, q, NULL);
        FUZZ_ASSERT(n <= 64);
        if ((v = apr_table_get(q, "returnTo")) != NULL) {
            (void)bff_url_return_to_ok(v);
        }
        if ((v = apr_table_get(q, "state")) != NULL && *v && strlen(v) <= 256) {
            (void)bff_util_ct_streq(v, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG");
        }
        (void)apr_table_get(q, "code");
        (void)apr_table_get(q, "iss");
        (void)apr_table_get(q, "error");
        (void)apr_table_get(q, "error_description");
        if ((v = apr_table_get(q, "sid")) != NULL) {
            (void)bff_util_ct_streq(v, "logout-id");
        }
        (void)apr_table_get(q, "logout_token");
    }
    else {
        FUZZ_ASSERT(q == NULL);
    }
    /* The component decoder on its own, with the exact length (no NUL). */
    {
        char *exact = fuzz_exact(data, size);

        if (bff_util_url_decode(p, exact, size, &dec) == APR_SUCCESS) {
            FUZZ_ASSERT(dec != NULL && strlen(dec) <= size);
        }
        free(exact);
    }
    apr_pool_destroy(p);
    return 0;
}
