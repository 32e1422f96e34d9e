/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <string.h>

#include "bff_outcome.h"
#include "bff_refresh.h"

/* Every outcome has its own name: logs and tests tell them apart. */
static void test_names_distinct(void **state)
{
    int a, b;
    (void)state;

    for (a = 0; a < BFF_OUTCOME_COUNT; ++a) {
        assert_string_not_equal(bff_outcome_name((bff_outcome_e)a), "unknown");
        for (b = a + 1; b < BFF_OUTCOME_COUNT; ++b) {
            assert_string_not_equal(bff_outcome_name((bff_outcome_e)a),
                                    bff_outcome_name((bff_outcome_e)b));
        }
    }
    assert_string_equal(bff_outcome_name(BFF_OUTCOME_COUNT), "unknown");
    assert_string_equal(bff_outcome_name((bff_outcome_e)-1), "unknown");
}

/* What a relayed request answers after a refresh: only the four "use the
 * token" outcomes go on; the ones that end the session are 401s; both
 * timeouts are 504s; a store failure is a 503, never a logout. */
static void test_refresh_outcomes(void **state)
{
    static const struct {
        bff_refresh_outcome_e in;
        bff_outcome_e out;
    } want[] = {
        { BFF_REFRESH_NOT_NEEDED, BFF_OUTCOME_OK },
        { BFF_REFRESH_REFRESHED, BFF_OUTCOME_OK },
        { BFF_REFRESH_WAITED, BFF_OUTCOME_OK },
        { BFF_REFRESH_STILL_VALID, BFF_OUTCOME_OK },
        { BFF_REFRESH_PROVIDER_DOWN, BFF_OUTCOME_PROVIDER_DOWN },
        { BFF_REFRESH_PROVIDER_TIMEOUT, BFF_OUTCOME_PROVIDER_TIMEOUT },
        { BFF_REFRESH_WAIT_TIMEOUT, BFF_OUTCOME_PROVIDER_TIMEOUT },
        { BFF_REFRESH_GRANT_REVOKED, BFF_OUTCOME_SESSION_ENDED },
        { BFF_REFRESH_NO_REFRESH_TOKEN, BFF_OUTCOME_SESSION_ENDED },
        { BFF_REFRESH_REJECTED, BFF_OUTCOME_SESSION_ENDED },
        { BFF_REFRESH_SESSION_GONE, BFF_OUTCOME_SESSION_ENDED },
        { BFF_REFRESH_STORE_DOWN, BFF_OUTCOME_STORE_DOWN },
    };
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(want) / sizeof(want[0]); ++i) {
        assert_string_equal(bff_outcome_name(bff_refresh_outcome_general(want[i].in)),
                            bff_outcome_name(want[i].out));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_distinct),
        cmocka_unit_test(test_refresh_outcomes),
    };

    return unit_run("outcome", tests);
}
