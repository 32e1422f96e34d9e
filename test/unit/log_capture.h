/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* Captures what the core logs (bff_log), for tests that check a log line
 * was written: log_start() binds the capture at debug level, log_stop()
 * unbinds it and goes back to warning. */
#ifndef BFF_TEST_LOG_CAPTURE_H
#define BFF_TEST_LOG_CAPTURE_H

/* Lines logged since log_start() (also those past the 64 kept). */
extern int log_count;

void log_start(void);
void log_stop(void);
/* How many of the kept lines carry tag, and (if non-NULL) also text. */
int log_has(const char *tag, const char *text);

#endif /* BFF_TEST_LOG_CAPTURE_H */
