/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* The provider's JWKS document (bff_jose_jwks_parse): keys are built into
 * OpenSSL objects freed by a pool cleanup, so the pool per input also
 * checks that every key made is freed (LeakSanitizer). */
#include "fuzz.h"
#include "bff_jose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    char *exact = fuzz_exact(data, size);
    bff_jwks_t *jwks = NULL;
    const char *err = NULL;
    int skipped = -1, n;

    if (bff_jose_jwks_parse(p, exact, size, &jwks, &skipped, &err) == APR_SUCCESS) {
        FUZZ_ASSERT(jwks != NULL && skipped >= 0);
        n = bff_jose_jwks_count(jwks);
        FUZZ_ASSERT(n >= 0);
        (void)bff_jose_jwks_has_kid(jwks, "rsa1");
        (void)bff_jose_jwks_has_kid(jwks, "");
    }
    else {
        FUZZ_ASSERT(err != NULL);
    }
    free(exact);
    apr_pool_destroy(p);
    return 0;
}
