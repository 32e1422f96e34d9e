/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: names of the outcomes in bff_outcome.h.
 */
#include "bff_outcome.h"

static const char *const names[BFF_OUTCOME_COUNT] = {
    [BFF_OUTCOME_OK] = "ok",
    [BFF_OUTCOME_NO_SESSION] = "no_session",
    [BFF_OUTCOME_SESSION_ENDED] = "session_ended",
    [BFF_OUTCOME_CSRF] = "csrf",
    [BFF_OUTCOME_FORBIDDEN] = "forbidden",
    [BFF_OUTCOME_BAD_REQUEST] = "bad_request",
    [BFF_OUTCOME_STORE_DOWN] = "store_down",
    [BFF_OUTCOME_STORE_FULL] = "store_full",
    [BFF_OUTCOME_PROVIDER_DOWN] = "provider_down",
    [BFF_OUTCOME_PROVIDER_TIMEOUT] = "provider_timeout",
    [BFF_OUTCOME_PROVIDER_DENIED] = "provider_denied",
    [BFF_OUTCOME_PROVIDER_INVALID] = "provider_invalid",
    [BFF_OUTCOME_NOT_CONFIGURED] = "not_configured",
    [BFF_OUTCOME_NOT_FOUND] = "not_found",
    [BFF_OUTCOME_METHOD] = "method",
    [BFF_OUTCOME_INTERNAL] = "internal",
};

const char *bff_outcome_name(bff_outcome_e o)
{
    return (unsigned)o < BFF_OUTCOME_COUNT && names[o] ? names[o] : "unknown";
}
