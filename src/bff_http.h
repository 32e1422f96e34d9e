/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the HTTP client of the back channel to the provider.
 */
#ifndef BFF_HTTP_H
#define BFF_HTTP_H

#include <apr_pools.h>
#include <apr_errno.h>

/* The back channel to the provider, over libcurl. TLS verification is always
 * on (system CAs plus ca_file, if set, added to the trust store); redirects
 * are not followed; only https is allowed, or http when allow_http is set
 * (loopback providers); every call is bounded by the timeouts and the body
 * size. */
/* The timeouts of a call whose options leave them at 0 (also the defaults of
 * BFFProviderTimeout). */
#define BFF_HTTP_DEF_CONNECT_MS 3000L
#define BFF_HTTP_DEF_TIMEOUT_MS 10000L

typedef struct {
    const char *ca_file;     /* extra PEM CA certificates, or NULL */
    long connect_timeout_ms; /* default 3000 */
    long timeout_ms;         /* whole transfer, default 10000 */
    apr_size_t max_body;     /* default 1 MiB */
    int allow_http;
} bff_http_opts_t;

typedef struct {
    long status;
    const char *content_type; /* NULL when absent */
    const char *body;         /* NUL-terminated */
    apr_size_t len;
} bff_http_resp_t;

/* Once per process before threads start (curl_global_init). */
apr_status_t bff_http_global_init(void);

/* APR_TIMEUP on a timeout, APR_ECONNREFUSED when unreachable, APR_EINVAL for
 * a refused URL, APR_ENOSPC when the body exceeds max_body, APR_EGENERAL
 * otherwise; *err in words (no secrets). Any HTTP status is APR_SUCCESS. */
apr_status_t bff_http_get(apr_pool_t *p, const bff_http_opts_t *opts, const char *url,
                          bff_http_resp_t **resp, const char **err);

/* POST application/x-www-form-urlencoded. With basic_user set, sends
 * Authorization: Basic of form-urlencoded user and password (RFC 6749 2.3.1). */
apr_status_t bff_http_post_form(apr_pool_t *p, const bff_http_opts_t *opts, const char *url,
                                const char *form_body, const char *basic_user,
                                const char *basic_pass, bff_http_resp_t **resp, const char **err);

/* GET with Authorization: Bearer <bearer> (RFC 6750 2.1), e.g. the userinfo
 * endpoint. APR_EINVAL for an empty bearer or one with CR/LF; otherwise as
 * bff_http_get. */
apr_status_t bff_http_get_bearer(apr_pool_t *p, const bff_http_opts_t *opts, const char *url,
                                 const char *bearer, bff_http_resp_t **resp, const char **err);

/* Frees the calling thread's cached connection to the provider. Only for
 * threads that end before the process does (tests, tools). */
void bff_http_thread_release(void);

#endif /* BFF_HTTP_H */
