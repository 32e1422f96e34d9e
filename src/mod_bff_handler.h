/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the SetHandler bff endpoints' entry point and the small error answers (JSON for API
 * calls, a page for navigations) that every flow uses.
 */
#ifndef MOD_BFF_HANDLER_H
#define MOD_BFF_HANDLER_H

#include <httpd.h>

/* The endpoints under a `SetHandler bff` Location. */
int bff_handler(request_rec *r);

/* Small error answers: JSON for API calls, a short page for navigations. */
int bff_respond_json_error(request_rec *r, int status, const char *error, const char *message);
int bff_respond_page(request_rec *r, int status, const char *title, const char *message);

#endif /* MOD_BFF_HANDLER_H */
