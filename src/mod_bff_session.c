/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: sessions as a request sees them, over the core's sessions service (bff_sessions.c):
 * the request and keep-alive connection caches, lock owner tokens kept by the request, the
 * idle slide, and the log lines (with the request) for what the service reports.
 */
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_request.h>

#include "mod_bff.h"
#include "mod_bff_respond.h"
#include "mod_bff_session.h"
#include "bff_cookie.h"
#include "bff_ns.h"
#include "bff_util.h"

typedef struct {
    int loaded;
    apr_status_t rv;
    bff_req_session_t *rs;
    apr_table_t *locks; /* store locks this request holds: what -> owner */
} req_cache_t;

void bff_glue_session_setup(apr_pool_t *pconf, bff_site_t *site)
{
    bff_sessions_t *sv = apr_pcalloc(pconf, sizeof(*sv));

    sv->store = site->store;
    sv->ring = site->keyring;
    sv->site = site->binding;
    sv->issuer = site->issuer;
    sv->idle_timeout = site->idle_timeout;
    site->sessions = sv;
}

static request_rec *main_req(request_rec *r)
{
    while (r->main) {
        r = r->main;
    }
    while (r->prev) {
        r = r->prev;
    }
    return r;
}

static req_cache_t *req_cache(request_rec *r)
{
    request_rec *m = main_req(r);
    req_cache_t *c = ap_get_module_config(m->request_config, &bff_module);

    if (!c) {
        c = apr_pcalloc(m->pool, sizeof(*c));
        ap_set_module_config(m->request_config, &bff_module, c);
    }
    return c;
}

/* What the last relayed request on this connection found (the service's
 * memo, see bff_sessions.h): a browser sends many requests on one
 * connection with the same cookie; each still reads the store, but the
 * record already authenticated and decoded here is not decrypted again.
 * Only for the virtual host (service) that filled it. */
static bff_sessions_memo_t *conn_memo(request_rec *r)
{
    conn_rec *c = r->connection;
    bff_sessions_memo_t *memo = ap_get_module_config(c->conn_config, &bff_module);

    if (!memo && (memo = bff_sessions_memo_create(c->pool))) {
        ap_set_module_config(c->conn_config, &bff_module, memo);
    }
    return memo;
}

static apr_status_t load_uncached(request_rec *r, bff_site_t *site, bff_req_session_t **out)
{
    const char *hdr = apr_table_get(r->headers_in, "Cookie");
    bff_sessions_miss_e why;
    const char *id;
    apr_status_t rv;

    id = hdr ? bff_cookie_get(r->pool, hdr, site->cookie_name) : NULL;
    if (!id) {
        return APR_NOTFOUND;
    }
    /* One line per store read: tests count them (subrequests and internal
     * redirects must reuse the request cache, not read again). */
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                  "BFF01390: reading the session for %s from the store (%s)",
                  ap_escape_logitem(r->pool, r->uri), site->store->name);
    /* The connection's memo only for connections that carry a session cookie. */
    rv = bff_sessions_find(site->sessions, r->pool, id, bff_session_id_ok(id) ? conn_memo(r) : NULL,
                           out, &why);
    switch (why) {
    case BFF_SESSIONS_FOUND:
    case BFF_SESSIONS_NO_MEMORY:
        break;
    case BFF_SESSIONS_MALFORMED:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF01301: malformed session cookie "
                      "ignored");
        break;
    case BFF_SESSIONS_NO_RECORD:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF01302: session cookie names no "
                      "live session (expired, logged out or never issued)");
        break;
    case BFF_SESSIONS_STORE_DOWN:
        BFF_RLOG_AT(bff_respond_level(BFF_OUTCOME_STORE_DOWN), rv, r,
                    "BFF01303: session "
                    "store (%s) unavailable",
                    site->store->name);
        break;
    case BFF_SESSIONS_UNREADABLE:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BFF01304: session record failed "
                      "authentication or decoding; treated as no session");
        break;
    case BFF_SESSIONS_EXPIRED_IDLE:
    case BFF_SESSIONS_EXPIRED_MAX:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "BFF01305: session expired (%s)",
                      why == BFF_SESSIONS_EXPIRED_MAX ? "maximum lifetime" : "idle timeout");
        break;
    case BFF_SESSIONS_OTHER_ISSUER:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BFF01306: session belongs to "
                      "another provider; treated as no session");
        break;
    }
    return rv;
}

apr_status_t bff_glue_session_load(request_rec *r, bff_site_t *site, bff_req_session_t **out)
{
    req_cache_t *c = req_cache(r);

    if (!c->loaded) {
        /* Against the main request, whose pool holds the cache: a
         * subrequest that loads first may end (and free its pool) before
         * the requests that reuse the view. */
        c->rs = NULL;
        c->rv = load_uncached(main_req(r), site, &c->rs);
        c->loaded = 1;
    }
    *out = c->rs;
    return c->rv;
}

apr_status_t bff_glue_session_save(request_rec *r, bff_site_t *site, bff_req_session_t *rs,
                                   int create)
{
    apr_size_t len;
    apr_status_t rv;

    /* rs is cached in the main request (see bff_glue_session_load):
     * what it points to must live as long. */
    r = main_req(r);
    rv = bff_sessions_save(site->sessions, r->pool, rs, create, &len);
    if (rv == APR_SUCCESS || !rs->handle) {
        return rv; /* no handle: out of memory, as before without a line */
    }
    if (len == 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "BFF01307: cannot encode the session");
    }
    else if (rv == APR_ENOSPC) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "BFF01308: session record of %" APR_SIZE_T_FMT
                      " bytes is too large for the session store",
                      len);
    }
    else if (rv == APR_NOTFOUND && !create) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF01380: the session ended (logout or "
                      "expiry) while this request was updating it; it stays ended");
    }
    else if (rv == APR_EEXIST && !create) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF01381: the session was moved to the "
                      "current key by another request; this update is dropped");
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "BFF01309: cannot write the session to "
                      "the store (%s)",
                      site->store->name);
    }
    return rv;
}

apr_status_t bff_glue_session_touch(request_rec *r, bff_site_t *site, bff_req_session_t *rs)
{
    apr_int64_t now = bff_sessions_now(site->sessions);
    const char *key = rs->handle; /* locks are per session, whatever the ring */
    bff_session_t *fresh;
    apr_status_t rv;

    if (!bff_sessions_touch_due(site->sessions, rs, now)) {
        return APR_SUCCESS;
    }
    /* Whoever holds the lock is writing this session anyway. */
    if (APR_SUCCESS != bff_glue_lock(r, site, key, BFF_SESSIONS_LOCK_TTL)) {
        return APR_SUCCESS;
    }
    rv = bff_glue_session_reload(r, site, rs, &fresh);
    if (rv == APR_SUCCESS) {
        rs->s = fresh;
        rs->s->last_access = now;
        rv = bff_glue_session_save(r, site, rs, 0);
    }
    bff_glue_unlock(r, site, key);
    /* A logout (or the expiry) that came first wins: this request must not
     * go on with the session it loaded before. */
    if (rv == APR_NOTFOUND) {
        bff_glue_session_forget(r);
        return APR_NOTFOUND;
    }
    return APR_SUCCESS;
}

apr_status_t bff_glue_lock(request_rec *r, bff_site_t *site, const char *key, apr_int64_t ttl)
{
    req_cache_t *c = req_cache(r);
    const char *owner;
    apr_status_t rv;

    rv = bff_sessions_lock(site->sessions, r->pool, key, ttl, &owner);
    if (rv == APR_SUCCESS) {
        /* The owner token stays with the request: only it may unlock. */
        if (!c->locks) {
            c->locks = apr_table_make(main_req(r)->pool, 2);
        }
        apr_table_set(c->locks, key, owner);
    }
    return rv;
}

void bff_glue_unlock(request_rec *r, bff_site_t *site, const char *key)
{
    req_cache_t *c = req_cache(r);
    const char *owner = c->locks ? apr_table_get(c->locks, key) : NULL;

    if (!owner) {
        return; /* not taken by this request: someone else's */
    }
    if (bff_sessions_unlock(site->sessions, r->pool, key, owner) == APR_NOTFOUND) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BFF01382: a store lock was no longer "
                      "this request's (it outlived its TTL); left in place");
    }
    apr_table_unset(c->locks, key);
}

apr_status_t bff_glue_session_reload(request_rec *r, bff_site_t *site, bff_req_session_t *rs,
                                     bff_session_t **fresh)
{
    /* rs is cached in the main request (see bff_glue_session_load):
     * what it points to must live as long. */
    return bff_sessions_reload(site->sessions, main_req(r)->pool, rs, fresh);
}

void bff_glue_session_forget(request_rec *r)
{
    req_cache_t *c = req_cache(r);

    c->loaded = 1;
    c->rv = APR_NOTFOUND;
    c->rs = NULL;
}

void bff_glue_index_add(request_rec *r, bff_site_t *site, bff_index_e kind, const char *value,
                        const char *handle, apr_int64_t expires)
{
    int dropped = 0;
    apr_status_t rv = bff_sessions_index_add(site->sessions, r->pool, (bff_sessions_index_e)kind,
                                             value, handle, expires, &dropped);

    if (rv == APR_EEXIST) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BFF01310: logout index busy; "
                      "this session will not be found by a back-channel logout");
        return;
    }
    if (dropped > 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BFF01311: more than %d live sessions "
                      "for one %s; the %d ending first are no longer found by a back-channel "
                      "logout",
                      BFF_SESSIONS_INDEX_MAX, kind == BFF_INDEX_SID ? "sid" : "sub", dropped);
    }
}

int bff_glue_index_end_sessions(request_rec *r, bff_site_t *site, bff_index_e kind,
                                const char *value)
{
    return bff_sessions_index_end(site->sessions, r->pool, (bff_sessions_index_e)kind, value);
}

apr_status_t bff_glue_session_remove(request_rec *r, bff_site_t *site, const char *id)
{
    const char *handle = bff_ns_handle(r->pool, site->binding, id);

    return handle ? bff_sessions_remove(site->sessions, r->pool, handle) : APR_NOTFOUND;
}

apr_status_t bff_glue_mark_used(request_rec *r, bff_site_t *site, const char *state,
                                apr_int64_t expires, const char **key)
{
    return bff_sessions_mark_used(site->sessions, r->pool, state, expires, key);
}

apr_status_t bff_glue_replay_add(request_rec *r, bff_site_t *site, const char *jti, apr_int64_t ttl)
{
    return bff_sessions_replay_add(site->sessions, r->pool, jti, ttl);
}
