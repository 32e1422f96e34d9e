/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* JWS/JWT front end: the compact parser (bff_jose_jws_parse), the signature
 * check against a fixed JWKS (RSA, P-256, P-384, Ed25519; see
 * fuzz_jwks_fixture.h, made by make_corpus.cjs with the seeds), and the ID
 * token / logout token / refreshed ID token verifiers that the callback,
 * the back-channel logout endpoint and the refresh path call.
 *
 * The claim checks sit behind the signature, which the fuzzer cannot forge:
 * they are also run directly on every payload that parses, so the claim
 * validators see arbitrary claims. Input: one mode byte (which verifier
 * gets the token: 0 ID token, 1 logout token, 2 refreshed ID token, 3 only
 * bff_jose_jws_verify), then the compact token. */
#include "fuzz.h"
#include "bff_idtoken.h"
#include "bff_jose.h"
#include "fuzz_jwks_fixture.h"

static bff_jwks_t *jwks;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *err = NULL;
    int skipped = 0;

    fuzz_init();
    if (bff_jose_jwks_parse(fuzz_root, FUZZ_JWKS, strlen(FUZZ_JWKS), &jwks, &skipped, &err)
            != APR_SUCCESS
        || bff_jose_jwks_count(jwks) != 4) {
        fprintf(stderr, "fuzz_jws: fixture JWKS refused: %s\n", err ? err : "?");
        abort();
    }
    return 0;
}

static void claims_direct(const json_t *claims, const bff_idtoken_expect_t *ex)
{
    const char *err = NULL;

    if (bff_idtoken_validate(claims, ex, &err) != APR_SUCCESS) {
        FUZZ_ASSERT(err != NULL);
    }
    err = NULL;
    if (bff_idtoken_validate_logout(claims, ex, &err) != APR_SUCCESS) {
        FUZZ_ASSERT(err != NULL);
    }
    err = NULL;
    if (bff_idtoken_validate_refreshed(claims, ex, "user-1", &err) != APR_SUCCESS) {
        FUZZ_ASSERT(err != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const algs[] = { "RS256", "PS256", "ES256", "ES384", "EdDSA", NULL };
    apr_pool_t *p;
    bff_idtoken_expect_t ex = { FUZZ_ISS, FUZZ_CLIENT, "n-0S6_WzA2Mj", FUZZ_NOW, 60, 600 };
    const char *tok, *err = NULL;
    bff_jws_t *jws = NULL;
    json_t *claims = NULL;
    apr_status_t rv;
    int mode;

    if (size < 1) {
        return 0;
    }
    p = fuzz_pool();
    mode = data[0] & 3;
    tok = fuzz_str(p, data + 1, size - 1);
    switch (mode) {
    case 0:
        rv = bff_idtoken_verify(p, tok, jwks, algs, &ex, &claims, &err);
        break;
    case 1:
        ex.nonce = NULL;
        rv = bff_idtoken_verify_logout(p, tok, jwks, algs, &ex, &claims, &err);
        break;
    case 2:
        ex.nonce = NULL;
        rv = bff_idtoken_verify_refreshed(p, tok, jwks, NULL, &ex, "user-1", &claims, &err);
        break;
    default:
        if ((rv = bff_jose_jws_parse(p, tok, &jws, &err)) == APR_SUCCESS) {
            rv = bff_jose_jws_verify(p, jws, jwks, NULL, &err);
        }
        break;
    }
    if (rv == APR_SUCCESS && mode < 3) {
        FUZZ_ASSERT(claims != NULL && json_is_object(claims));
    }
    else if (rv != APR_SUCCESS) {
        FUZZ_ASSERT(err != NULL || rv == APR_NOTFOUND);
    }
    jws = NULL;
    err = NULL;
    if (bff_jose_jws_parse(p, tok, &jws, &err) == APR_SUCCESS) {
        FUZZ_ASSERT(jws->alg && json_is_object(jws->header) && json_is_object(jws->payload));
        (void)bff_jose_alg_supported(jws->alg);
        (void)bff_jose_jwks_has_kid(jwks, jws->kid);
        claims_direct(jws->payload, &ex);
    }
    apr_pool_destroy(p);
    return 0;
}
