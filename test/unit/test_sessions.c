/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * The sessions service (src/bff_sessions.c) against the real shm store and a fake clock that
 * also decides the store's expiry: finding a record across the key ring and moving it on save,
 * replace never recreating, removal, lock ownership, the sid/sub indexes, the login's
 * single-use marker, logout-token replay entries and the store TTL. Milliseconds each.
 */
#include "unit.h"

#include <string.h>

#include <apr_global_mutex.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "bff_crypto.h"
#include "bff_ns.h"
#include "bff_session.h"
#include "bff_sessions.h"
#include "bff_store.h"
#include "bff_store_shm.h"

#define ISSUER "https://op.example"
#define SITE_ORIGIN "https://app.example"
#define IDLE 100
#define LIFETIME 1000

/* ---- the fake clock ---------------------------------------------- */

static apr_int64_t fake_now; /* seconds */
static int sleeps;

static apr_int64_t clock_now(void *baton)
{
    (void)baton;
    return fake_now;
}

static void clock_sleep(void *baton, apr_interval_time_t t)
{
    (void)baton;
    (void)t;
    ++sleeps;
}

static const bff_sessions_clock_t fake_clock = { clock_now, clock_sleep, NULL };

static apr_int64_t shm_clock(void *baton)
{
    (void)baton;
    return fake_now;
}

/* ---- the world: one store, two rings (before and after a rotation) - */

typedef struct {
    apr_pool_t *p;
    bff_store_t *st;
    const char *site;
    bff_keyring_t *ring1; /* [K1] */
    bff_keyring_t *ring2; /* [K2, K1]: K2 added, K1 kept for reading */
    bff_sessions_t sv1;   /* a node before the rotation */
    bff_sessions_t sv2;   /* a node after it */
} world_t;

static world_t W;

static bff_store_t *shm_store(apr_pool_t *p, apr_size_t size)
{
    apr_global_mutex_t *m;
    bff_store_t *st;

    assert_int_equal(apr_global_mutex_create(&m, NULL, APR_LOCK_DEFAULT, p), APR_SUCCESS);
    assert_int_equal(bff_store_shm_create(p, size, m, &st), APR_SUCCESS);
    bff_store_shm_set_clock(st, shm_clock, NULL);
    return st;
}

static void service(bff_sessions_t *sv, bff_store_t *st, const bff_keyring_t *ring,
                    const char *site)
{
    memset(sv, 0, sizeof(*sv));
    sv->store = st;
    sv->ring = ring;
    sv->site = site;
    sv->issuer = ISSUER;
    sv->idle_timeout = IDLE;
    sv->clock = &fake_clock;
}

static int setup(void **state)
{
    static const char k1[] = "sessions test secret one 1234567";
    static const char k2[] = "sessions test secret two 7654321";
    apr_pool_t *p;

    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return -1;
    }
    *state = p;
    memset(&W, 0, sizeof(W));
    W.p = p;
    fake_now = (apr_int64_t)apr_time_sec(apr_time_now());
    sleeps = 0;
    W.st = shm_store(p, (apr_size_t)1024 * 1024);
    W.site = bff_ns_site(p, SITE_ORIGIN, "client");
    if (bff_crypto_keyring_create(p, &W.ring1) != APR_SUCCESS
        || bff_crypto_keyring_add_ctx(W.ring1, k1, sizeof(k1) - 1, W.site) != APR_SUCCESS
        || bff_crypto_keyring_create(p, &W.ring2) != APR_SUCCESS
        || bff_crypto_keyring_add_ctx(W.ring2, k2, sizeof(k2) - 1, W.site) != APR_SUCCESS
        || bff_crypto_keyring_add_ctx(W.ring2, k1, sizeof(k1) - 1, W.site) != APR_SUCCESS) {
        return -1;
    }
    service(&W.sv1, W.st, W.ring1, W.site);
    service(&W.sv2, W.st, W.ring2, W.site);
    return 0;
}

static int teardown(void **state)
{
    apr_pool_destroy((apr_pool_t *)*state);
    return 0;
}

/* A new session as the callback makes it, not yet saved. */
static bff_sessions_entry_t *new_entry(apr_pool_t *p, const char *sub)
{
    bff_sessions_entry_t *e = apr_pcalloc(p, sizeof(*e));
    bff_session_t *s = apr_pcalloc(p, sizeof(*s));

    s->iss = ISSUER;
    s->sub = sub;
    s->access_token = "at-0";
    s->token_type = "Bearer";
    s->refresh_token = "rt-0";
    s->logout_id = "logout-id";
    s->created = fake_now;
    s->last_access = fake_now;
    s->at_issued = fake_now;
    s->at_expires = fake_now + 60;
    s->expires = fake_now + LIFETIME;
    e->id = bff_session_new_id(p);
    e->s = s;
    assert_non_null(e->id);
    return e;
}

static bff_sessions_entry_t *created(const bff_sessions_t *sv, const char *sub)
{
    bff_sessions_entry_t *e = new_entry(W.p, sub);

    assert_int_equal(bff_sessions_save(sv, W.p, e, 1, NULL), APR_SUCCESS);
    return e;
}

static bff_sessions_entry_t *found(const bff_sessions_t *sv, const char *id)
{
    bff_sessions_entry_t *e = NULL;
    bff_sessions_miss_e why;

    assert_int_equal(bff_sessions_find(sv, W.p, id, NULL, &e, &why), APR_SUCCESS);
    assert_int_equal(why, BFF_SESSIONS_FOUND);
    return e;
}

static bff_sessions_miss_e missing(const bff_sessions_t *sv, const char *id)
{
    bff_sessions_entry_t *e = NULL;
    bff_sessions_miss_e why = BFF_SESSIONS_FOUND;

    assert_int_equal(bff_sessions_find(sv, W.p, id, NULL, &e, &why), APR_NOTFOUND);
    assert_null(e);
    return why;
}

static int stored(const char *key)
{
    unsigned char *v;
    apr_size_t len;

    return bff_store_get(W.st, W.p, key, &v, &len) == APR_SUCCESS;
}

static const char *skey(const bff_sessions_t *sv, int i, const char *handle)
{
    return bff_ns_key(W.p, sv->ring, BFF_NS_SESSION, i, sv->site, handle);
}

/* ---- finding and saving across the key ring ----------------------- */

/* A record written before a rotation is found under the older key's store
 * key, and the next save moves it: under the current key, the old copy
 * gone, the handle unchanged. */
static void test_find_old_key_then_migrate(void **state)
{
    bff_sessions_entry_t *e = created(&W.sv1, "alice"), *f;
    const char *old_key = skey(&W.sv1, 0, e->handle);
    apr_uint64_t rev;

    (void)state;
    assert_string_equal(e->key, old_key);
    assert_true(stored(old_key));

    f = found(&W.sv2, e->id);
    assert_string_equal(f->key, old_key);
    assert_int_equal(f->store_key_index, 1);
    assert_int_equal(f->key_index, 1);
    assert_string_equal(f->handle, e->handle);
    assert_string_equal(f->s->sub, "alice");
    assert_true(bff_sessions_touch_due(&W.sv2, f, fake_now)); /* not under the current key */

    rev = f->s->rev;
    f->s->access_token = "at-1";
    assert_int_equal(bff_sessions_save(&W.sv2, W.p, f, 0, NULL), APR_SUCCESS);
    assert_int_equal(f->store_key_index, 0);
    assert_string_equal(f->key, skey(&W.sv2, 0, e->handle));
    assert_false(stored(old_key));
    assert_true(stored(f->key));

    f = found(&W.sv2, e->id);
    assert_int_equal(f->store_key_index, 0);
    assert_int_equal(f->key_index, 0);
    assert_int_equal(f->s->rev, rev + 1);
    assert_string_equal(f->s->access_token, "at-1");
    assert_false(bff_sessions_touch_due(&W.sv2, f, fake_now));
    /* A node still on the old ring alone no longer finds it. */
    assert_int_equal(missing(&W.sv1, e->id), BFF_SESSIONS_NO_RECORD);
}

/* The move needs the old copy: a logout that removed it meanwhile wins
 * (nothing left under either key); of two writers moving the same record
 * the second writes nothing (APR_EEXIST). */
static void test_migration_races(void **state)
{
    bff_sessions_entry_t *e = created(&W.sv1, "alice"), *a, *b;

    (void)state;
    a = found(&W.sv2, e->id);
    assert_int_equal(bff_sessions_remove(&W.sv1, W.p, e->handle), APR_SUCCESS);
    assert_int_equal(bff_sessions_save(&W.sv2, W.p, a, 0, NULL), APR_NOTFOUND);
    assert_false(stored(skey(&W.sv2, 0, e->handle)));
    assert_false(stored(skey(&W.sv2, 1, e->handle)));
    assert_int_equal(missing(&W.sv2, e->id), BFF_SESSIONS_NO_RECORD);

    e = created(&W.sv1, "bob");
    a = found(&W.sv2, e->id);
    b = found(&W.sv2, e->id);
    a->s->access_token = "at-a";
    b->s->access_token = "at-b";
    assert_int_equal(bff_sessions_save(&W.sv2, W.p, a, 0, NULL), APR_SUCCESS);
    assert_int_equal(bff_sessions_save(&W.sv2, W.p, b, 0, NULL), APR_EEXIST);
    assert_string_equal(found(&W.sv2, e->id)->s->access_token, "at-a");
}

/* After a removal (a logout), a write that started before it finds
 * nothing to replace and never brings the session back. */
static void test_replace_never_recreates(void **state)
{
    bff_sessions_entry_t *e = created(&W.sv2, "alice"), *f = found(&W.sv2, e->id);

    (void)state;
    assert_int_equal(bff_sessions_remove(&W.sv2, W.p, e->handle), APR_SUCCESS);
    f->s->last_access = fake_now;
    assert_int_equal(bff_sessions_save(&W.sv2, W.p, f, 0, NULL), APR_NOTFOUND);
    assert_false(stored(skey(&W.sv2, 0, e->handle)));
    assert_int_equal(missing(&W.sv2, e->id), BFF_SESSIONS_NO_RECORD);
    /* create is an add: not over a live record either. */
    e = created(&W.sv2, "bob");
    assert_int_equal(bff_sessions_save(&W.sv2, W.p, e, 1, NULL), APR_EEXIST);
}

/* Remove takes the record off every key of the ring. */
static void test_remove(void **state)
{
    bff_sessions_entry_t *e = created(&W.sv1, "alice"), *again;

    (void)state;
    /* A stale copy under the old key and one under the new. */
    again = apr_pmemdup(W.p, e, sizeof(*e));
    again->key = NULL;
    again->store_key_index = 0;
    assert_int_equal(bff_sessions_save(&W.sv2, W.p, again, 1, NULL), APR_SUCCESS);
    assert_true(stored(skey(&W.sv2, 0, e->handle)));
    assert_true(stored(skey(&W.sv2, 1, e->handle)));

    assert_int_equal(bff_sessions_remove(&W.sv2, W.p, e->handle), APR_SUCCESS);
    assert_false(stored(skey(&W.sv2, 0, e->handle)));
    assert_false(stored(skey(&W.sv2, 1, e->handle)));
    assert_int_equal(missing(&W.sv2, e->id), BFF_SESSIONS_NO_RECORD);
    assert_int_equal(bff_sessions_remove(&W.sv2, W.p, e->handle), APR_NOTFOUND);
    assert_int_equal(bff_sessions_remove(&W.sv2, W.p, NULL), APR_NOTFOUND);
}

/* A record opens only under its own store key (the AAD) and with the
 * ring: copied under another session's key, changed by one byte, or
 * sealed by another site's keys, it is no session. */
static void test_record_bound_to_key(void **state)
{
    bff_sessions_entry_t *a = created(&W.sv2, "alice"), *b = created(&W.sv2, "bob");
    bff_sessions_t other;
    bff_keyring_t *ring;
    bff_session_t *fresh;
    unsigned char *rec;
    apr_size_t len;

    (void)state;
    assert_int_equal(bff_store_get(W.st, W.p, a->key, &rec, &len), APR_SUCCESS);
    assert_int_equal(bff_store_set(W.st, W.p, b->key, rec, len, fake_now + IDLE), APR_SUCCESS);
    assert_int_equal(missing(&W.sv2, b->id), BFF_SESSIONS_UNREADABLE);
    assert_int_equal(bff_sessions_reload(&W.sv2, W.p, b, &fresh), APR_NOTFOUND);

    rec = apr_pmemdup(W.p, rec, len);
    rec[len / 2] ^= 1;
    assert_int_equal(bff_store_set(W.st, W.p, a->key, rec, len, fake_now + IDLE), APR_SUCCESS);
    assert_int_equal(missing(&W.sv2, a->id), BFF_SESSIONS_UNREADABLE);

    /* Same store and site, keys that are not the ring's: found under its
     * store key, but it does not open. */
    assert_int_equal(bff_crypto_keyring_create(W.p, &ring), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add_random(ring), APR_SUCCESS);
    service(&other, W.st, ring, W.site);
    a = created(&other, "carol");
    assert_int_equal(bff_store_get(W.st, W.p, a->key, &rec, &len), APR_SUCCESS);
    assert_int_equal(bff_store_set(W.st, W.p, skey(&W.sv2, 0, a->handle), rec, len,
                                   fake_now + IDLE),
                     APR_SUCCESS);
    assert_int_equal(missing(&W.sv2, a->id), BFF_SESSIONS_UNREADABLE);
}

/* A record past its idle or absolute end is no session and is removed; one
 * of another provider is refused; a malformed id reads nothing. */
static void test_expiry_issuer_malformed(void **state)
{
    bff_sessions_entry_t *e = created(&W.sv2, "alice");
    bff_sessions_t other;

    (void)state;
    fake_now += IDLE - 1;
    found(&W.sv2, e->id);
    fake_now += 1;
    assert_int_equal(missing(&W.sv2, e->id), BFF_SESSIONS_EXPIRED_IDLE);
    assert_false(stored(e->key));

    e = new_entry(W.p, "bob");
    e->s->expires = fake_now + 10;
    assert_int_equal(bff_sessions_save(&W.sv2, W.p, e, 1, NULL), APR_SUCCESS);
    fake_now += 10; /* the store still holds it for this second */
    assert_true(stored(e->key));
    assert_int_equal(missing(&W.sv2, e->id), BFF_SESSIONS_EXPIRED_MAX);
    assert_false(stored(e->key));

    e = created(&W.sv2, "carol");
    other = W.sv2;
    other.issuer = "https://other-op.example";
    assert_int_equal(missing(&other, e->id), BFF_SESSIONS_OTHER_ISSUER);
    found(&W.sv2, e->id);

    assert_int_equal(missing(&W.sv2, "not a session id"), BFF_SESSIONS_MALFORMED);
    assert_int_equal(missing(&W.sv2, NULL), BFF_SESSIONS_MALFORMED);
    assert_int_equal(missing(&W.sv2, bff_session_new_id(W.p)), BFF_SESSIONS_NO_RECORD);
}

/* The store entry lives until the earlier of the idle and the absolute
 * end, each save moving the idle end; the idle slide writes in steps. */
static void test_ttl_follows_lifetimes(void **state)
{
    bff_sessions_entry_t *e = created(&W.sv2, "alice");
    apr_int64_t t0 = fake_now;

    (void)state;
    assert_int_equal(bff_sessions_store_expiry(&W.sv2, e->s), t0 + IDLE);
    fake_now = t0 + IDLE;
    assert_true(stored(e->key));
    fake_now = t0 + IDLE + 1;
    assert_false(stored(e->key));

    /* Touched at t0 + 60: lives to t0 + 160. */
    fake_now = t0;
    e = created(&W.sv2, "bob");
    fake_now = t0 + 60;
    e = found(&W.sv2, e->id);
    assert_true(bff_sessions_touch_due(&W.sv2, e, fake_now));
    e->s->last_access = fake_now;
    assert_int_equal(bff_sessions_save(&W.sv2, W.p, e, 0, NULL), APR_SUCCESS);
    fake_now = t0 + 160;
    assert_true(stored(e->key));
    fake_now = t0 + 161;
    assert_false(stored(e->key));

    /* Near the absolute end, that end decides. */
    fake_now = t0;
    e = new_entry(W.p, "carol");
    e->s->last_access = t0 + LIFETIME - 30;
    assert_int_equal(bff_sessions_save(&W.sv2, W.p, e, 1, NULL), APR_SUCCESS);
    assert_int_equal(bff_sessions_store_expiry(&W.sv2, e->s), t0 + LIFETIME);
    fake_now = t0 + LIFETIME;
    assert_true(stored(e->key));
    fake_now = t0 + LIFETIME + 1;
    assert_false(stored(e->key));

    /* Steps of a tenth of the idle timeout, 1 s to 60 s. */
    fake_now = t0;
    e = created(&W.sv2, "dave");
    assert_false(bff_sessions_touch_due(&W.sv2, e, t0 + IDLE / 10 - 1));
    assert_true(bff_sessions_touch_due(&W.sv2, e, t0 + IDLE / 10));
    W.sv2.idle_timeout = 5;
    assert_true(bff_sessions_touch_due(&W.sv2, e, t0 + 1));
    W.sv2.idle_timeout = 100000;
    assert_false(bff_sessions_touch_due(&W.sv2, e, t0 + 59));
    assert_true(bff_sessions_touch_due(&W.sv2, e, t0 + 60));
}

/* The connection's memo: the same answer without decrypting again, a
 * changed record seen at once, another site's memo never used. */
static void test_memo(void **state)
{
    bff_sessions_memo_t *memo = bff_sessions_memo_create(W.p);
    bff_sessions_entry_t *e = created(&W.sv2, "alice"), *f, *g;
    bff_sessions_miss_e why;
    bff_sessions_t other;

    (void)state;
    assert_non_null(memo);
    assert_int_equal(bff_sessions_find(&W.sv2, W.p, e->id, memo, &f, &why), APR_SUCCESS);
    assert_int_equal(bff_sessions_find(&W.sv2, W.p, e->id, memo, &g, &why), APR_SUCCESS);
    assert_string_equal(g->handle, e->handle);
    assert_int_equal(g->s->rev, f->s->rev);
    g->s->access_token = "at-2";
    assert_int_equal(bff_sessions_save(&W.sv2, W.p, g, 0, NULL), APR_SUCCESS);
    assert_int_equal(bff_sessions_find(&W.sv2, W.p, e->id, memo, &f, &why), APR_SUCCESS);
    assert_string_equal(f->s->access_token, "at-2");

    assert_int_equal(bff_sessions_remove(&W.sv2, W.p, e->handle), APR_SUCCESS);
    assert_int_equal(bff_sessions_find(&W.sv2, W.p, e->id, memo, &f, &why), APR_NOTFOUND);
    assert_int_equal(why, BFF_SESSIONS_NO_RECORD);

    /* Another site with the same keys and store: its own handle and keys. */
    e = created(&W.sv2, "bob");
    assert_int_equal(bff_sessions_find(&W.sv2, W.p, e->id, memo, &f, &why), APR_SUCCESS);
    service(&other, W.st, W.ring2, bff_ns_site(W.p, "https://other.example", "client"));
    assert_int_equal(bff_sessions_find(&other, W.p, e->id, memo, &f, &why), APR_NOTFOUND);
    assert_int_equal(why, BFF_SESSIONS_NO_RECORD);
}

/* ---- locks --------------------------------------------------------- */

/* Only the owner removes a lock; one that outlived its TTL and was taken
 * over is the new owner's, and the first owner's unlock leaves it. */
static void test_lock_owner(void **state)
{
    const char *what = bff_ns_handle(W.p, W.site, "some session");
    const char *a = NULL, *b = NULL, *c = NULL;

    (void)state;
    assert_int_equal(bff_sessions_lock(&W.sv2, W.p, what, 30, &a), APR_SUCCESS);
    assert_int_equal(bff_sessions_lock(&W.sv2, W.p, what, 30, &b), APR_EEXIST);
    /* The same lock on every node, whatever its ring. */
    assert_int_equal(bff_sessions_lock(&W.sv1, W.p, what, 30, &b), APR_EEXIST);
    assert_int_equal(bff_sessions_unlock(&W.sv2, W.p, what, "not-the-owner"), APR_NOTFOUND);
    assert_int_equal(bff_sessions_lock(&W.sv2, W.p, what, 30, &b), APR_EEXIST);

    fake_now += 31; /* a crashed holder: the lock ends with its TTL */
    assert_int_equal(bff_sessions_lock(&W.sv2, W.p, what, 30, &b), APR_SUCCESS);
    assert_string_not_equal(a, b);
    assert_int_equal(bff_sessions_unlock(&W.sv2, W.p, what, a), APR_NOTFOUND);
    assert_int_equal(bff_sessions_lock(&W.sv2, W.p, what, 30, &c), APR_EEXIST);
    assert_int_equal(bff_sessions_unlock(&W.sv2, W.p, what, NULL), APR_NOTFOUND);
    assert_int_equal(bff_sessions_lock(&W.sv2, W.p, what, 30, &c), APR_EEXIST);
    assert_int_equal(bff_sessions_unlock(&W.sv2, W.p, what, b), APR_SUCCESS);
    assert_int_equal(bff_sessions_lock(&W.sv2, W.p, what, 30, &c), APR_SUCCESS);
    assert_int_equal(bff_sessions_unlock(&W.sv2, W.p, what, b), APR_NOTFOUND);
    assert_int_equal(bff_sessions_unlock(&W.sv2, W.p, what, c), APR_SUCCESS);
}

/* ---- indexes ------------------------------------------------------- */

static int listed(const bff_sessions_t *sv, bff_sessions_index_e kind, const char *value,
                  const char *handle)
{
    apr_array_header_t *l = bff_sessions_index_list(sv, W.p, kind, value);
    int i;

    for (i = 0; i < l->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(l, i, const char *), handle)) {
            return 1;
        }
    }
    return 0;
}

static int nlisted(const bff_sessions_t *sv, bff_sessions_index_e kind, const char *value)
{
    return bff_sessions_index_list(sv, W.p, kind, value)->nelts;
}

/* Entries of ended sessions are dropped at the next add; an index written
 * before a rotation is merged and moved; ending an index removes its
 * sessions under every key, and the index. */
static void test_index_add_prune_end(void **state)
{
    bff_sessions_entry_t *a = created(&W.sv1, "alice"), *b = created(&W.sv1, "alice");
    bff_sessions_entry_t *c = created(&W.sv2, "alice");
    const char *gone = bff_ns_handle(W.p, W.site, "ended session");
    int dropped = -1;

    (void)state;
    assert_int_equal(bff_sessions_index_add(&W.sv1, W.p, BFF_SESSIONS_INDEX_SUB, "alice", gone,
                                            fake_now + 10, &dropped),
                     APR_SUCCESS);
    assert_int_equal(dropped, 0);
    assert_int_equal(bff_sessions_index_add(&W.sv1, W.p, BFF_SESSIONS_INDEX_SUB, "alice", a->handle,
                                            a->s->expires, NULL),
                     APR_SUCCESS);
    assert_int_equal(nlisted(&W.sv1, BFF_SESSIONS_INDEX_SUB, "alice"), 2);
    /* The same handle twice is one entry. */
    assert_int_equal(bff_sessions_index_add(&W.sv1, W.p, BFF_SESSIONS_INDEX_SUB, "alice", a->handle,
                                            a->s->expires, NULL),
                     APR_SUCCESS);
    assert_int_equal(nlisted(&W.sv1, BFF_SESSIONS_INDEX_SUB, "alice"), 2);

    fake_now += 11; /* the first session ended */
    assert_int_equal(bff_sessions_index_add(&W.sv1, W.p, BFF_SESSIONS_INDEX_SUB, "alice", b->handle,
                                            b->s->expires, NULL),
                     APR_SUCCESS);
    assert_false(listed(&W.sv1, BFF_SESSIONS_INDEX_SUB, "alice", gone));
    assert_true(listed(&W.sv1, BFF_SESSIONS_INDEX_SUB, "alice", a->handle));
    assert_true(listed(&W.sv1, BFF_SESSIONS_INDEX_SUB, "alice", b->handle));

    /* After the rotation: found under the old key, merged into the new. */
    assert_true(listed(&W.sv2, BFF_SESSIONS_INDEX_SUB, "alice", a->handle));
    assert_int_equal(bff_sessions_index_add(&W.sv2, W.p, BFF_SESSIONS_INDEX_SUB, "alice", c->handle,
                                            c->s->expires, NULL),
                     APR_SUCCESS);
    assert_int_equal(nlisted(&W.sv2, BFF_SESSIONS_INDEX_SUB, "alice"), 3);
    assert_int_equal(nlisted(&W.sv1, BFF_SESSIONS_INDEX_SUB, "alice"), 0); /* old copy gone */
    /* sid and sub are separate indexes. */
    assert_int_equal(nlisted(&W.sv2, BFF_SESSIONS_INDEX_SID, "alice"), 0);

    /* Ending: every listed session that still exists, under any key. */
    assert_int_equal(bff_sessions_remove(&W.sv2, W.p, b->handle), APR_SUCCESS);
    assert_int_equal(bff_sessions_index_end(&W.sv2, W.p, BFF_SESSIONS_INDEX_SUB, "alice"), 2);
    assert_int_equal(missing(&W.sv2, a->id), BFF_SESSIONS_NO_RECORD);
    assert_int_equal(missing(&W.sv2, c->id), BFF_SESSIONS_NO_RECORD);
    assert_int_equal(nlisted(&W.sv2, BFF_SESSIONS_INDEX_SUB, "alice"), 0);
    assert_int_equal(bff_sessions_index_end(&W.sv2, W.p, BFF_SESSIONS_INDEX_SUB, "alice"), 0);
}

/* Past the cap the sessions that end first fall out (and say how many);
 * a busy index lock gives up after its bounded wait. */
static void test_index_cap_and_busy(void **state)
{
    const char *h[6], *owner, *key;
    int i, dropped = -1;

    (void)state;
    W.sv2.index_max = 4;
    for (i = 0; i < 6; ++i) {
        h[i] = bff_ns_handle(W.p, W.site, apr_psprintf(W.p, "session %d", i));
        /* Later sessions end later, but the first ends last of all. */
        assert_int_equal(bff_sessions_index_add(&W.sv2, W.p, BFF_SESSIONS_INDEX_SID, "sid-1", h[i],
                                                fake_now + (i ? 100 + i : 1000), &dropped),
                         APR_SUCCESS);
        assert_int_equal(dropped, i < 4 ? 0 : 1);
    }
    assert_int_equal(nlisted(&W.sv2, BFF_SESSIONS_INDEX_SID, "sid-1"), 4);
    assert_true(listed(&W.sv2, BFF_SESSIONS_INDEX_SID, "sid-1", h[0]));
    assert_false(listed(&W.sv2, BFF_SESSIONS_INDEX_SID, "sid-1", h[1]));
    assert_false(listed(&W.sv2, BFF_SESSIONS_INDEX_SID, "sid-1", h[2]));
    assert_true(listed(&W.sv2, BFF_SESSIONS_INDEX_SID, "sid-1", h[5]));

    /* The index's lock is named after its key under ring entry 0. */
    key = bff_ns_key(W.p, W.ring2, BFF_NS_INDEX_SID, 0, W.site, ISSUER "\nsid-1");
    assert_int_equal(bff_sessions_lock(&W.sv2, W.p, key, 30, &owner), APR_SUCCESS);
    sleeps = 0;
    assert_int_equal(bff_sessions_index_add(&W.sv2, W.p, BFF_SESSIONS_INDEX_SID, "sid-1", h[1],
                                            fake_now + 2000, NULL),
                     APR_EEXIST);
    assert_int_equal(sleeps, 50);
    assert_false(listed(&W.sv2, BFF_SESSIONS_INDEX_SID, "sid-1", h[1]));
    assert_int_equal(bff_sessions_unlock(&W.sv2, W.p, key, owner), APR_SUCCESS);
    assert_int_equal(bff_sessions_index_add(&W.sv2, W.p, BFF_SESSIONS_INDEX_SID, "sid-1", h[1],
                                            fake_now + 2000, NULL),
                     APR_SUCCESS);
    assert_true(listed(&W.sv2, BFF_SESSIONS_INDEX_SID, "sid-1", h[1]));
    /* The index's own lock is released after each add. */
    assert_int_equal(bff_sessions_lock(&W.sv2, W.p, key, 30, &owner), APR_SUCCESS);
}

/* ---- single-use marker and replay entries --------------------------- */

/* A login's state is used once, on every node whatever its ring; the
 * marker goes with the login's expiry. */
static void test_mark_used_once(void **state)
{
    const char *k1, *k2;

    (void)state;
    assert_int_equal(bff_sessions_mark_used(&W.sv1, W.p, "state-1", fake_now + 600, &k1),
                     APR_SUCCESS);
    assert_true(!strncmp(k1, "u:", 2));
    assert_int_equal(bff_sessions_mark_used(&W.sv1, W.p, "state-1", fake_now + 600, &k2),
                     APR_EEXIST);
    assert_string_equal(k1, k2);
    assert_int_equal(bff_sessions_mark_used(&W.sv2, W.p, "state-1", fake_now + 600, &k2),
                     APR_EEXIST);
    assert_int_equal(bff_sessions_mark_used(&W.sv1, W.p, "state-2", fake_now + 600, &k2),
                     APR_SUCCESS);
    /* Removed when the login failed: usable again (the caller's choice). */
    assert_int_equal(bff_store_remove(W.st, W.p, k2), APR_SUCCESS);
    assert_int_equal(bff_sessions_mark_used(&W.sv1, W.p, "state-2", fake_now + 600, &k2),
                     APR_SUCCESS);
    fake_now += 601;
    assert_int_equal(bff_sessions_mark_used(&W.sv1, W.p, "state-1", fake_now + 600, &k1),
                     APR_SUCCESS);
}

/* A full store refuses the marker (APR_ENOSPC) and evicts no session. */
static void test_mark_used_store_full(void **state)
{
    bff_store_t *st = shm_store(W.p, (apr_size_t)64 * 1024);
    bff_store_shm_stats_t stats;
    bff_sessions_t sv;
    const char *key;
    char name[32];
    unsigned char *v;
    apr_size_t len;
    apr_uint32_t i;

    (void)state;
    service(&sv, st, W.ring2, W.site);
    assert_int_equal(bff_store_shm_stats(st, &stats), APR_SUCCESS);
    for (i = 0; i < stats.entries_max; ++i) {
        apr_snprintf(name, sizeof(name), "s:%u", i);
        assert_int_equal(bff_store_add(st, W.p, name, (const unsigned char *)"x", 1,
                                       fake_now + 3600),
                         APR_SUCCESS);
    }
    assert_int_equal(bff_sessions_mark_used(&sv, W.p, "state-1", fake_now + 600, &key), APR_ENOSPC);
    assert_int_equal(bff_store_shm_stats(st, &stats), APR_SUCCESS);
    assert_int_equal(stats.evictions, 0);
    assert_true(bff_store_get(st, W.p, "s:0", &v, &len) == APR_SUCCESS);
}

/* A logout token's jti is refused a second time for its TTL, on every
 * node whatever its ring; another issuer's same jti is its own entry. */
static void test_replay_entry(void **state)
{
    bff_sessions_t other = W.sv2;

    (void)state;
    assert_int_equal(bff_sessions_replay_add(&W.sv1, W.p, "jti-1", 420), APR_SUCCESS);
    assert_int_equal(bff_sessions_replay_add(&W.sv1, W.p, "jti-1", 420), APR_EEXIST);
    assert_int_equal(bff_sessions_replay_add(&W.sv2, W.p, "jti-1", 420), APR_EEXIST);
    assert_int_equal(bff_sessions_replay_add(&W.sv2, W.p, "jti-2", 420), APR_SUCCESS);
    other.issuer = "https://other-op.example";
    assert_int_equal(bff_sessions_replay_add(&other, W.p, "jti-1", 420), APR_SUCCESS);
    fake_now += 420;
    assert_int_equal(bff_sessions_replay_add(&W.sv1, W.p, "jti-1", 420), APR_EEXIST);
    fake_now += 1;
    assert_int_equal(bff_sessions_replay_add(&W.sv1, W.p, "jti-1", 420), APR_SUCCESS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_find_old_key_then_migrate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_races, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_never_recreates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_bound_to_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_issuer_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_follows_lifetimes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_add_prune_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_cap_and_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_used_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_used_store_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_entry, setup, teardown),
    };

    return unit_run("sessions", tests);
}
