/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* Redirect validation: bff_url_return_to_ok() (the returnTo of /bff/login
 * and the logout return target, echoed in a Location header) and
 * bff_url_parse() (absolute URLs from configuration and from the provider's
 * discovery document), on the same input.
 *
 * Oracle for returnTo, independent of the implementation: an accepted value
 * is at most 2048 bytes of visible ASCII without a backslash, and every
 * form it takes when percent-decoded again and again (as a backend or
 * browser might) is still a path on this site: it starts with exactly one
 * '/' (not "//" nor "/\"), holds no backslash and no control character. */
#include "fuzz.h"
#include "bff_url.h"

static int hexv(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One lenient decoding round (a malformed escape stays as it is). */
static size_t decode(const unsigned char *in, size_t len, unsigned char *out, int *changed)
{
    size_t i, o = 0;

    *changed = 0;
    for (i = 0; i < len; i++) {
        if (in[i] == '%' && i + 2 < len + 0 && hexv(in[i + 1]) >= 0 && hexv(in[i + 2]) >= 0) {
            out[o++] = (unsigned char)(hexv(in[i + 1]) << 4 | hexv(in[i + 2]));
            i += 2;
            *changed = 1;
        }
        else {
            out[o++] = in[i];
        }
    }
    return o;
}

static void form_ok(const unsigned char *s, size_t len)
{
    size_t i;

    FUZZ_ASSERT(len >= 1 && s[0] == '/');
    FUZZ_ASSERT(len == 1 || (s[1] != '/' && s[1] != '\\'));
    for (i = 0; i < len; i++) {
        FUZZ_ASSERT(s[i] != '\\' && s[i] >= 0x20 && s[i] != 0x7f);
    }
}

static void check_return_to(const char *raw)
{
    unsigned char a[2100], b[2100], *cur = a, *next = b, *tmp;
    size_t len = strlen(raw), i;
    int changed = 1, round;

    FUZZ_ASSERT(len <= 2048);
    for (i = 0; i < len; i++) {
        FUZZ_ASSERT(raw[i] > 0x20 && raw[i] < 0x7f && raw[i] != '\\');
    }
    memcpy(cur, raw, len);
    form_ok(cur, len);
    for (round = 0; changed && round < 16; round++) {
        len = decode(cur, len, next, &changed);
        form_ok(next, len);
        tmp = cur;
        cur = next;
        next = tmp;
    }
}

static void check_url(apr_pool_t *p, const char *s)
{
    bff_url_t u;

    if (bff_url_parse(p, s, &u) != APR_SUCCESS) {
        return;
    }
    FUZZ_ASSERT(!strcmp(u.scheme, "http") || !strcmp(u.scheme, "https"));
    FUZZ_ASSERT(u.host && *u.host && !strchr(u.host, '@') && !strpbrk(u.host, " \t\r\n"));
    FUZZ_ASSERT(u.port >= 1 && u.port <= 65535);
    FUZZ_ASSERT(u.path && u.path[0] == '/' && !strchr(u.path, '?') && !strchr(u.path, '#'));
    FUZZ_ASSERT(!strchr(s, '#') && !strpbrk(s, " \t\r\n"));
    (void)bff_url_host_is_loopback(u.host);
    FUZZ_ASSERT(bff_url_add_param(p, s, "state", "a b&c") != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *s = fuzz_str(p, data, size);

    if (bff_url_return_to_ok(s)) {
        check_return_to(s);
    }
    check_url(p, s);
    apr_pool_destroy(p);
    return 0;
}
