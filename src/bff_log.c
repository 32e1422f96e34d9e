/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the logging hook: level filter and formatting; the glue binds it to ap_log_error.
 */
#include <stdarg.h>
#include <stdio.h>

#include "bff_log.h"

static bff_log_fn *log_fn;
static void *log_baton;
static int log_level = BFF_LOG_WARNING;

void bff_log_bind(bff_log_fn *fn, void *baton)
{
    log_fn = fn;
    log_baton = baton;
}

void bff_log_set_level(int level)
{
    log_level = level;
}

int bff_log_rate_level(bff_log_rate_t *slot, apr_uint32_t interval, apr_int64_t now, int level)
{
    apr_uint32_t t = (apr_uint32_t)now, prev = apr_atomic_read32(&slot->last);

    /* prev 0: never yet (no real clock reads 0). */
    if ((prev == 0 || t - prev >= interval) && apr_atomic_cas32(&slot->last, t, prev) == prev) {
        return level;
    }
    return BFF_LOG_DEBUG;
}

int bff_log_is_level(int level)
{
    return level <= log_level;
}

void bff_log_emit(const char *file, int line, int level, apr_status_t rv, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (log_fn) {
        log_fn(log_baton, file, line, level, rv, buf);
    }
    else {
        /* Unit tests and tools without a bound hook. */
        fprintf(stderr, "[bff:%d] %s\n", level, buf);
    }
}

void bff_log_emit_to(bff_log_fn *fn, void *baton, const char *file, int line, int level,
                     apr_status_t rv, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if (!fn && !bff_log_is_level(level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (fn) {
        fn(baton, file, line, level, rv, buf);
    }
    else {
        bff_log_emit(file, line, level, rv, "%s", buf);
    }
}
