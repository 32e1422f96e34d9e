/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the logging hook through which the core logs without knowing httpd.
 */
#ifndef BFF_LOG_H
#define BFF_LOG_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_atomic.h>

/* Levels match httpd's APLOG_* numbers so the glue can pass them through. */
#define BFF_LOG_EMERG 0
#define BFF_LOG_ALERT 1
#define BFF_LOG_CRIT 2
#define BFF_LOG_ERR 3
#define BFF_LOG_WARNING 4
#define BFF_LOG_NOTICE 5
#define BFF_LOG_INFO 6
#define BFF_LOG_DEBUG 7

/* The core never calls httpd; the glue binds this hook to ap_log_error(). */
typedef void bff_log_fn(void *baton, const char *file, int line, int level, apr_status_t rv,
                        const char *msg);

void bff_log_bind(bff_log_fn *fn, void *baton);
int bff_log_is_level(int level);
void bff_log_set_level(int level);

/* Format and emit a message. Callers put a unique "BFFnnnnn: " tag first
 * and never pass a token, secret, code or cookie value. */
void bff_log_emit(const char *file, int line, int level, apr_status_t rv, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The same, to a sink of the caller's (the glue's: the request's log) when
 * fn is not NULL, else through the bound hook with its level filter. */
void bff_log_emit_to(bff_log_fn *fn, void *baton, const char *file, int line, int level,
                     apr_status_t rv, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* A rate limit for lines an outsider can cause as often as he likes: one
 * slot per process and reason, zero-initialised (a static). */
typedef struct {
    volatile apr_uint32_t last; /* second of the last line let through */
} bff_log_rate_t;

/* level when at least interval seconds have passed since the last line this
 * slot let through (now: seconds, e.g. bff_util_now()), else BFF_LOG_DEBUG.
 * Lock-free: of threads racing for the same second, one wins. */
int bff_log_rate_level(bff_log_rate_t *slot, apr_uint32_t interval, apr_int64_t now, int level);

#define BFF_LOG(level, rv, ...) \
    do { \
        if (bff_log_is_level(level)) \
            bff_log_emit(__FILE__, __LINE__, (level), (rv), __VA_ARGS__); \
    } while (0)

#endif /* BFF_LOG_H */
