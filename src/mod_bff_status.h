/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the counters of SetHandler bff-status for the flows (bff_glue_metrics), their block
 * in retained shared memory, and the status handler.
 */
#ifndef MOD_BFF_STATUS_H
#define MOD_BFF_STATUS_H

#include <httpd.h>

#include "bff_metrics.h"

#define BFF_STATUS_HANDLER_NAME "bff-status"

/* The block every child counts into; NULL when it could not be made (the
 * flows then count nothing, the page answers 503). */
bff_metrics_t *bff_glue_metrics(void);

/* post_config (real run): the block from retained data, made once in the
 * parent so that every child shares it and a graceful restart keeps it. */
void bff_glue_status_post_config(server_rec *s);

/* The handler of SetHandler bff-status. */
int bff_status_handler(request_rec *r);

#endif /* MOD_BFF_STATUS_H */
