/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: URL checks and parsing: return targets (open-redirect defence), query strings, absolute
 * URLs, loopback hosts.
 */
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "bff_url.h"
#include "bff_util.h"

#define BFF_RETURN_TO_MAX 2048
#define BFF_QUERY_MAX_PARAMS 64
/* A return target is decoded and re-checked until nothing changes: a backend
 * that decodes twice must not see "//host" either. More than
 * BFF_RETURN_TO_ROUNDS - 1 levels of encoding is refused outright. */
#define BFF_RETURN_TO_ROUNDS 4

/* Bytes never allowed raw in a return target: controls, space, non-ASCII,
 * the backslash (browsers treat it as '/'), and the characters every browser
 * percent-encodes itself, so a real SPA location never contains them and
 * they cannot reach an HTML redirect body unescaped. */
static int return_to_raw_byte_ok(unsigned char c)
{
    if (c <= 0x20 || c >= 0x7f) {
        return 0;
    }
    switch (c) {
    case '\\':
    case '"':
    case '<':
    case '>':
    case '`':
        return 0;
    default:
        return 1;
    }
}

/* Well-formed UTF-8 only: overlong forms (%C0%AF for '/'), surrogates and
 * code points above U+10FFFF have fooled path decoders before. */
static int utf8_ok(const unsigned char *s, apr_size_t len)
{
    apr_size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        apr_size_t n, k;
        apr_uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        }
        else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        }
        else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        }
        else {
            return 0;
        }
        if (len - i <= n) {
            return 0;
        }
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff
            || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
        i += n + 1;
    }
    return 1;
}

/* Checks that hold for the raw target and for every decoded form of it. */
static int return_to_form_ok(const unsigned char *s, apr_size_t len)
{
    apr_size_t i, seg;

    if (len < 1 || s[0] != '/') {
        return 0;
    }
    if (len >= 2 && (s[1] == '/' || s[1] == '\\')) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\') {
            return 0;
        }
    }
    if (!utf8_ok(s, len)) {
        return 0;
    }
    /* No dot-segments in the path: "/.//evil" is same-origin for a browser,
     * but anything that normalises it (an app, a proxy) gets "//evil". A real
     * browser location never contains them, so refusing costs nothing. */
    seg = 1;
    for (i = 1; i <= len; i++) {
        if (i == len || s[i] == '/' || s[i] == '?' || s[i] == '#') {
            apr_size_t slen = i - seg;
            if ((slen == 1 && s[seg] == '.') || (slen == 2 && s[seg] == '.' && s[seg + 1] == '.')) {
                return 0;
            }
            if (i == len || s[i] != '/') {
                break;
            }
            seg = i + 1;
        }
    }
    return 1;
}

/* One round of percent-decoding into out (at most len bytes). strict: a '%'
 * not followed by two hex digits is an error (only for the raw string: in
 * an already decoded string it is a literal '%'). Returns the new length, or
 * (apr_size_t)-1 on error; *changed tells whether anything was decoded. */
static apr_size_t pct_decode_round(const unsigned char *in, apr_size_t len, unsigned char *out,
                                   int strict, int *changed)
{
    apr_size_t i, o = 0;
    int hi, lo;

    *changed = 0;
    for (i = 0; i < len; i++) {
        if (in[i] == '%') {
            if (len - i >= 3 && (hi = bff_util_hex_value(in[i + 1])) >= 0
                && (lo = bff_util_hex_value(in[i + 2])) >= 0) {
                out[o++] = (unsigned char)((hi << 4) | lo);
                i += 2;
                *changed = 1;
                continue;
            }
            if (strict) {
                return (apr_size_t)-1;
            }
        }
        out[o++] = in[i];
    }
    return o;
}

int bff_url_return_to_ok(const char *raw)
{
    const unsigned char *s = (const unsigned char *)raw;
    unsigned char a[BFF_RETURN_TO_MAX], b[BFF_RETURN_TO_MAX];
    unsigned char *cur = a, *next = b, *tmp;
    apr_size_t len, i;
    int round, changed;

    if (raw == NULL) {
        return 0;
    }
    len = strnlen(raw, BFF_RETURN_TO_MAX + 1);
    if (len == 0 || len > BFF_RETURN_TO_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!return_to_raw_byte_ok(s[i])) {
            return 0;
        }
    }
    if (!return_to_form_ok(s, len)) {
        return 0;
    }
    len = pct_decode_round(s, len, cur, 1, &changed);
    if (len == (apr_size_t)-1) {
        return 0;
    }
    /* Decode again as long as something changes, checking each form: "/%2F"
     * is "//" for a backend that decodes, "/%252F" for one that decodes twice. */
    for (round = 1; changed; round++) {
        if (!return_to_form_ok(cur, len)) {
            return 0;
        }
        if (round >= BFF_RETURN_TO_ROUNDS) {
            return 0;
        }
        len = pct_decode_round(cur, len, next, 0, &changed);
        tmp = cur;
        cur = next;
        next = tmp;
    }
    return 1;
}

apr_status_t bff_url_parse_query(apr_pool_t *p, const char *query, apr_table_t **out)
{
    apr_table_t *t;
    const char *q, *amp, *eq;
    int count = 0;
    apr_status_t rv;

    if (out == NULL) {
        return APR_EINVAL;
    }
    *out = NULL;
    t = apr_table_make(p, 8);
    for (q = query; q != NULL && *q != '\0'; q = amp ? amp + 1 : NULL) {
        apr_size_t plen;
        char *name, *value;

        amp = strchr(q, '&');
        plen = amp ? (apr_size_t)(amp - q) : strlen(q);
        if (plen == 0) {
            continue;
        }
        if (++count > BFF_QUERY_MAX_PARAMS) {
            return APR_EINVAL;
        }
        eq = memchr(q, '=', plen);
        if (eq == NULL) {
            rv = bff_util_url_decode(p, q, plen, &name);
            value = apr_pstrdup(p, "");
        }
        else {
            rv = bff_util_url_decode(p, q, (apr_size_t)(eq - q), &name);
            if (APR_SUCCESS == rv) {
                rv = bff_util_url_decode(p, eq + 1, plen - (apr_size_t)(eq - q) - 1, &value);
            }
        }
        if (APR_SUCCESS != rv) {
            return APR_EINVAL;
        }
        if (*name == '\0') {
            continue;
        }
        apr_table_addn(t, name, value);
    }
    *out = t;
    return APR_SUCCESS;
}

static int url_byte_ok(unsigned char c)
{
    if (c <= 0x20 || c >= 0x7f) {
        return 0;
    }
    switch (c) {
    case '\\':
    case '"':
    case '<':
    case '>':
    case '`':
    case '{':
    case '}':
    case '|':
    case '^':
        return 0;
    default:
        return 1;
    }
}

static int parse_port(const char *s, apr_size_t len, int *port)
{
    apr_size_t i;
    int v = 0;

    if (len == 0 || len > 5) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!apr_isdigit(s[i])) {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535) {
        return 0;
    }
    *port = v;
    return 1;
}

static int reg_name_ok(const char *s, apr_size_t len)
{
    apr_size_t i;

    if (len == 0 || len > 253) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!apr_isalnum(s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_') {
            return 0;
        }
    }
    return 1;
}

apr_status_t bff_url_parse(apr_pool_t *p, const char *url, bff_url_t *out)
{
    const char *auth, *auth_end, *host, *host_end, *port_s = NULL, *q;
    apr_size_t i, len;
    int port;

    if (url == NULL || out == NULL) {
        return APR_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    len = strlen(url);
    for (i = 0; i < len; i++) {
        if (!url_byte_ok((unsigned char)url[i]) || url[i] == '#') {
            return APR_EINVAL;
        }
    }
    if (strncasecmp(url, "https://", 8) == 0) {
        out->scheme = "https";
        port = 443;
        auth = url + 8;
    }
    else if (strncasecmp(url, "http://", 7) == 0) {
        out->scheme = "http";
        port = 80;
        auth = url + 7;
    }
    else {
        return APR_EINVAL;
    }
    auth_end = auth + strcspn(auth, "/?");
    /* Userinfo is where "https://idp.example@evil" tricks live; the host
     * and port checks below would refuse it too, but a caller can tell the
     * admin exactly what is wrong. */
    if (memchr(auth, '@', (apr_size_t)(auth_end - auth)) != NULL) {
        return APR_EACCES;
    }
    if (*auth == '[') {
        char buf[INET6_ADDRSTRLEN + 1];
        struct in6_addr a6;

        host = auth + 1;
        host_end = memchr(host, ']', (apr_size_t)(auth_end - host));
        if (host_end == NULL || host_end == host || (apr_size_t)(host_end - host) >= sizeof(buf)) {
            return APR_EINVAL;
        }
        memcpy(buf, host, (apr_size_t)(host_end - host));
        buf[host_end - host] = '\0';
        /* inet_pton refuses zone ids and anything that is not an address. */
        if (inet_pton(AF_INET6, buf, &a6) != 1) {
            return APR_EINVAL;
        }
        if (host_end + 1 < auth_end) {
            if (host_end[1] != ':') {
                return APR_EINVAL;
            }
            port_s = host_end + 2;
        }
        else if (host_end + 1 != auth_end) {
            return APR_EINVAL;
        }
    }
    else {
        host = auth;
        host_end = memchr(auth, ':', (apr_size_t)(auth_end - auth));
        if (host_end != NULL) {
            port_s = host_end + 1;
        }
        else {
            host_end = auth_end;
        }
        if (!reg_name_ok(host, (apr_size_t)(host_end - host))) {
            return APR_EINVAL;
        }
    }
    if (port_s != NULL && !parse_port(port_s, (apr_size_t)(auth_end - port_s), &port)) {
        return APR_EINVAL;
    }
    out->host = apr_pstrmemdup(p, host, (apr_size_t)(host_end - host));
    out->port = port;
    q = strchr(auth_end, '?');
    if (q != NULL) {
        out->query = apr_pstrdup(p, q + 1);
    }
    else {
        q = auth_end + strlen(auth_end);
    }
    out->path = (q == auth_end) ? "/" : apr_pstrmemdup(p, auth_end, (apr_size_t)(q - auth_end));
    return APR_SUCCESS;
}

/* Strict dotted quad: four decimal parts 0-255, no leading zeros (inet_aton
 * would read "0177.1" as octal), no shortened forms. */
static int ipv4_parse(const char *s, unsigned char out[4])
{
    int part = 0;

    while (part < 4) {
        int v = 0, digits = 0;
        while (*s >= '0' && *s <= '9') {
            if (digits > 0 && v == 0) {
                return 0;
            }
            v = v * 10 + (*s - '0');
            if (++digits > 3 || v > 255) {
                return 0;
            }
            s++;
        }
        if (digits == 0) {
            return 0;
        }
        out[part++] = (unsigned char)v;
        if (part < 4) {
            if (*s != '.') {
                return 0;
            }
            s++;
        }
    }
    return *s == '\0';
}

int bff_url_host_is_loopback(const char *host)
{
    unsigned char a4[4];
    struct in6_addr a6;
    apr_size_t len;

    if (host == NULL || *host == '\0') {
        return 0;
    }
    len = strlen(host);
    if (strcasecmp(host, "localhost") == 0) {
        return 1;
    }
    if (len > 10 && strcasecmp(host + len - 10, ".localhost") == 0) {
        /* The labels before must be a plausible DNS name, not "..localhost". */
        apr_size_t i;
        if (!reg_name_ok(host, len - 10) || host[0] == '.' || host[len - 11] == '.') {
            return 0;
        }
        for (i = 1; i < len - 10; i++) {
            if (host[i] == '.' && host[i - 1] == '.') {
                return 0;
            }
        }
        return 1;
    }
    if (ipv4_parse(host, a4)) {
        return a4[0] == 127;
    }
    if (strchr(host, ':') != NULL && inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6)) {
            return 1;
        }
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return 0;
}

char *bff_url_add_param(apr_pool_t *p, const char *url, const char *name, const char *value)
{
    const char *frag, *sep;
    const char *en, *ev;
    apr_size_t base_len;

    if (url == NULL || name == NULL) {
        return NULL;
    }
    en = bff_util_url_encode(p, name);
    ev = bff_util_url_encode(p, value ? value : "");
    if (en == NULL || ev == NULL) {
        return NULL;
    }
    /* The parameter belongs to the query, which ends where a fragment starts. */
    frag = strchr(url, '#');
    base_len = frag ? (apr_size_t)(frag - url) : strlen(url);
    if (memchr(url, '?', base_len) == NULL) {
        sep = "?";
    }
    else if (url[base_len - 1] == '?' || url[base_len - 1] == '&') {
        sep = "";
    }
    else {
        sep = "&";
    }
    return apr_pstrcat(p, apr_pstrmemdup(p, url, base_len), sep, en, "=", ev, frag ? frag : "",
                       NULL);
}
