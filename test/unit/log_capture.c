/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* Log capture for the unit tests: see log_capture.h. */
#include <string.h>

#include <apr_strings.h>

#include "bff_log.h"
#include "log_capture.h"

#define KEPT 64

static char log_lines[KEPT][1024];
int log_count;

static void log_capture(void *baton, const char *file, int line, int level, apr_status_t rv,
                        const char *msg)
{
    if (log_count < KEPT) {
        apr_cpystrn(log_lines[log_count], msg, sizeof(log_lines[0]));
    }
    log_count++;
}

void log_start(void)
{
    log_count = 0;
    bff_log_set_level(BFF_LOG_DEBUG);
    bff_log_bind(log_capture, NULL);
}

void log_stop(void)
{
    bff_log_set_level(BFF_LOG_WARNING);
    bff_log_bind(NULL, NULL);
}

int log_has(const char *tag, const char *text)
{
    int i, n = 0;

    for (i = 0; i < log_count && i < KEPT; i++) {
        n += strstr(log_lines[i], tag) != NULL && (!text || strstr(log_lines[i], text));
    }
    return n;
}
