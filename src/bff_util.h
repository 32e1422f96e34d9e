/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: small primitives shared by the core and the glue.
 */
#ifndef BFF_UTIL_H
#define BFF_UTIL_H

#include <apr_pools.h>
#include <apr_errno.h>

/* Fill buf from the OS CSPRNG (OpenSSL RAND_bytes). */
apr_status_t bff_util_random(unsigned char *buf, apr_size_t len);

/* nbytes of CSPRNG output as unpadded base64url (pool string), NULL on failure. */
char *bff_util_random_token(apr_pool_t *p, apr_size_t nbytes);

/* Unpadded base64url (RFC 4648 section 5). */
char *bff_util_b64url_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len);

/* Strict decode: only the base64url alphabet, no padding, no whitespace,
 * no impossible trailing bits. Output is NUL-terminated for convenience
 * (the NUL is not counted in *outlen). APR_EINVAL on bad input. */
apr_status_t bff_util_b64url_decode(apr_pool_t *p, const char *s, apr_size_t slen,
                                    unsigned char **out, apr_size_t *outlen);

/* Standard base64 with padding (HTTP Basic). */
char *bff_util_b64_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len);

/* Constant-time comparisons (CRYPTO_memcmp). bff_util_ct_streq is false when
 * either is NULL; its running time depends only on the lengths. */
int bff_util_ct_equal(const void *a, const void *b, apr_size_t len);
int bff_util_ct_streq(const char *a, const char *b);

/* Lower-case hex. */
char *bff_util_hex(apr_pool_t *p, const unsigned char *data, apr_size_t len);

/* SHA-256 of data into out[32]. */
apr_status_t bff_util_sha256(const void *data, apr_size_t len, unsigned char out[32]);

/* application/x-www-form-urlencoded / query component encoding: unreserved
 * characters (A-Z a-z 0-9 - . _ ~) stay, everything else becomes %XX
 * (space is %20, which every server accepts in both places). */
char *bff_util_url_encode(apr_pool_t *p, const char *s);

/* Percent-decoding of a query/form component; '+' becomes space.
 * APR_EINVAL on a malformed escape or an encoded NUL. */
apr_status_t bff_util_url_decode(apr_pool_t *p, const char *s, apr_size_t len, char **out);

/* The value of one hex digit (either case), or -1. */
int bff_util_hex_value(unsigned char c);

/* A secret given on a directive: "file:/path" reads the file (trailing
 * whitespace/newlines trimmed, at most 64 KiB), anything else is the secret
 * itself. On failure *err says why (never containing the secret). */
apr_status_t bff_util_read_secret(apr_pool_t *p, const char *arg, const char **secret,
                                  apr_size_t *len, const char **err);

/* Seconds since the epoch (wall clock). */
apr_int64_t bff_util_now(void);

/* Parse a duration "90", "90s", "30m", "8h", "2d" into seconds; APR_EINVAL
 * on anything else, a negative number or an overflow. */
apr_status_t bff_util_parse_duration(const char *s, apr_int64_t *secs);

/* Parse a size "1048576", "512K", "64M", "1G" into bytes; APR_EINVAL otherwise. */
apr_status_t bff_util_parse_size(const char *s, apr_size_t *bytes);

#endif /* BFF_UTIL_H */
