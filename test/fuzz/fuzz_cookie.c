/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* The Cookie request header: bff_cookie_get() for the module's cookie
 * names (the session cookie, the login cookies), bff_cookie_with_prefix()
 * as the login reads its pending-login slots, and bff_cookie_strip() /
 * bff_cookie_strip_prefix() as the relay uses them. Invariants: a value
 * found is a legal cookie value of at most 4096 bytes (it is echoed in
 * Set-Cookie and used as a store key input), a stripped header no longer
 * yields any of the stripped cookies, and the prefix scan returns at most
 * its limit of pairs, each named with the prefix. */
#include "fuzz.h"
#include "bff_cookie.h"

/* The default names (BFF_DEFAULT_COOKIE_NAME and its "-tx" login binder). */
static const char *const names[] = { "__Host-Http-bff", "__Host-Http-bff-tx", NULL };
static const char *const tx_prefix = "__Host-Http-bff-tx.";

static int octet_ok(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A)
           || (c >= 0x3C && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *hdr = fuzz_str(p, data, size), *v, *const * n;
    char *rest;
    size_t i;

    for (n = names; *n; n++) {
        if ((v = bff_cookie_get(p, hdr, *n)) != NULL) {
            FUZZ_ASSERT(strlen(v) <= 4096);
            for (i = 0; v[i]; i++) {
                FUZZ_ASSERT(octet_ok((unsigned char)v[i]));
            }
            FUZZ_ASSERT(bff_cookie_format(p, *n, v, 0, BFF_SAMESITE_STRICT) != NULL);
        }
    }
    /* An application cookie with an odd name, as a site might configure. */
    (void)bff_cookie_get(p, hdr, "a");
    rest = bff_cookie_strip(p, hdr, names);
    if (rest) {
        FUZZ_ASSERT(strlen(rest) <= 2 * strlen(hdr));
        for (n = names; *n; n++) {
            FUZZ_ASSERT(bff_cookie_get(p, rest, *n) == NULL);
        }
    }
    rest = bff_cookie_strip_prefix(p, hdr, names, tx_prefix);
    if (rest) {
        FUZZ_ASSERT(strlen(rest) <= 2 * strlen(hdr));
        FUZZ_ASSERT(bff_cookie_with_prefix(p, rest, tx_prefix, 16) == NULL
                    || bff_cookie_with_prefix(p, rest, tx_prefix, 16)->nelts == 0);
    }
    {
        apr_array_header_t *all = bff_cookie_with_prefix(p, hdr, tx_prefix, 4);
        const bff_cookie_pair_t *c = all ? (const bff_cookie_pair_t *)all->elts : NULL;

        FUZZ_ASSERT(!all || all->nelts <= 4);
        for (i = 0; all && i < (size_t)all->nelts; i++) {
            FUZZ_ASSERT(!strncmp(c[i].name, tx_prefix, strlen(tx_prefix)) && c[i].value);
        }
    }
    apr_pool_destroy(p);
    return 0;
}
