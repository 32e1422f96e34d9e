/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the per-child cache of the provider's discovery metadata and JWKS, handed to requests
 * as immutable views. The cache itself is the core's (bff_provider.h); this binds it to a
 * server, a child and a request.
 */
#ifndef MOD_BFF_PROVIDER_H
#define MOD_BFF_PROVIDER_H

#include <httpd.h>

#include "bff_http.h"
#include "bff_jose.h"
#include "bff_oidc.h"
#include "bff_provider.h"

/* The provider's metadata and keys, fetched lazily and cached per child
 * process: parsed once, shared read-only by all threads through immutable
 * snapshots that a request holds until its pool is cleaned up. */
typedef struct bff_provider_t bff_provider_t;

/* Every call to the provider (discovery, JWKS, token, revocation) ends
 * within this many seconds, connecting included, by default
 * (BFFProviderTimeout changes it; bff_provider_lock_ttl). */
#define BFF_PROVIDER_HTTP_TIMEOUT_S BFF_PCACHE_HTTP_TIMEOUT_S

/* The metadata and keys of one snapshot. */
typedef bff_pcache_view_t bff_provider_view_t;

bff_provider_t *bff_provider_create(apr_pool_t *pconf, server_rec *s, const char *issuer,
                                    const char *ca_file);
/* Discovery from this URL (BFFProviderMetadataURL) instead of the
 * issuer's well-known one; before the first request. */
void bff_provider_set_metadata_url(bff_provider_t *prov, const char *url);
/* BFFProviderTimeout: connect and whole-call timeouts in milliseconds;
 * before the first request. */
void bff_provider_set_timeouts(bff_provider_t *prov, long connect_ms, long total_ms);
/* Seconds a lock held across provider calls must live (the refresh and
 * the client token lock): 6 times the whole-call timeout (4 calls of the
 * worst path and a margin, mod_bff_refresh.c), never less than with the
 * default timeout: only a crashed holder ever waits it out. */
apr_int64_t bff_provider_lock_ttl(const bff_provider_t *prov);
void bff_provider_child_init(bff_provider_t *prov, apr_pool_t *pchild);
const bff_http_opts_t *bff_provider_http(const bff_provider_t *prov);

/* A view valid for the life of r->pool. APR_SUCCESS, or the back-channel
 * error (APR_TIMEUP for a timeout) after logging why. */
apr_status_t bff_provider_get(bff_provider_t *prov, request_rec *r, bff_provider_view_t *view);

/* The ID token names a kid we don't know: fetch the JWKS again (at most
 * once per 10 s per child, one fetch at a time, outside the cache mutex:
 * other requests keep the current keys meanwhile) and give a fresh view.
 * APR_EAGAIN (with the current view) when a refetch is running or was
 * just done. */
apr_status_t bff_provider_refresh_jwks(bff_provider_t *prov, request_rec *r,
                                       bff_provider_view_t *view);

/* The same for a signed-in user's own request (the callback, a refresh):
 * when another thread's refetch is running, wait for it (at most the HTTP
 * timeout) instead of answering EAGAIN at once, so a provider's key
 * rotation never fails a login or ends a session. APR_SUCCESS: *view holds
 * keys fetched after the caller's; try the token again with them. Anonymous
 * requests (back-channel logout) use bff_provider_refresh_jwks(). */
apr_status_t bff_provider_refresh_jwks_wait(bff_provider_t *prov, request_rec *r,
                                            bff_provider_view_t *view);

#endif /* MOD_BFF_PROVIDER_H */
