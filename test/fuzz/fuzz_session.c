/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* Records read back from the store: the session record (flat binary
 * layout, bff_session_decode) and the login-transaction record (compact
 * JSON, bff_txn_decode). In production both are sealed (AES-256-GCM, the
 * store key as AAD), so the decoders are fuzzed on the plaintext layout
 * directly, and bff_session_open/bff_txn_open on raw bytes as well, which
 * must never succeed for anything but a record sealed under the ring.
 *
 * Input: one mode byte (0 session plaintext, 1 transaction plaintext,
 * 2 sealed session, 3 sealed transaction, 4 a pending-login cookie value
 * as the browser sends it back), then the record.
 * Oracles: decode accepts exactly what encode writes - a decoded session
 * (whose claims are a JSON object) encodes back to the same bytes, a
 * decoded transaction encodes and decodes back to the same fields. */
#include "fuzz.h"
#include <jansson.h>
#include <apr_strings.h>
#include "bff_crypto.h"
#include "bff_session.h"

static bff_keyring_t *ring;
static const char *store_key = "s:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static int claims_object(const char *c)
{
    json_error_t jerr;
    json_t *v = json_loads(c, JSON_REJECT_DUPLICATES, &jerr);
    int ok = json_is_object(v);

    json_decref(v);
    return ok;
}

static int streq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static void session_roundtrip(apr_pool_t *p, const bff_session_t *s, const char *in, size_t len)
{
    char *out = NULL;
    apr_size_t olen = 0;

    FUZZ_ASSERT(s->iss && s->sub && s->created && s->expires);
    if (s->claims && !claims_object(s->claims)) {
        return; /* decode takes claims as text (see bff_session.c); encode checks them */
    }
    FUZZ_ASSERT(bff_session_encode(p, s, &out, &olen) == APR_SUCCESS);
    FUZZ_ASSERT(olen == len && !memcmp(out, in, len));
}

static void txn_roundtrip(apr_pool_t *p, const bff_txn_t *t)
{
    char *out = NULL;
    apr_size_t olen = 0;
    bff_txn_t *t2 = NULL;

    FUZZ_ASSERT(t->state && t->nonce && t->code_verifier && t->return_to);
    FUZZ_ASSERT(bff_txn_encode(p, t, &out, &olen) == APR_SUCCESS);
    FUZZ_ASSERT(bff_txn_decode(p, out, olen, &t2) == APR_SUCCESS);
    FUZZ_ASSERT(streq(t->state, t2->state) && streq(t->nonce, t2->nonce)
                && streq(t->code_verifier, t2->code_verifier) && streq(t->return_to, t2->return_to)
                && t->created == t2->created && t->expires == t2->expires);
}

static void write_file(const char *dir, const char *name, int mode, const void *b, size_t len)
{
    char path[4096];
    unsigned char m = (unsigned char)mode;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!(f = fopen(path, "wb")) || fwrite(&m, 1, 1, f) != 1
        || (len && fwrite(b, 1, len, f) != len)) {
        abort();
    }
    fclose(f);
}

/* FUZZ_WRITE_SEEDS=dir: plaintext and sealed records made by the encoders. */
static void write_seeds(const char *dir)
{
    apr_pool_t *p = fuzz_pool();
    bff_session_t s = { 7,
                        "https://op.example.com",
                        "user-1",
                        "sid-1",
                        "at.eyJ.sig",
                        "Bearer",
                        "rt-1",
                        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2ln",
                        "{\"sub\":\"user-1\",\"email\":\"a@example.com\",\"groups\":[\"x\"]}",
                        "Zm9vYmFy",
                        1767225900,
                        1767225600,
                        1767225600,
                        1767225650,
                        1767254400 };
    bff_session_t m = {
        0, "https://op.example.com", "u", NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 1, 0, 2
    };
    bff_txn_t t = { "Xq3vB0kP1aR8mN2cD4eF6gH7iJ9kL0mN1oP2qR3sT4u",
                    "n-0S6_WzA2Mj",
                    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                    "/app?x=1",
                    APR_INT64_C(1767225600000000),
                    1767225900 };
    char *out;
    apr_size_t len;
    unsigned char *rec;

    FUZZ_ASSERT(bff_session_encode(p, &s, &out, &len) == APR_SUCCESS);
    write_file(dir, "session-full", 0, out, len);
    FUZZ_ASSERT(bff_session_encode(p, &m, &out, &len) == APR_SUCCESS);
    write_file(dir, "session-minimal", 0, out, len);
    FUZZ_ASSERT(bff_txn_encode(p, &t, &out, &len) == APR_SUCCESS);
    write_file(dir, "txn", 1, out, len);
    FUZZ_ASSERT(bff_session_seal(p, ring, store_key, &s, &rec, &len) == APR_SUCCESS);
    write_file(dir, "session-sealed", 2, rec, len);
    FUZZ_ASSERT(bff_txn_seal(p, ring, store_key, &t, &rec, &len) == APR_SUCCESS);
    write_file(dir, "txn-sealed", 3, rec, len);
    {
        const char *cookie;

        FUZZ_ASSERT(bff_txn_to_cookie(p, ring, store_key, &t, &cookie) == APR_SUCCESS);
        write_file(dir, "txn-cookie", 4, cookie, strlen(cookie));
    }
    apr_pool_destroy(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char secret[] = "fuzzing-key-0123456789abcdef";
    const char *seeds = getenv("FUZZ_WRITE_SEEDS");

    fuzz_init();
    if (bff_crypto_keyring_create(fuzz_root, &ring) != APR_SUCCESS
        || bff_crypto_keyring_add(ring, secret, sizeof(secret) - 1) != APR_SUCCESS) {
        abort();
    }
    if (seeds) {
        write_seeds(seeds);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    char *in;
    size_t len;
    bff_session_t *s = NULL;
    bff_txn_t *t = NULL;
    int idx = -1;

    if (size < 1) {
        return 0;
    }
    p = fuzz_pool();
    len = size - 1;
    in = fuzz_exact(data + 1, len);
    switch (data[0] % 5) {
    case 0:
        if (bff_session_decode(p, in, len, &s) == APR_SUCCESS) {
            session_roundtrip(p, s, in, len);
        }
        else {
            FUZZ_ASSERT(s == NULL);
        }
        break;
    case 1:
        if (bff_txn_decode(p, in, len, &t) == APR_SUCCESS) {
            txn_roundtrip(p, t);
        }
        else {
            FUZZ_ASSERT(t == NULL);
        }
        break;
    case 2:
        if (bff_session_open(p, ring, store_key, (unsigned char *)in, len, &s, &idx)
            == APR_SUCCESS) {
            FUZZ_ASSERT(s && idx == 0 && s->iss && s->sub);
        }
        break;
    case 3:
        if (bff_txn_open(p, ring, store_key, (unsigned char *)in, len, &t) == APR_SUCCESS) {
            txn_roundtrip(p, t);
        }
        break;
    default:
        /* The cookie value is text: only up to a NUL reaches the module. */
        if (bff_txn_from_cookie(p, ring, store_key, apr_pstrmemdup(p, (const char *)data + 1, len),
                                NULL, 1767225700, &t)
            == APR_SUCCESS) {
            txn_roundtrip(p, t);
        }
        break;
    }
    free(in);
    apr_pool_destroy(p);
    return 0;
}
