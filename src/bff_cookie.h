/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: Cookie request header parsing and stripping, Set-Cookie formatting (RFC 6265).
 */
#ifndef BFF_COOKIE_H
#define BFF_COOKIE_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_tables.h>

/* Value of the first cookie called name in a Cookie request header (RFC 6265
 * "a=b; c=d"), or NULL. Tolerates odd whitespace and empty pairs; values
 * longer than 4096 bytes or containing bytes outside cookie-octet are
 * treated as absent. Surrounding DQUOTEs are removed. */
const char *bff_cookie_get(apr_pool_t *p, const char *header, const char *name);

/* The Cookie header with every cookie whose name is in names (NULL-terminated)
 * removed, the others kept in order, joined with "; ". Returns NULL when no
 * cookie is left (the caller then drops the header). */
char *bff_cookie_strip(apr_pool_t *p, const char *header, const char *const *names);
/* The same, also removing every cookie whose name starts with prefix (may be NULL). */
char *bff_cookie_strip_prefix(apr_pool_t *p, const char *header, const char *const *names,
                              const char *prefix);

/* The cookies whose name starts with prefix (and is longer than it), in
 * header order, at most max of them; a name seen before or a value that
 * bff_cookie_get would treat as absent is left out. NULL when none. */
typedef struct {
    const char *name;
    const char *value;
} bff_cookie_pair_t;
apr_array_header_t *bff_cookie_with_prefix(apr_pool_t *p, const char *header, const char *prefix,
                                           int max);

typedef enum { BFF_SAMESITE_STRICT = 0, BFF_SAMESITE_LAX = 1 } bff_samesite_e;

/* A Set-Cookie value: "name=value; Path=/; Secure; HttpOnly; SameSite=X"
 * plus "; Max-Age=N" when max_age >= 0 (max_age 0 with an empty value
 * deletes the cookie). Never a Domain attribute. */
char *bff_cookie_format(apr_pool_t *p, const char *name, const char *value, apr_int64_t max_age,
                        bff_samesite_e samesite);

/* True when name is a legal cookie name (RFC 6265 token). */
int bff_cookie_name_ok(const char *name);

#endif /* BFF_COOKIE_H */
