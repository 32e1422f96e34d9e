/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: a request's view of its session (bff_req_session_t) and the session operations the
 * flows use (load, save, touch, remove, locks, back-channel logout indexes, the login's
 * single-use marker, logout-token replay entries) over the core's sessions service.
 */
#ifndef MOD_BFF_SESSION_H
#define MOD_BFF_SESSION_H

#include <httpd.h>

#include "mod_bff_config.h"
#include "mod_bff_site.h"
#include "bff_session.h"
#include "bff_sessions.h"

/* A session as one request sees it: the sessions service's entry (id,
 * handle, store key, record, the ring entries that keyed and opened it). */
typedef bff_sessions_entry_t bff_req_session_t;

/* Build the site's sessions service (post_config, after the store and the
 * key ring are attached): one per server, shared by its requests. */
void bff_glue_session_setup(apr_pool_t *pconf, bff_site_t *site);

/* Load the session named by the request's cookie: one store read, cached in
 * the request so subrequests and later hooks reuse it. APR_NOTFOUND when
 * there is none (absent, malformed, unknown, expired, tampered: each logged
 * at info/debug with a tag); any other status means the store failed. */
apr_status_t bff_glue_session_load(request_rec *r, bff_site_t *site, bff_req_session_t **out);

/* Write a session with a store TTL that follows its idle and absolute
 * lifetimes. create: a new session (the store's add). Otherwise a replace
 * of the live record, which never recreates a removed one: APR_NOTFOUND
 * when a logout (or the expiry) removed it meanwhile; the session stays
 * ended. */
apr_status_t bff_glue_session_save(request_rec *r, bff_site_t *site, bff_req_session_t *rs,
                                   int create);

/* Slide the idle timeout: write when the last write is a tenth of the idle
 * timeout old (1 s to 1 minute), so a session ends at most that much early. */
apr_status_t bff_glue_session_touch(request_rec *r, bff_site_t *site, bff_req_session_t *rs);

/* Forget a session server-side (store entry removed). */
apr_status_t bff_glue_session_remove(request_rec *r, bff_site_t *site, const char *id);

/* A short-lived lock in the store, taken with add() (atomic in every
 * backend) under "l:<key>", holding a random owner token that the request
 * keeps: bff_glue_unlock() removes only a lock this request took and still
 * owns (not one that outlived its TTL and was taken over). APR_EEXIST while
 * someone holds it. Every write of an existing session happens under its
 * lock, so a writer never overwrites tokens it did not see. */
apr_status_t bff_glue_lock(request_rec *r, bff_site_t *site, const char *key, apr_int64_t ttl);
void bff_glue_unlock(request_rec *r, bff_site_t *site, const char *key);

/* Read the session's record again (bypassing the request cache). */
apr_status_t bff_glue_session_reload(request_rec *r, bff_site_t *site, bff_req_session_t *rs,
                                     bff_session_t **fresh);

/* Drop the request's cached view (after the session was removed). */
void bff_glue_session_forget(request_rec *r);

/* Back-channel logout indexes: the sessions of a provider sid or sub. */
typedef enum {
    BFF_INDEX_SID = BFF_SESSIONS_INDEX_SID,
    BFF_INDEX_SUB = BFF_SESSIONS_INDEX_SUB
} bff_index_e;
/* Add a session (by its handle) ending at expires; entries of sessions
 * already ended are dropped. Read under every key of the ring, written
 * under the first. */
void bff_glue_index_add(request_rec *r, bff_site_t *site, bff_index_e kind, const char *value,
                        const char *handle, apr_int64_t expires);
/* Remove every session listed under the index; returns how many existed. */
int bff_glue_index_end_sessions(request_rec *r, bff_site_t *site, bff_index_e kind,
                                const char *value);

/* The login's single-use marker for state (until expires): APR_EEXIST when
 * the login was used already, APR_ENOSPC when the store has no room
 * without evicting a session, another status when the store failed. *key:
 * the marker's store key, to remove it when the login fails. */
apr_status_t bff_glue_mark_used(request_rec *r, bff_site_t *site, const char *state,
                                apr_int64_t expires, const char **key);

/* Remember a logout token's jti for ttl seconds: APR_EEXIST when it was
 * seen before (a replay), another status when the store failed. */
apr_status_t bff_glue_replay_add(request_rec *r, bff_site_t *site, const char *jti,
                                 apr_int64_t ttl);

#endif /* MOD_BFF_SESSION_H */
