/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the consistent-hashing ring (ketama) that places keys on memcached servers.
 */
#ifndef BFF_STORE_KETAMA_H
#define BFF_STORE_KETAMA_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_network_io.h>

/* libmemcached's ketama with equal weights (MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA,
 * KETAMA_WEIGHTED), so that another client can compute the same placement:
 *
 *  - every server gets 160 points on a ring of 32-bit values: for k = 0 .. 39,
 *    d = MD5("host:port-k") ("host-k" when the port is 11211; host exactly as
 *    listed, without IPv6 brackets), and 4 points from d, point i (0..3) being
 *    d[4i] | d[4i+1] << 8 | d[4i+2] << 16 | d[4i+3] << 24;
 *  - a key's hash is MD5(key) read the same way (i = 0);
 *  - the key belongs to the server of the first point >= its hash, wrapping
 *    around to the first point; two points of equal value are ordered by
 *    "host:port" (strcmp), so that the listing order never matters;
 *  - with replicas, the following servers are found by walking on from that
 *    point, skipping servers already taken.
 *
 * Adding or removing one of N servers moves about 1/N of the keys. MD5 is
 * used for placement only, never for security. */

typedef struct bff_ketama_t bff_ketama_t;

/* n servers (1..BFF_KETAMA_SERVERS_MAX); hosts[i], ports[i] as listed, names[i]
 * the "host:port" string used to order equal points. */
#define BFF_KETAMA_SERVERS_MAX 64
#define BFF_KETAMA_POINTS 160

apr_status_t bff_ketama_create(apr_pool_t *p, int n, const char *const *hosts,
                               const apr_port_t *ports, const char *const *names,
                               bff_ketama_t **ring);

/* The first `want` distinct servers for key (indexes into the list given to
 * create), in ring order; returns how many were written to out (min(want, n)). */
int bff_ketama_servers(const bff_ketama_t *ring, const char *key, apr_size_t klen, int want,
                       int *out);

/* The 32-bit hash of a key or point string (MD5, little-endian first word). */
apr_uint32_t bff_ketama_hash(const char *s, apr_size_t len);

/* The whole MD5 of s (all zero if MD5 is not available). */
void bff_ketama_digest(const char *s, apr_size_t len, unsigned char d[16]);

#endif /* BFF_STORE_KETAMA_H */
