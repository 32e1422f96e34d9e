/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the sessions service (see bff_sessions.h): records across the key ring, saving with
 * store-key migration, removal, locks, the sid/sub indexes, the u: and j: markers.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "bff_ns.h"
#include "bff_sessions.h"
#include "bff_util.h"

/* The index lock: tries * pause, about a second in all. */
#define INDEX_LOCK_TRIES 50
#define INDEX_LOCK_PAUSE_MS 20

apr_int64_t bff_sessions_now(const bff_sessions_t *sv)
{
    return sv->clock ? sv->clock->now(sv->clock->baton) : bff_util_now();
}

static void pause_ms(const bff_sessions_t *sv, int ms)
{
    if (sv->clock) {
        sv->clock->sleep(sv->clock->baton, apr_time_from_msec(ms));
    }
    else {
        apr_sleep(apr_time_from_msec(ms));
    }
}

/* The store key of a session (by its handle) under ring entry i. */
static const char *session_key(apr_pool_t *p, const bff_sessions_t *sv, int i, const char *handle)
{
    return bff_ns_key(p, sv->ring, BFF_NS_SESSION, i, sv->site, handle);
}

/* ---- finding a record ------------------------------------------------ */

struct bff_sessions_memo_t {
    apr_pool_t *pool;
    struct {
        const bff_sessions_t *sv; /* the site that filled it: ring, store */
        const char *id;
        const char *handle;
        const char *key;
        int store_key_index;
        unsigned char *rec;
        apr_size_t len;
        bff_session_t *s;
        int key_index;
    } m;
};

bff_sessions_memo_t *bff_sessions_memo_create(apr_pool_t *p)
{
    bff_sessions_memo_t *memo = apr_pcalloc(p, sizeof(*memo));

    if (apr_pool_create(&memo->pool, p) != APR_SUCCESS) {
        return NULL;
    }
    return memo;
}

/* The memo speaks for id on this site. Constant time: the id is the
 * cookie value. */
static int memo_for(const bff_sessions_memo_t *memo, const bff_sessions_t *sv, const char *id)
{
    return memo && memo->m.sv == sv && memo->m.id && bff_util_ct_streq(memo->m.id, id);
}

/* Read e's record: under the store key the memo used last for the same id,
 * else under each key of the ring (after a rotation, sessions written under
 * an older key are found under that key's store key; they move on their
 * next write). */
static apr_status_t read_record(const bff_sessions_t *sv, apr_pool_t *p,
                                const bff_sessions_memo_t *memo, bff_sessions_entry_t *e,
                                unsigned char **rec, apr_size_t *len)
{
    int i, n = bff_ns_key_count(BFF_NS_SESSION, sv->ring), tried = -1;
    apr_status_t rv;

    if (memo_for(memo, sv, e->id)) {
        e->key = apr_pstrdup(p, memo->m.key);
        e->store_key_index = tried = memo->m.store_key_index;
        rv = bff_store_get(sv->store, p, e->key, rec, len);
        if (rv != APR_NOTFOUND) {
            return rv;
        }
    }
    for (i = 0, rv = APR_NOTFOUND; i < n && rv == APR_NOTFOUND; ++i) {
        if (i == tried) {
            continue;
        }
        e->key = session_key(p, sv, i, e->handle);
        e->store_key_index = i;
        rv = bff_store_get(sv->store, p, e->key, rec, len);
    }
    return rv;
}

/* Open e's record with the ring and its store key as AAD (a record copied
 * under another key does not open), or take the memo's session when the
 * bytes are the ones it authenticated under the same store key. */
static apr_status_t open_record(const bff_sessions_t *sv, apr_pool_t *p, bff_sessions_memo_t *memo,
                                bff_sessions_entry_t *e, const unsigned char *rec, apr_size_t len)
{
    apr_status_t rv;

    if (memo && memo->m.sv == sv && memo->m.s && memo->m.len == len
        && memo->m.store_key_index == e->store_key_index && !strcmp(memo->m.key, e->key)
        && !memcmp(memo->m.rec, rec, len)) {
        /* A copy: callers may change fields; the strings are never written. */
        e->s = apr_pmemdup(p, memo->m.s, sizeof(*memo->m.s));
        e->key_index = memo->m.key_index;
        return APR_SUCCESS;
    }
    if (!memo) {
        return bff_session_open(p, sv->ring, e->key, rec, len, &e->s, &e->key_index);
    }
    apr_pool_clear(memo->pool);
    memset(&memo->m, 0, sizeof(memo->m));
    rv = bff_session_open(memo->pool, sv->ring, e->key, rec, len, &memo->m.s, &memo->m.key_index);
    if (rv != APR_SUCCESS) {
        memo->m.s = NULL;
        return rv;
    }
    memo->m.sv = sv;
    memo->m.id = apr_pstrdup(memo->pool, e->id);
    memo->m.handle = apr_pstrdup(memo->pool, e->handle);
    memo->m.key = apr_pstrdup(memo->pool, e->key);
    memo->m.store_key_index = e->store_key_index;
    memo->m.rec = apr_pmemdup(memo->pool, rec, len);
    memo->m.len = len;
    e->s = apr_pmemdup(p, memo->m.s, sizeof(*memo->m.s));
    e->key_index = memo->m.key_index;
    return APR_SUCCESS;
}

apr_status_t bff_sessions_find(const bff_sessions_t *sv, apr_pool_t *p, const char *id,
                               bff_sessions_memo_t *memo, bff_sessions_entry_t **out,
                               bff_sessions_miss_e *why)
{
    bff_sessions_entry_t *e;
    unsigned char *rec;
    apr_size_t len;
    apr_int64_t now;
    apr_status_t rv;

    if (!id || !bff_session_id_ok(id)) {
        *why = BFF_SESSIONS_MALFORMED;
        return APR_NOTFOUND;
    }
    e = apr_pcalloc(p, sizeof(*e));
    e->id = id;
    /* The handle is a hash of the id: the memo's serves while the browser
     * sends the same cookie (no hash per request). */
    if (memo_for(memo, sv, id) && memo->m.handle) {
        e->handle = apr_pstrdup(p, memo->m.handle);
    }
    else if (!(e->handle = bff_ns_handle(p, sv->site, id))) {
        *why = BFF_SESSIONS_NO_MEMORY;
        return APR_ENOMEM;
    }
    rv = read_record(sv, p, memo, e, &rec, &len);
    if (rv != APR_SUCCESS) {
        *why = rv == APR_NOTFOUND ? BFF_SESSIONS_NO_RECORD : BFF_SESSIONS_STORE_DOWN;
        return rv;
    }
    if (open_record(sv, p, memo, e, rec, len) != APR_SUCCESS) {
        *why = BFF_SESSIONS_UNREADABLE;
        return APR_NOTFOUND;
    }
    now = bff_sessions_now(sv);
    if (now >= e->s->expires || now >= e->s->last_access + sv->idle_timeout) {
        *why = now >= e->s->expires ? BFF_SESSIONS_EXPIRED_MAX : BFF_SESSIONS_EXPIRED_IDLE;
        bff_store_remove(sv->store, p, e->key);
        return APR_NOTFOUND;
    }
    if (!e->s->iss || strcmp(e->s->iss, sv->issuer)) {
        *why = BFF_SESSIONS_OTHER_ISSUER;
        return APR_NOTFOUND;
    }
    *why = BFF_SESSIONS_FOUND;
    *out = e;
    return APR_SUCCESS;
}

apr_status_t bff_sessions_reload(const bff_sessions_t *sv, apr_pool_t *p, bff_sessions_entry_t *e,
                                 bff_session_t **fresh)
{
    unsigned char *rec;
    apr_size_t len;
    apr_status_t rv;

    /* Under every key of the ring, the current one first: another request
     * (a refresh, the idle slide) may have moved the record after a key
     * rotation since this one found it. */
    rv = read_record(sv, p, NULL, e, &rec, &len);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = bff_session_open(p, sv->ring, e->key, rec, len, fresh, &e->key_index);
    return rv == APR_SUCCESS ? APR_SUCCESS : APR_NOTFOUND;
}

/* ---- saving ------------------------------------------------------------ */

apr_int64_t bff_sessions_store_expiry(const bff_sessions_t *sv, const bff_session_t *s)
{
    apr_int64_t idle_end = s->last_access + sv->idle_timeout;

    return idle_end < s->expires ? idle_end : s->expires;
}

/* Write the sealed record of an existing session: never creates one, so a
 * logout that removed the record while this request worked on it (a token
 * refresh, the idle slide) wins, on any node. Under the current store key a
 * replace; when the record moves there from an older key's store key (after
 * a key rotation), add there, then remove the old one. If the old one was
 * already gone, a logout (or the expiry) ended the session meanwhile: remove
 * the new one too. bff_sessions_remove() removes the older store keys
 * before the current one, so whichever of the two comes second sees the
 * other's removal. APR_NOTFOUND: the session is gone; APR_EEXIST: another
 * writer moved it first (this request's view is stale; nothing written). */
static apr_status_t store_update(const bff_sessions_t *sv, apr_pool_t *p, const char *key,
                                 const char *old_key, const unsigned char *rec, apr_size_t len,
                                 apr_int64_t expires)
{
    apr_status_t rv;

    if (!old_key) {
        return bff_store_replace(sv->store, p, key, rec, len, expires);
    }
    if (APR_SUCCESS != (rv = bff_store_add(sv->store, p, key, rec, len, expires))) {
        return rv;
    }
    rv = bff_store_remove(sv->store, p, old_key);
    if (rv == APR_NOTFOUND) {
        bff_store_remove(sv->store, p, key);
        return APR_NOTFOUND;
    }
    /* Another failure leaves a stale copy under the old store key that ends
     * with its TTL; lookups try the current store key first. */
    return APR_SUCCESS;
}

apr_status_t bff_sessions_save(const bff_sessions_t *sv, apr_pool_t *p, bff_sessions_entry_t *e,
                               int create, apr_size_t *len)
{
    unsigned char *rec;
    apr_size_t rlen = 0;
    apr_status_t rv;
    const char *old_key = NULL;

    if (len) {
        *len = 0;
    }
    e->s->rev++;
    if (!e->handle && !(e->handle = bff_ns_handle(p, sv->site, e->id))) {
        return APR_ENOMEM;
    }
    /* Written under the first key of the ring; the handle, which the
     * indexes hold, stays the same. */
    if (e->store_key_index != 0 || !e->key) {
        old_key = e->key;
        e->key = session_key(p, sv, 0, e->handle);
        e->store_key_index = 0;
    }
    e->key_index = 0;
    rv = bff_session_seal(p, sv->ring, e->key, e->s, &rec, &rlen);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (len) {
        *len = rlen;
    }
    if (create) {
        return bff_store_add(sv->store, p, e->key, rec, rlen, bff_sessions_store_expiry(sv, e->s));
    }
    return store_update(sv, p, e->key, old_key, rec, rlen, bff_sessions_store_expiry(sv, e->s));
}

int bff_sessions_touch_due(const bff_sessions_t *sv, const bff_sessions_entry_t *e, apr_int64_t now)
{
    /* In steps: with whole-second times, a session used last at u then ends
     * in (u + idle - step, u + idle]: up to one step early, never late. */
    apr_int64_t step = sv->idle_timeout / 10;

    step = step < 1 ? 1 : step > BFF_SESSIONS_TOUCH_MAX ? BFF_SESSIONS_TOUCH_MAX : step;
    return now - e->s->last_access >= step || e->key_index != 0 || e->store_key_index != 0;
}

apr_status_t bff_sessions_remove(const bff_sessions_t *sv, apr_pool_t *p, const char *handle)
{
    int i, n = bff_ns_key_count(BFF_NS_SESSION, sv->ring);
    apr_status_t rv = APR_NOTFOUND;

    if (!handle) {
        return APR_NOTFOUND;
    }
    /* Oldest key first: a record that a concurrent write moves to the
     * current store key is then removed there too (see store_update). */
    for (i = n - 1; i >= 0; --i) {
        const char *key = session_key(p, sv, i, handle);
        if (key && bff_store_remove(sv->store, p, key) == APR_SUCCESS) {
            rv = APR_SUCCESS;
        }
    }
    return rv;
}

/* ---- locks ------------------------------------------------------------- */

/* what: a session handle or an index key, both already bound to the site. */
static const char *lock_key(const bff_sessions_t *sv, apr_pool_t *p, const char *what)
{
    return bff_ns_key(p, sv->ring, BFF_NS_LOCK, 0, sv->site, what);
}

apr_status_t bff_sessions_lock(const bff_sessions_t *sv, apr_pool_t *p, const char *what,
                               apr_int64_t ttl, const char **owner)
{
    const char *lk = lock_key(sv, p, what);

    if (!lk) {
        return APR_EINVAL;
    }
    return bff_store_lock_until(sv->store, p, lk, bff_sessions_now(sv) + ttl, owner);
}

apr_status_t bff_sessions_unlock(const bff_sessions_t *sv, apr_pool_t *p, const char *what,
                                 const char *owner)
{
    const char *lk = lock_key(sv, p, what);

    if (!lk) {
        return APR_NOTFOUND;
    }
    /* Only while the value is still owner's: a lock that outlived its TTL
     * and was taken over is the new owner's to remove. */
    return bff_store_unlock(sv->store, p, lk, owner);
}

/* ---- back-channel logout indexes --------------------------------------- */

/* An index lists the sessions of one provider sid or sub as lines
 * "<handle> <expires>": handles, not store keys, so a session that moved to
 * the new key of the ring is still found, and never the cookie value.
 * Entries of ended sessions are dropped at every write; the cap only keeps
 * a pathological sub (a script logging in thousands of times within one
 * session lifetime) from growing an index without bound: past it the
 * sessions that end first fall out. */
typedef struct {
    const char *handle;
    apr_int64_t expires;
} index_entry_t;

static bff_ns_e index_ns(bff_sessions_index_e kind)
{
    return kind == BFF_SESSIONS_INDEX_SID ? BFF_NS_INDEX_SID : BFF_NS_INDEX_SUB;
}

static const char *index_key(const bff_sessions_t *sv, apr_pool_t *p, bff_sessions_index_e kind,
                             int i, const char *value)
{
    if (!value) {
        return NULL;
    }
    return bff_ns_key(p, sv->ring, index_ns(kind), i, sv->site,
                      apr_pstrcat(p, sv->issuer, "\n", value, NULL));
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

/* Add the entries of one opened index to list (the same handle once, with
 * the later expiry); malformed lines are skipped. */
static void index_parse(apr_pool_t *p, const char *txt, apr_array_header_t *list)
{
    char *copy = apr_pstrdup(p, txt), *line, *last, *sp, *end;
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
static apr_array_header_t *index_read(const bff_sessions_t *sv, apr_pool_t *p,
                                      bff_sessions_index_e kind, const char *value)
{
    apr_array_header_t *list = apr_array_make(p, 8, sizeof(index_entry_t));
    int i, n = bff_ns_key_count(index_ns(kind), sv->ring);

    for (i = 0; i < n; ++i) {
        const char *key = index_key(sv, p, kind, i, value);
        unsigned char *rec, *pt;
        apr_size_t len, ptlen;

        if (key && APR_SUCCESS == bff_store_get(sv->store, p, key, &rec, &len)
            && APR_SUCCESS
                   == bff_crypto_open(p, sv->ring, key, strlen(key), rec, len, &pt, &ptlen, NULL)) {
            index_parse(p, (const char *)pt, list);
        }
    }
    return list;
}

static int by_expiry(const void *a, const void *b)
{
    apr_int64_t x = ((const index_entry_t *)a)->expires, y = ((const index_entry_t *)b)->expires;
    return x < y ? -1 : x > y;
}

/* Write list[start..] sealed under key (ring entry 0) until its latest end,
 * then remove the copies under older ring keys (merged into it). */
static apr_status_t index_write(const bff_sessions_t *sv, apr_pool_t *p, bff_sessions_index_e kind,
                                const char *value, const char *key, apr_array_header_t *list,
                                int start, apr_int64_t last)
{
    int i, n = bff_ns_key_count(index_ns(kind), sv->ring);
    unsigned char *rec;
    apr_size_t len, used;
    apr_status_t rv;
    char *txt;

    /* 64 hex digits, a space, at most 20 digits and sign, a newline. */
    txt = apr_palloc(p, (apr_size_t)(list->nelts - start) * 87 + 1);
    for (i = start, used = 0; i < list->nelts; ++i) {
        const index_entry_t *e = &APR_ARRAY_IDX(list, i, index_entry_t);
        used += apr_snprintf(txt + used, 88, "%s %" APR_INT64_T_FMT "\n", e->handle, e->expires);
        last = e->expires > last ? e->expires : last;
    }
    txt[used] = '\0';
    if (APR_SUCCESS != (rv = bff_crypto_seal(p, sv->ring, key, strlen(key), txt, used, &rec, &len))
        || APR_SUCCESS != (rv = bff_store_set(sv->store, p, key, rec, len, last))) {
        return rv;
    }
    for (i = 1; i < n; ++i) {
        const char *old = index_key(sv, p, kind, i, value);
        if (old) {
            bff_store_remove(sv->store, p, old);
        }
    }
    return APR_SUCCESS;
}

apr_status_t bff_sessions_index_add(const bff_sessions_t *sv, apr_pool_t *p,
                                    bff_sessions_index_e kind, const char *value,
                                    const char *handle, apr_int64_t expires, int *dropped)
{
    const char *key = index_key(sv, p, kind, 0, value), *owner = NULL;
    int start, tries, max = sv->index_max > 0 ? sv->index_max : BFF_SESSIONS_INDEX_MAX;
    apr_int64_t now;
    apr_array_header_t *list;
    index_entry_t *e;
    apr_status_t rv;

    if (dropped) {
        *dropped = 0;
    }
    if (!key || !handle) {
        return APR_EINVAL;
    }
    for (tries = 0; APR_SUCCESS != bff_sessions_lock(sv, p, key, BFF_SESSIONS_LOCK_TTL, &owner);
         ++tries) {
        if (tries >= INDEX_LOCK_TRIES) {
            return APR_EEXIST;
        }
        pause_ms(sv, INDEX_LOCK_PAUSE_MS);
    }
    now = bff_sessions_now(sv);
    list = index_read(sv, p, kind, value);
    e = &APR_ARRAY_PUSH(list, index_entry_t);
    e->handle = handle;
    e->expires = expires;
    qsort(list->elts, (size_t)list->nelts, sizeof(index_entry_t), by_expiry);
    /* Sessions past their end are gone from the store: drop them. */
    for (start = 0; start < list->nelts && APR_ARRAY_IDX(list, start, index_entry_t).expires <= now;
         ++start) {
    }
    if (list->nelts - start > max) {
        if (dropped) {
            *dropped = list->nelts - start - max;
        }
        start = list->nelts - max;
    }
    rv = index_write(sv, p, kind, value, key, list, start, expires);
    bff_sessions_unlock(sv, p, key, owner);
    return rv;
}

apr_array_header_t *bff_sessions_index_list(const bff_sessions_t *sv, apr_pool_t *p,
                                            bff_sessions_index_e kind, const char *value)
{
    apr_array_header_t *list = index_read(sv, p, kind, value);
    apr_array_header_t *out = apr_array_make(p, list->nelts ? list->nelts : 1, sizeof(char *));
    int i;

    for (i = 0; i < list->nelts; ++i) {
        APR_ARRAY_PUSH(out, const char *) = APR_ARRAY_IDX(list, i, index_entry_t).handle;
    }
    return out;
}

int bff_sessions_index_end(const bff_sessions_t *sv, apr_pool_t *p, bff_sessions_index_e kind,
                           const char *value)
{
    apr_array_header_t *list = index_read(sv, p, kind, value);
    int i, n = 0, nkeys = bff_ns_key_count(index_ns(kind), sv->ring);

    for (i = 0; i < list->nelts; ++i) {
        if (bff_sessions_remove(sv, p, APR_ARRAY_IDX(list, i, index_entry_t).handle)
            == APR_SUCCESS) {
            ++n;
        }
    }
    for (i = 0; i < nkeys; ++i) {
        const char *key = index_key(sv, p, kind, i, value);
        if (key) {
            bff_store_remove(sv->store, p, key);
        }
    }
    return n;
}

/* ---- single-use and replay entries -------------------------------------- */

/* Both are fixed keys (no ring in them): nodes in a rolling rotation agree
 * on them, so add stays atomic across nodes. */

apr_status_t bff_sessions_mark_used(const bff_sessions_t *sv, apr_pool_t *p, const char *state,
                                    apr_int64_t expires, const char **key)
{
    static const unsigned char one = '1';

    *key = bff_ns_key(p, sv->ring, BFF_NS_TXN_USED, 0, sv->site,
                      apr_pstrcat(p, sv->issuer, "\n", state, NULL));
    if (!*key) {
        return APR_ENOMEM;
    }
    /* Whoever adds the marker owns the login attempt. The request is
     * anonymous until the code exchange succeeds: never evict for it. */
    return bff_store_add_noevict(sv->store, p, *key, &one, 1, expires);
}

apr_status_t bff_sessions_replay_add(const bff_sessions_t *sv, apr_pool_t *p, const char *jti,
                                     apr_int64_t ttl)
{
    static const unsigned char one = '1';
    const char *key = bff_ns_key(p, sv->ring, BFF_NS_JTI, 0, sv->site,
                                 apr_pstrcat(p, sv->issuer, "\n", jti, NULL));

    if (!key) {
        return APR_ENOMEM;
    }
    return bff_store_add(sv->store, p, key, &one, 1, bff_sessions_now(sv) + ttl);
}
