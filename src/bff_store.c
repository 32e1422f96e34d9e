/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: backend-independent store code: locks with owner tokens over add, and the
 * BFFSessionStore value parser.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "bff_store.h"
#include "bff_util.h"

#define SPEC_EXPECTED \
    "expected shm, shm:<size> (e.g. shm:256M) or memcache:host:port[,host:port...]"
#define SHM_SIZE_MIN ((apr_size_t)1024 * 1024)
#define SHM_SIZE_MAX ((apr_size_t)64 * 1024 * 1024 * 1024)
#define HOST_MAX 255

static int host_char_ok(char c, int bracketed)
{
    if (apr_isalnum((unsigned char)c) || c == '.' || c == '-') {
        return 1;
    }
    if (bracketed) {
        return c == ':' || c == '%';
    }
    return c == '_';
}

apr_status_t bff_store_server_parse(apr_pool_t *p, const char *s, apr_size_t len, const char **host,
                                    apr_port_t *pport, int *ipv6, const char **err)
{
    const char *colon = NULL, *h, *hend;
    apr_size_t i;
    unsigned long port = 0;
    int bracketed;

    for (i = len; i > 0; i--) {
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    }
    if (!colon) {
        *err = apr_psprintf(p, "memcache server '%s' has no port: expected host:port",
                            apr_pstrmemdup(p, s, len));
        return APR_EINVAL;
    }
    h = s;
    hend = colon;
    bracketed = (hend > h && *h == '[');
    if (bracketed) {
        if (hend - h < 3 || hend[-1] != ']') {
            *err = apr_psprintf(p, "memcache server '%s': expected [ipv6-address]:port",
                                apr_pstrmemdup(p, s, len));
            return APR_EINVAL;
        }
        h++;
        hend--;
    }
    if (hend == h || (apr_size_t)(hend - h) > HOST_MAX) {
        *err = apr_psprintf(p, "memcache server '%s': expected a host name before ':port'",
                            apr_pstrmemdup(p, s, len));
        return APR_EINVAL;
    }
    for (; h < hend; h++) {
        if (!host_char_ok(*h, bracketed)) {
            *err = apr_psprintf(p, "memcache server '%s': invalid character in host name",
                                apr_pstrmemdup(p, s, len));
            return APR_EINVAL;
        }
    }
    for (h = colon + 1; h < s + len; h++) {
        if (!apr_isdigit((unsigned char)*h) || port > 65535) {
            port = 0;
            break;
        }
        port = port * 10 + (unsigned long)(*h - '0');
    }
    if (h == colon + 1 || port < 1 || port > 65535) {
        *err = apr_psprintf(p, "memcache server '%s': expected a port from 1 to 65535",
                            apr_pstrmemdup(p, s, len));
        return APR_EINVAL;
    }
    if (host) {
        *host = bracketed ? apr_pstrmemdup(p, s + 1, (apr_size_t)(colon - s) - 2)
                          : apr_pstrmemdup(p, s, (apr_size_t)(colon - s));
    }
    if (pport) {
        *pport = (apr_port_t)port;
    }
    if (ipv6) {
        *ipv6 = bracketed;
    }
    return APR_SUCCESS;
}

static apr_status_t servers_parse(apr_pool_t *p, const char *list, bff_store_spec_t *spec,
                                  const char **err)
{
    const char *s = list, *comma;
    apr_size_t len;
    apr_status_t rv;
    int n = 0;

    if (!*list) {
        *err = "memcache: needs at least one server: " SPEC_EXPECTED;
        return APR_EINVAL;
    }
    for (;;) {
        comma = strchr(s, ',');
        len = comma ? (apr_size_t)(comma - s) : strlen(s);
        if (len == 0) {
            *err = "memcache: empty server in list: " SPEC_EXPECTED;
            return APR_EINVAL;
        }
        if (APR_SUCCESS != (rv = bff_store_server_parse(p, s, len, NULL, NULL, NULL, err))) {
            return rv;
        }
        n++;
        if (!comma) {
            break;
        }
        s = comma + 1;
    }
    spec->kind = BFF_STORE_MEMCACHE;
    spec->servers = apr_pstrdup(p, list);
    spec->nservers = n;
    spec->replicas = 1;
    spec->shm_size = 0;
    return APR_SUCCESS;
}

/* 16 random bytes: two owners never draw the same token. */
#define LOCK_OWNER_BYTES 16

apr_status_t bff_store_lock(bff_store_t *st, apr_pool_t *p, const char *lock_key, apr_int64_t ttl,
                            const char **owner)
{
    return bff_store_lock_until(st, p, lock_key, bff_util_now() + ttl, owner);
}

apr_status_t bff_store_lock_until(bff_store_t *st, apr_pool_t *p, const char *lock_key,
                                  apr_int64_t expires, const char **owner)
{
    char *token = bff_util_random_token(p, LOCK_OWNER_BYTES);
    apr_status_t rv;

    if (!token) {
        return APR_EGENERAL;
    }
    rv = bff_store_add(st, p, lock_key, (const unsigned char *)token, strlen(token), expires);
    if (rv == APR_SUCCESS) {
        *owner = token;
    }
    return rv;
}

apr_status_t bff_store_unlock(bff_store_t *st, apr_pool_t *p, const char *lock_key,
                              const char *owner)
{
    unsigned char *v;
    apr_size_t len;
    apr_status_t rv;

    if (!owner) {
        return APR_NOTFOUND;
    }
    rv = bff_store_get(st, p, lock_key, &v, &len);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (len != strlen(owner) || !bff_util_ct_equal(v, owner, len)) {
        /* Ours expired and someone else holds it now: theirs to remove. */
        return APR_NOTFOUND;
    }
    /* Compare, then remove: two store operations, not one. What remains is
     * that our lock expires between the two and another owner takes it, so
     * that we remove theirs. That needs us to have held the lock for its
     * whole TTL, which is sized above the longest path that holds it, and
     * to do so within the moment between these two calls; the outcome then
     * is one more concurrent holder (what the lock exists to make rare),
     * never a lost or recreated session, because every session write is a
     * replace of the live record. (memcached's text protocol has no
     * compare-and-delete, so no backend-neutral atomic form exists.) */
    return bff_store_remove(st, p, lock_key);
}

apr_status_t bff_store_spec_parse(apr_pool_t *p, const char *arg, bff_store_spec_t *spec,
                                  const char **err)
{
    apr_size_t size;

    *err = NULL;
    if (!arg) {
        *err = SPEC_EXPECTED;
        return APR_EINVAL;
    }
    if (!strcasecmp(arg, "shm")) {
        spec->kind = BFF_STORE_SHM;
        spec->shm_size = BFF_STORE_SHM_DEFAULT_SIZE;
        spec->servers = NULL;
        return APR_SUCCESS;
    }
    if (!strncasecmp(arg, "shm:", 4)) {
        if (APR_SUCCESS != bff_util_parse_size(arg + 4, &size)) {
            *err = apr_psprintf(p,
                                "invalid shm size '%s': expected a number with an "
                                "optional K, M or G suffix, e.g. shm:256M",
                                arg + 4);
            return APR_EINVAL;
        }
        if (size < SHM_SIZE_MIN || size > SHM_SIZE_MAX) {
            *err = apr_psprintf(p, "shm size '%s' out of range: expected 1M to 64G", arg + 4);
            return APR_EINVAL;
        }
        spec->kind = BFF_STORE_SHM;
        spec->shm_size = size;
        spec->servers = NULL;
        return APR_SUCCESS;
    }
    if (!strncasecmp(arg, "memcache:", 9)) {
        return servers_parse(p, arg + 9, spec, err);
    }
    *err = apr_psprintf(p, "unknown session store '%s': " SPEC_EXPECTED, arg);
    return APR_EINVAL;
}

apr_status_t bff_store_spec_option(apr_pool_t *p, const char *opt, bff_store_spec_t *spec,
                                   const char **err)
{
    char *end = NULL;
    long n;

    if (spec->kind != BFF_STORE_MEMCACHE || strncasecmp(opt, "replicas=", 9) != 0) {
        *err = apr_psprintf(p,
                            "unknown session store option '%s': expected replicas=N after a "
                            "memcache server list",
                            opt);
        return APR_EINVAL;
    }
    errno = 0;
    n = strtol(opt + 9, &end, 10);
    if (errno || !apr_isdigit(opt[9]) || *end || n < 1 || n > spec->nservers) {
        *err = apr_psprintf(p,
                            "replicas='%s': expected a number from 1 to the number of "
                            "servers listed (%d)",
                            opt + 9, spec->nservers);
        return APR_EINVAL;
    }
    spec->replicas = (int)n;
    return APR_SUCCESS;
}
