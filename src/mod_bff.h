/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the module's declaration for the glue files (bff_module, the per-module log index) and
 * the handler name of SetHandler bff.
 */
#ifndef MOD_BFF_H
#define MOD_BFF_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

extern module AP_MODULE_DECLARE_DATA bff_module;

/* mod_bff.c declares the module itself (AP_DECLARE_MODULE). */
#if defined(APLOG_USE_MODULE) && !defined(BFF_MODULE_FILE)
APLOG_USE_MODULE(bff);
#endif

#define BFF_HANDLER_NAME "bff"

#endif /* MOD_BFF_H */
