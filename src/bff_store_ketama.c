/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the consistent-hashing ring (ketama) that places keys on memcached servers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "bff_store_ketama.h"

#define DIGESTS_PER_SERVER (BFF_KETAMA_POINTS / 4)
#define MEMCACHED_DEFAULT_PORT 11211

typedef struct {
    apr_uint32_t value;
    int server;
} point_t;

struct bff_ketama_t {
    int nservers;
    int npoints;
    point_t *points; /* sorted by value, then server name */
    const char *const *names;
};

/* One MD5 fetch per process instead of one per key: EVP_md5() would look
 * the algorithm up again on every digest. */
static EVP_MD *md5_md;

static const EVP_MD *md5(void)
{
    EVP_MD *md = __atomic_load_n(&md5_md, __ATOMIC_ACQUIRE), *expected = NULL;

    if (md) {
        return md;
    }
    if (!(md = EVP_MD_fetch(NULL, "MD5", NULL))) {
        return NULL;
    }
    if (!__atomic_compare_exchange_n(&md5_md, &expected, md, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        EVP_MD_free(md);
        md = expected;
    }
    return md;
}

static apr_uint32_t word_of(const unsigned char *d, int i)
{
    return (apr_uint32_t)d[4 * i] | (apr_uint32_t)d[4 * i + 1] << 8
           | (apr_uint32_t)d[4 * i + 2] << 16 | (apr_uint32_t)d[4 * i + 3] << 24;
}

static int digest(const char *s, apr_size_t len, unsigned char d[16])
{
    const EVP_MD *md = md5();
    unsigned int dlen = 0;

    return md && EVP_Digest(s, len, d, &dlen, md, NULL) == 1 && dlen == 16;
}

void bff_ketama_digest(const char *s, apr_size_t len, unsigned char d[16])
{
    if (!digest(s, len, d)) {
        memset(d, 0, 16);
    }
}

apr_uint32_t bff_ketama_hash(const char *s, apr_size_t len)
{
    unsigned char d[16];

    /* Without MD5 (a FIPS-only provider set) every key hashes to 0: one
     * server takes all, which still works; create() refuses that case. */
    return digest(s, len, d) ? word_of(d, 0) : 0;
}

/* qsort has no context argument: the names travel with the points. */
static const char *const *sort_names;

static int point_cmp(const void *a, const void *b)
{
    const point_t *x = a, *y = b;

    if (x->value != y->value) {
        return x->value < y->value ? -1 : 1;
    }
    return strcmp(sort_names[x->server], sort_names[y->server]);
}

static apr_status_t server_points(point_t *pt, int server, const char *host, apr_port_t port)
{
    char buf[320];
    unsigned char d[16];
    int k, i, len;

    for (k = 0; k < DIGESTS_PER_SERVER; k++) {
        if (port == MEMCACHED_DEFAULT_PORT) {
            len = snprintf(buf, sizeof(buf), "%s-%d", host, k);
        }
        else {
            len = snprintf(buf, sizeof(buf), "%s:%u-%d", host, (unsigned)port, k);
        }
        if (len < 0 || (apr_size_t)len >= sizeof(buf) || !digest(buf, (apr_size_t)len, d)) {
            return APR_EGENERAL;
        }
        for (i = 0; i < 4; i++) {
            pt[4 * k + i].value = word_of(d, i);
            pt[4 * k + i].server = server;
        }
    }
    return APR_SUCCESS;
}

apr_status_t bff_ketama_create(apr_pool_t *p, int n, const char *const *hosts,
                               const apr_port_t *ports, const char *const *names,
                               bff_ketama_t **ring)
{
    bff_ketama_t *r;
    apr_status_t rv;
    int i;

    if (n < 1 || n > BFF_KETAMA_SERVERS_MAX) {
        return APR_EINVAL;
    }
    r = apr_pcalloc(p, sizeof(*r));
    r->nservers = n;
    r->names = names;
    r->npoints = n * BFF_KETAMA_POINTS;
    r->points = apr_pcalloc(p, sizeof(*r->points) * (apr_size_t)r->npoints);
    for (i = 0; i < n; i++) {
        if (APR_SUCCESS
            != (rv = server_points(r->points + i * BFF_KETAMA_POINTS, i, hosts[i], ports[i]))) {
            return rv;
        }
    }
    /* Configuration time, single-threaded: the static is safe here. */
    sort_names = names;
    qsort(r->points, (size_t)r->npoints, sizeof(*r->points), point_cmp);
    sort_names = NULL;
    *ring = r;
    return APR_SUCCESS;
}

/* Index of the first point >= h, wrapping to 0. */
static int first_point(const bff_ketama_t *r, apr_uint32_t h)
{
    int lo = 0, hi = r->npoints, mid;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (r->points[mid].value < h) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo == r->npoints ? 0 : lo;
}

int bff_ketama_servers(const bff_ketama_t *r, const char *key, apr_size_t klen, int want, int *out)
{
    int got = 0, i, j, at, s;

    if (want > r->nservers) {
        want = r->nservers;
    }
    if (r->nservers == 1) {
        out[0] = 0;
        return want > 0 ? 1 : 0;
    }
    at = first_point(r, bff_ketama_hash(key, klen));
    for (i = 0; i < r->npoints && got < want; i++) {
        s = r->points[(at + i) % r->npoints].server;
        for (j = 0; j < got && out[j] != s; j++) {
        }
        if (j == got) {
            out[got++] = s;
        }
    }
    return got;
}
