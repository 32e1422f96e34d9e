/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: a request's view of its session (bff_req_session_t) and the session operations the
 * flows use: load, save, touch, remove, locks and back-channel logout indexes.
 */
#ifndef MOD_BFF_SESSION_H
#define MOD_BFF_SESSION_H

#include <httpd.h>

#include "mod_bff_config.h"
#include "mod_bff_site.h"
#include "bff_session.h"

/* A session as one request sees it. */
typedef struct {
    const char *id;     /* the cookie value; never logged */
    const char *handle; /* bff_ns_handle(): names it in indexes, locks, markers */
    const char *key;    /* the store key derived from it */
    bff_session_t *s;
    int key_index;       /* keyring entry that opened it (0 = current) */
    int store_key_index; /* keyring entry the store key was derived with */
} bff_req_session_t;

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

/* Log level for "store unavailable": error at most once per 10 s per child,
 * debug otherwise, so an outage does not flood the log (the store backend
 * already names the server that is down). */
int bff_glue_store_fail_level(void);

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
typedef enum { BFF_INDEX_SID = 0, BFF_INDEX_SUB = 1 } bff_index_e;
/* Add a session (by its handle) ending at expires; entries of sessions
 * already ended are dropped. Read under every key of the ring, written
 * under the first. */
void bff_glue_index_add(request_rec *r, bff_site_t *site, bff_index_e kind, const char *value,
                        const char *handle, apr_int64_t expires);
/* Remove every session listed under the index; returns how many existed. */
int bff_glue_index_end_sessions(request_rec *r, bff_site_t *site, bff_index_e kind,
                                const char *value);

#endif /* MOD_BFF_SESSION_H */
