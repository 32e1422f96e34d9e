/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: URL checks and parsing: return targets, query strings, absolute URLs.
 */
#ifndef BFF_URL_H
#define BFF_URL_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_tables.h>

/* A post-login/post-logout return target: true only for a same-origin
 * relative path, after percent-decoding. It must start with exactly one '/',
 * must not start with "//" or "/\" (raw or encoded, any mix), and must not
 * contain a backslash, a control character (0x00-0x1F, 0x7F), a scheme, an
 * '@' before the first '/', or be longer than 2048 bytes. The raw string is
 * what gets used in the Location header, so it must also be free of bytes
 * that would break the header (CR, LF, spaces). */
int bff_url_return_to_ok(const char *raw);

/* Parse "a=1&b=2" into a table of decoded values (apr_table is
 * case-insensitive; repeated names are kept in order). APR_EINVAL on a
 * malformed escape; at most 64 parameters. */
apr_status_t bff_url_parse_query(apr_pool_t *p, const char *query, apr_table_t **out);

/* Split an absolute http(s) URL. Fails with APR_EINVAL unless the scheme is
 * http or https, the host is non-empty, and there is no userinfo, fragment
 * or whitespace. port is the explicit port or the scheme default. path is
 * "/" when absent and excludes the query. */
typedef struct {
    const char *scheme;
    const char *host; /* without brackets for IPv6 literals */
    int port;
    const char *path;
    const char *query; /* NULL when absent */
} bff_url_t;
/* APR_EACCES for a URL with userinfo (user[:password]@), APR_EINVAL for
 * anything else that is refused. */
apr_status_t bff_url_parse(apr_pool_t *p, const char *url, bff_url_t *out);

/* localhost, *.localhost, 127.0.0.0/8 or ::1. */
int bff_url_host_is_loopback(const char *host);

/* Append "name=value" (both encoded) to a URL that may already have a query. */
char *bff_url_add_param(apr_pool_t *p, const char *url, const char *name, const char *value);

#endif /* BFF_URL_H */
