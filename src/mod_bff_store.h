/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: attaching a session store and a key ring to each virtual host, from pre_config to
 * child_init.
 */
#ifndef MOD_BFF_STORE_H
#define MOD_BFF_STORE_H

#include <httpd.h>

#include "mod_bff_config.h"
#include "bff_metrics.h"

/* Register the global mutex type (pre_config). */
apr_status_t bff_glue_store_pre_config(apr_pool_t *pconf);

/* Start of each configuration generation (post_config). */
void bff_glue_store_post_config(apr_pool_t *pconf);

/* Attach a store and a keyring to sc (post_config, real run only). Stores
 * and the random fallback key live in httpd's retained data, so sessions
 * survive a graceful restart. */
struct bff_site_t;
apr_status_t bff_glue_store_setup(apr_pool_t *pconf, server_rec *s, struct bff_site_t *site);

/* The stores of this generation as the status page shows them (shm
 * statistics read now, under the store's lock), in p. */
void bff_glue_store_views(apr_pool_t *p, bff_metrics_store_view_t **views, int *n);

/* After the sites are built: the watchdog that tends the journals of this
 * generation's memcache stores with replicas (bff_store_memcache_tend). */
apr_status_t bff_glue_store_watchdog(apr_pool_t *pconf, server_rec *s);

/* Re-attach mutexes in each child. */
void bff_glue_store_child_init(apr_pool_t *pchild, server_rec *s);

#endif /* MOD_BFF_STORE_H */
