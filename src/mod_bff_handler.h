/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the SetHandler bff endpoints' entry point.
 */
#ifndef MOD_BFF_HANDLER_H
#define MOD_BFF_HANDLER_H

#include <httpd.h>

/* The endpoints under a `SetHandler bff` Location. */
int bff_handler(request_rec *r);

#endif /* MOD_BFF_HANDLER_H */
