/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* The provider's JSON: the discovery document (bff_oidc_meta_parse, then
 * the URLs the module builds from it) and token endpoint responses
 * (bff_oidc_token_response_parse). Input: one mode byte (0 discovery,
 * 1 token response with HTTP 200, 2 with 400, 3 with 401, anything else a
 * token response with that byte as the status), then the body. */
#include "fuzz.h"
#include "bff_oidc.h"

static void discovery(apr_pool_t *p, const char *body, size_t len, int allow_http)
{
    bff_oidc_meta_t *meta = NULL;
    bff_oidc_authz_t az = { "bff-client", "https://app.example.com/bff/callback",
                            "openid",     "state",
                            "nonce",      "challenge",
                            NULL };
    const char *err = NULL, **a;

    if (bff_oidc_meta_parse(p, body, len, "https://op.example.com", allow_http, &meta, &err)
        != APR_SUCCESS) {
        FUZZ_ASSERT(err != NULL);
        return;
    }
    FUZZ_ASSERT(meta && meta->issuer && meta->authorization_endpoint && meta->token_endpoint
                && meta->jwks_uri && meta->id_token_algs && meta->id_token_algs[0]);
    FUZZ_ASSERT(!strcmp(meta->issuer, "https://op.example.com"));
    for (a = meta->id_token_algs; *a; a++) {
        FUZZ_ASSERT(strcmp(*a, "none") && strncmp(*a, "HS", 2));
    }
    FUZZ_ASSERT(bff_oidc_authz_url(p, meta, &az) != NULL);
    (void)bff_oidc_end_session_url(p, meta, "id.token.hint", "bff-client",
                                   "https://app.example.com/");
}

static void token(apr_pool_t *p, const char *body, size_t len, long status)
{
    bff_http_resp_t resp = { status, "application/json", body, len };
    bff_oidc_tokens_t *t = NULL;
    const char *err = NULL;

    if (bff_oidc_token_response_parse(p, &resp, &t, &err) != APR_SUCCESS) {
        FUZZ_ASSERT(err != NULL);
        return;
    }
    FUZZ_ASSERT(t != NULL);
    if (!t->error) {
        FUZZ_ASSERT(status == 200 && t->access_token && t->token_type);
        FUZZ_ASSERT(t->expires_in >= 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    char *body;
    size_t len;

    if (size < 1) {
        return 0;
    }
    p = fuzz_pool();
    len = size - 1;
    /* As bff_http hands it over: exactly len bytes, NUL-terminated. */
    body = fuzz_str(p, data + 1, len);
    switch (data[0]) {
    case 0:
        discovery(p, body, len, 0);
        discovery(p, body, len, 1);
        break;
    case 1:
        token(p, body, len, 200);
        break;
    case 2:
        token(p, body, len, 400);
        break;
    case 3:
        token(p, body, len, 401);
        break;
    default:
        token(p, body, len, data[0]);
        break;
    }
    apr_pool_destroy(p);
    return 0;
}
