/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: sessions as a request sees them: the request and keep-alive connection caches, finding
 * a record across the key ring, saving with store-key migration, the idle slide, store locks
 * with owner tokens, and the sid/sub indexes.
 */
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_request.h>

#include "mod_bff.h"
#include "mod_bff_session.h"
#include "bff_cookie.h"
#include "bff_ns.h"
#include "bff_util.h"

/* The idle timeout slides in steps: a session's record is rewritten when
 * its last write is a tenth of the idle timeout old (at least 1 s, at most
 * TOUCH_MAX). With whole-second times, a session used last at u then ends
 * in (u + idle - step, u + idle]: up to one step early, never late. */
#define TOUCH_MAX 60
/* Locks held for a few store operations (the idle slide, an index update):
 * far longer than those take, even at the memcache timeouts. */
#define LOCK_TTL 30

typedef struct {
    int loaded;
    apr_status_t rv;
    bff_req_session_t *rs;
    apr_table_t *locks; /* store locks this request holds: lock key -> owner */
} req_cache_t;

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

int bff_glue_store_fail_level(void)
{
    static volatile apr_int64_t last;
    apr_int64_t now = bff_util_now();

    /* Racy on purpose: at worst two threads both log at error. */
    if (now - last >= 10) {
        last = now;
        return APLOG_ERR;
    }
    return APLOG_DEBUG;
}

static apr_int64_t store_expiry(const bff_site_t *site, const bff_session_t *s)
{
    apr_int64_t idle_end = s->last_access + site->idle_timeout;
    return idle_end < s->expires ? idle_end : s->expires;
}

/* What the last relayed request on this connection found: its session id,
 * store key and record, and that record opened. A browser sends many
 * requests on one connection with the same cookie; each still reads the
 * store (a logout or refresh elsewhere must show at once), but when the
 * record is byte for byte the one already authenticated and decoded here,
 * under the same store key (its AAD) and key ring, decrypting it again
 * would give the same session. One entry, in a subpool cleared on every
 * change, so memory stays bounded whatever the client sends; only for the
 * virtual host that filled it. */
typedef struct {
    apr_pool_t *pool;
    const bff_site_t *site; /* its virtual host: key ring, store */
    const char *id;
    const char *handle;
    const char *key;
    int store_key_index;
    unsigned char *rec;
    apr_size_t len;
    bff_session_t *s;
    int key_index;
} conn_cache_t;

static conn_cache_t *conn_cache(request_rec *r)
{
    conn_rec *c = r->connection;
    conn_cache_t *cc = ap_get_module_config(c->conn_config, &bff_module);

    if (!cc) {
        cc = apr_pcalloc(c->pool, sizeof(*cc));
        if (apr_pool_create(&cc->pool, c->pool) != APR_SUCCESS) {
            return NULL;
        }
        ap_set_module_config(c->conn_config, &bff_module, cc);
    }
    return cc;
}

/* The store key of a session (by its handle) under ring entry i. */
static const char *session_key(apr_pool_t *p, const bff_site_t *site, int i, const char *handle)
{
    return bff_ns_key(p, site->keyring, BFF_NS_SESSION, i, site->binding, handle);
}

/* Find the record of rs->id: under the store key this connection used last
 * for the same id, else under each key of the ring (after a rotation,
 * sessions written under an older key are found under that key's store key;
 * they move on their next write). */
static apr_status_t find_record(request_rec *r, bff_site_t *site, const conn_cache_t *cc,
                                bff_req_session_t *rs, unsigned char **rec, apr_size_t *len)
{
    int i, n = bff_ns_key_count(BFF_NS_SESSION, site->keyring), tried = -1;
    apr_status_t rv;

    if (cc && cc->site == site && cc->id && bff_util_ct_streq(cc->id, rs->id)) {
        rs->key = apr_pstrdup(r->pool, cc->key);
        rs->store_key_index = tried = cc->store_key_index;
        rv = bff_store_get(site->store, r->pool, rs->key, rec, len);
        if (rv != APR_NOTFOUND) {
            return rv;
        }
    }
    for (i = 0, rv = APR_NOTFOUND; i < n && rv == APR_NOTFOUND; ++i) {
        if (i == tried) {
            continue;
        }
        rs->key = session_key(r->pool, site, i, rs->handle);
        rs->store_key_index = i;
        rv = bff_store_get(site->store, r->pool, rs->key, rec, len);
    }
    return rv;
}

static apr_status_t open_record(request_rec *r, bff_site_t *site, conn_cache_t *cc,
                                bff_req_session_t *rs, const unsigned char *rec, apr_size_t len)
{
    apr_status_t rv;

    if (cc && cc->site == site && cc->s && cc->len == len
        && cc->store_key_index == rs->store_key_index && !strcmp(cc->key, rs->key)
        && !memcmp(cc->rec, rec, len)) {
        /* A copy: callers may change fields; the strings are never written. */
        rs->s = apr_pmemdup(r->pool, cc->s, sizeof(*cc->s));
        rs->key_index = cc->key_index;
        return APR_SUCCESS;
    }
    if (!cc) {
        return bff_session_open(r->pool, site->keyring, rs->key, rec, len, &rs->s, &rs->key_index);
    }
    apr_pool_clear(cc->pool);
    memset(&cc->site, 0, sizeof(*cc) - APR_OFFSETOF(conn_cache_t, site));
    rv = bff_session_open(cc->pool, site->keyring, rs->key, rec, len, &cc->s, &cc->key_index);
    if (rv != APR_SUCCESS) {
        cc->s = NULL;
        return rv;
    }
    cc->site = site;
    cc->id = apr_pstrdup(cc->pool, rs->id);
    cc->handle = apr_pstrdup(cc->pool, rs->handle);
    cc->key = apr_pstrdup(cc->pool, rs->key);
    cc->store_key_index = rs->store_key_index;
    cc->rec = apr_pmemdup(cc->pool, rec, len);
    cc->len = len;
    rs->s = apr_pmemdup(r->pool, cc->s, sizeof(*cc->s));
    rs->key_index = cc->key_index;
    return APR_SUCCESS;
}

static apr_status_t load_uncached(request_rec *r, bff_site_t *site, bff_req_session_t **out)
{
    const char *hdr = apr_table_get(r->headers_in, "Cookie");
    conn_cache_t *cc;
    const char *id;
    bff_req_session_t *rs;
    unsigned char *rec;
    apr_size_t len;
    apr_int64_t now;
    apr_status_t rv;

    id = hdr ? bff_cookie_get(r->pool, hdr, site->cookie_name) : NULL;
    if (!id) {
        return APR_NOTFOUND;
    }
    if (!bff_session_id_ok(id)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF01301: malformed session cookie "
                      "ignored");
        return APR_NOTFOUND;
    }
    rs = apr_pcalloc(r->pool, sizeof(*rs));
    rs->id = id;
    cc = conn_cache(r); /* only connections that carry a session cookie */
    /* The handle is a hash of the id: the connection's last one serves
     * while the browser sends the same cookie (no hash per request). */
    if (cc && cc->site == site && cc->id && cc->handle && bff_util_ct_streq(cc->id, id)) {
        rs->handle = apr_pstrdup(r->pool, cc->handle);
    }
    else if (!(rs->handle = bff_ns_handle(r->pool, site->binding, id))) {
        return APR_ENOMEM;
    }
    rv = find_record(r, site, cc, rs, &rec, &len);
    if (rv == APR_NOTFOUND) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BFF01302: session cookie names no "
                      "live session (expired, logged out or never issued)");
        return APR_NOTFOUND;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, bff_glue_store_fail_level(), rv, r,
                      "BFF01303: session "
                      "store (%s) unavailable",
                      site->store->name);
        return rv;
    }
    rv = open_record(r, site, cc, rs, rec, len);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r,
                      "BFF01304: session record failed "
                      "authentication or decoding; treated as no session");
        return APR_NOTFOUND;
    }
    now = bff_util_now();
    if (now >= rs->s->expires || now >= rs->s->last_access + site->idle_timeout) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "BFF01305: session expired (%s)",
                      now >= rs->s->expires ? "maximum lifetime" : "idle timeout");
        bff_store_remove(site->store, r->pool, rs->key);
        return APR_NOTFOUND;
    }
    if (!rs->s->iss || strcmp(rs->s->iss, site->issuer)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BFF01306: session belongs to "
                      "another provider; treated as no session");
        return APR_NOTFOUND;
    }
    *out = rs;
    return APR_SUCCESS;
}

apr_status_t bff_glue_session_load(request_rec *r, bff_site_t *site, bff_req_session_t **out)
{
    req_cache_t *c = req_cache(r);

    if (!c->loaded) {
        /* Against the main request, whose pool holds the cache: a
         * subrequest that loads first may end (and free its pool) before
         * the requests that reuse the view. */
        c->rv = load_uncached(main_req(r), site, &c->rs);
        c->loaded = 1;
    }
    *out = c->rs;
    return c->rv;
}

/* Write the sealed record of an existing session: never creates one, so a
 * logout that removed the record while this request worked on it (a token
 * refresh, the idle slide) wins, on any node. Under the current store key a
 * replace; when the record moves there from an older key's store key (after
 * a key rotation), add there, then remove the old one. If the old one was
 * already gone, a logout (or the expiry) ended the session meanwhile: remove
 * the new one too. bff_glue_session_remove() removes the older store keys
 * before the current one, so whichever of the two comes second sees the
 * other's removal. APR_NOTFOUND: the session is gone; APR_EEXIST: another
 * writer moved it first (this request's view is stale; nothing written). */
static apr_status_t store_update(request_rec *r, bff_site_t *site, const char *key,
                                 const char *old_key, const unsigned char *rec, apr_size_t len,
                                 apr_int64_t expires)
{
    apr_status_t rv;

    if (!old_key) {
        return bff_store_replace(site->store, r->pool, key, rec, len, expires);
    }
    if (APR_SUCCESS != (rv = bff_store_add(site->store, r->pool, key, rec, len, expires))) {
        return rv;
    }
    rv = bff_store_remove(site->store, r->pool, old_key);
    if (rv == APR_NOTFOUND) {
        bff_store_remove(site->store, r->pool, key);
        return APR_NOTFOUND;
    }
    /* Another failure leaves a stale copy under the old store key that ends
     * with its TTL; lookups try the current store key first. */
    return APR_SUCCESS;
}

apr_status_t bff_glue_session_save(request_rec *r, bff_site_t *site, bff_req_session_t *rs,
                                   int create)
{
    unsigned char *rec;
    apr_size_t len;
    apr_status_t rv;
    const char *old_key = NULL;

    /* rs is cached in the main request (see bff_glue_session_load):
     * what it points to must live as long. */
    r = main_req(r);

    rs->s->rev++;
    if (!rs->handle && !(rs->handle = bff_ns_handle(r->pool, site->binding, rs->id))) {
        return APR_ENOMEM;
    }
    /* Written under the first key of the ring; the handle, which the
     * indexes hold, stays the same. */
    if (rs->store_key_index != 0 || !rs->key) {
        old_key = rs->key;
        rs->key = session_key(r->pool, site, 0, rs->handle);
        rs->store_key_index = 0;
    }
    rs->key_index = 0;
    rv = bff_session_seal(r->pool, site->keyring, rs->key, rs->s, &rec, &len);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "BFF01307: cannot encode the session");
        return rv;
    }
    rv = create ? bff_store_add(site->store, r->pool, rs->key, rec, len, store_expiry(site, rs->s))
                : store_update(r, site, rs->key, old_key, rec, len, store_expiry(site, rs->s));
    if (rv == APR_ENOSPC) {
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
    else if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "BFF01309: cannot write the session to "
                      "the store (%s)",
                      site->store->name);
    }
    return rv;
}

/* How old the last write may get before a use slides the idle timeout. */
static apr_int64_t touch_interval(const bff_site_t *site)
{
    apr_int64_t t = site->idle_timeout / 10;

    return t < 1 ? 1 : t > TOUCH_MAX ? TOUCH_MAX : t;
}

apr_status_t bff_glue_session_touch(request_rec *r, bff_site_t *site, bff_req_session_t *rs)
{
    apr_int64_t now = bff_util_now();
    const char *key = rs->handle; /* locks are per session, whatever the ring */
    bff_session_t *fresh;
    apr_status_t rv;

    if (now - rs->s->last_access < touch_interval(site) && rs->key_index == 0
        && rs->store_key_index == 0) {
        return APR_SUCCESS;
    }
    /* Whoever holds the lock is writing this session anyway. */
    if (APR_SUCCESS != bff_glue_lock(r, site, key, LOCK_TTL)) {
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

/* key: a session handle or an index key, both already bound to the site. */
static const char *lock_key(request_rec *r, bff_site_t *site, const char *key)
{
    return bff_ns_key(r->pool, site->keyring, BFF_NS_LOCK, 0, site->binding, key);
}

apr_status_t bff_glue_lock(request_rec *r, bff_site_t *site, const char *key, apr_int64_t ttl)
{
    req_cache_t *c = req_cache(r);
    const char *lk = lock_key(r, site, key);
    const char *owner;
    apr_status_t rv;

    rv = bff_store_lock(site->store, r->pool, lk, ttl, &owner);
    if (rv == APR_SUCCESS) {
        /* The owner token stays with the request: only it may unlock. */
        if (!c->locks) {
            c->locks = apr_table_make(main_req(r)->pool, 2);
        }
        apr_table_set(c->locks, lk, owner);
    }
    return rv;
}

void bff_glue_unlock(request_rec *r, bff_site_t *site, const char *key)
{
    req_cache_t *c = req_cache(r);
    const char *lk = lock_key(r, site, key);
    const char *owner = c->locks ? apr_table_get(c->locks, lk) : NULL;

    if (!owner) {
        return; /* not taken by this request: someone else's */
    }
    if (bff_store_unlock(site->store, r->pool, lk, owner) == APR_NOTFOUND) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BFF01382: a store lock was no longer "
                      "this request's (it outlived its TTL); left in place");
    }
    apr_table_unset(c->locks, lk);
}

apr_status_t bff_glue_session_reload(request_rec *r, bff_site_t *site, bff_req_session_t *rs,
                                     bff_session_t **fresh)
{
    unsigned char *rec;
    apr_size_t len;
    apr_status_t rv;

    /* rs is cached in the main request (see bff_glue_session_load):
     * what it points to must live as long. */
    r = main_req(r);
    /* Under every key of the ring, the current one first: another request
     * (a refresh, the idle slide) may have moved the record after a key
     * rotation since this one found it. */
    rv = find_record(r, site, NULL, rs, &rec, &len);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = bff_session_open(r->pool, site->keyring, rs->key, rec, len, fresh, &rs->key_index);
    return rv == APR_SUCCESS ? APR_SUCCESS : APR_NOTFOUND;
}

void bff_glue_session_forget(request_rec *r)
{
    req_cache_t *c = req_cache(r);

    c->loaded = 1;
    c->rv = APR_NOTFOUND;
    c->rs = NULL;
}

/* ---- back-channel logout indexes ---------------------------------- */

/* An index lists the sessions of one provider sid or sub as lines
 * "<handle> <expires>": handles, not store keys, so a session that moved to
 * the new key of the ring is still found, and never the cookie value.
 * Entries of ended sessions are dropped at every write; INDEX_MAX only
 * keeps a pathological sub (a script logging in thousands of times within
 * one session lifetime) from growing an index without bound: past it the
 * sessions that end first fall out. 1024 lines are about 77 KB. */
#define INDEX_MAX 1024

typedef struct {
    const char *handle;
    apr_int64_t expires;
} index_entry_t;

static bff_ns_e index_ns(bff_index_e kind)
{
    return kind == BFF_INDEX_SID ? BFF_NS_INDEX_SID : BFF_NS_INDEX_SUB;
}

static const char *index_key(request_rec *r, bff_site_t *site, bff_index_e kind, int i,
                             const char *value)
{
    return bff_ns_key(r->pool, site->keyring, index_ns(kind), i, site->binding,
                      apr_pstrcat(r->pool, site->issuer, "\n", value, NULL));
}

static int handle_ok(const char *h)
{
    apr_size_t n;

    for (n = 0; h[n]; ++n) {
        if (bff_util_hex_value((unsigned char)h[n]) < 0) {
            return 0;
        }
    }
    return n == 64;
}

/* Add the entries of one sealed index to list (the same handle once, with
 * the later expiry); malformed lines are skipped. */
static void index_parse(request_rec *r, const char *txt, apr_array_header_t *list)
{
    char *copy = apr_pstrdup(r->pool, txt), *line, *last, *sp, *end;
    int i;

    for (line = apr_strtok(copy, "\n", &last); line; line = apr_strtok(NULL, "\n", &last)) {
        index_entry_t e;
        if (!(sp = strchr(line, ' '))) {
            continue;
        }
        *sp = '\0';
        e.handle = line;
        e.expires = apr_strtoi64(sp + 1, &end, 10);
        if (!handle_ok(e.handle) || *end || end == sp + 1) {
            continue;
        }
        for (i = 0; i < list->nelts; ++i) {
            index_entry_t *o = &APR_ARRAY_IDX(list, i, index_entry_t);
            if (!strcmp(o->handle, e.handle)) {
                o->expires = e.expires > o->expires ? e.expires : o->expires;
                break;
            }
        }
        if (i == list->nelts) {
            APR_ARRAY_PUSH(list, index_entry_t) = e;
        }
    }
}

/* The index as found under every key of the ring (after a rotation it may
 * sit under an older one; during a rolling rotation under both). */
static apr_array_header_t *index_read(request_rec *r, bff_site_t *site, bff_index_e kind,
                                      const char *value)
{
    apr_array_header_t *list = apr_array_make(r->pool, 8, sizeof(index_entry_t));
    int i, n = bff_ns_key_count(index_ns(kind), site->keyring);

    for (i = 0; i < n; ++i) {
        const char *key = index_key(r, site, kind, i, value);
        unsigned char *rec, *pt;
        apr_size_t len, ptlen;

        if (key && APR_SUCCESS == bff_store_get(site->store, r->pool, key, &rec, &len)
            && APR_SUCCESS
                   == bff_crypto_open(r->pool, site->keyring, key, strlen(key), rec, len, &pt,
                                      &ptlen, NULL)) {
            index_parse(r, (const char *)pt, list);
        }
    }
    return list;
}

static int by_expiry(const void *a, const void *b)
{
    apr_int64_t x = ((const index_entry_t *)a)->expires, y = ((const index_entry_t *)b)->expires;
    return x < y ? -1 : x > y;
}

void bff_glue_index_add(request_rec *r, bff_site_t *site, bff_index_e kind, const char *value,
                        const char *handle, apr_int64_t expires)
{
    const char *key = index_key(r, site, kind, 0, value);
    apr_int64_t now = bff_util_now(), last = expires;
    apr_array_header_t *list;
    index_entry_t *e;
    unsigned char *rec;
    apr_size_t len, used;
    char *txt;
    int i, start, tries, n = bff_ns_key_count(index_ns(kind), site->keyring);

    if (!key || !handle) {
        return;
    }
    for (tries = 0; APR_SUCCESS != bff_glue_lock(r, site, key, LOCK_TTL); ++tries) {
        if (tries >= 50) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "BFF01310: logout index busy; "
                          "this session will not be found by a back-channel logout");
            return;
        }
        apr_sleep(apr_time_from_msec(20));
    }
    list = index_read(r, site, kind, value);
    e = &APR_ARRAY_PUSH(list, index_entry_t);
    e->handle = handle;
    e->expires = expires;
    qsort(list->elts, (size_t)list->nelts, sizeof(index_entry_t), by_expiry);
    /* Sessions past their end are gone from the store: drop them. */
    for (start = 0; start < list->nelts && APR_ARRAY_IDX(list, start, index_entry_t).expires <= now;
         ++start) {
    }
    if (list->nelts - start > INDEX_MAX) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BFF01311: more than %d live sessions "
                      "for one %s; the %d ending first are no longer found by a back-channel "
                      "logout",
                      INDEX_MAX, kind == BFF_INDEX_SID ? "sid" : "sub",
                      list->nelts - start - INDEX_MAX);
        start = list->nelts - INDEX_MAX;
    }
    /* 64 hex digits, a space, at most 20 digits and sign, a newline. */
    txt = apr_palloc(r->pool, (apr_size_t)(list->nelts - start) * 87 + 1);
    for (i = start, used = 0; i < list->nelts; ++i) {
        e = &APR_ARRAY_IDX(list, i, index_entry_t);
        used += apr_snprintf(txt + used, 88, "%s %" APR_INT64_T_FMT "\n", e->handle, e->expires);
        last = e->expires > last ? e->expires : last;
    }
    txt[used] = '\0';
    if (APR_SUCCESS
            == bff_crypto_seal(r->pool, site->keyring, key, strlen(key), txt, used, &rec, &len)
        && APR_SUCCESS == bff_store_set(site->store, r->pool, key, rec, len, last)) {
        /* Moved to the first key of the ring: the older copies are merged. */
        for (i = 1; i < n; ++i) {
            const char *old = index_key(r, site, kind, i, value);
            if (old) {
                bff_store_remove(site->store, r->pool, old);
            }
        }
    }
    bff_glue_unlock(r, site, key);
}

/* Remove a session under every key of the ring. */
static apr_status_t remove_by_handle(request_rec *r, bff_site_t *site, const char *handle)
{
    int i, n = bff_ns_key_count(BFF_NS_SESSION, site->keyring);
    apr_status_t rv = APR_NOTFOUND;

    /* Oldest key first: a record that a concurrent write moves to the
     * current store key is then removed there too (see store_update). */
    for (i = n - 1; i >= 0; --i) {
        const char *key = session_key(r->pool, site, i, handle);
        if (key && bff_store_remove(site->store, r->pool, key) == APR_SUCCESS) {
            rv = APR_SUCCESS;
        }
    }
    return rv;
}

int bff_glue_index_end_sessions(request_rec *r, bff_site_t *site, bff_index_e kind,
                                const char *value)
{
    apr_array_header_t *list = index_read(r, site, kind, value);
    int i, n = 0, nkeys = bff_ns_key_count(index_ns(kind), site->keyring);

    for (i = 0; i < list->nelts; ++i) {
        if (remove_by_handle(r, site, APR_ARRAY_IDX(list, i, index_entry_t).handle)
            == APR_SUCCESS) {
            ++n;
        }
    }
    for (i = 0; i < nkeys; ++i) {
        const char *key = index_key(r, site, kind, i, value);
        if (key) {
            bff_store_remove(site->store, r->pool, key);
        }
    }
    return n;
}

apr_status_t bff_glue_session_remove(request_rec *r, bff_site_t *site, const char *id)
{
    const char *handle = bff_ns_handle(r->pool, site->binding, id);

    return handle ? remove_by_handle(r, site, handle) : APR_NOTFOUND;
}
