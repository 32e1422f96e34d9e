/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the client's own access token (grant_type=client_credentials), cached in the store and
 * fetched single flight; the protocol is described in bff_clienttoken.h. The glue
 * (mod_bff_clienttoken.c) supplies the token endpoint; test/unit/test_clienttoken.c runs it
 * against the shm store with a fake clock and a fake provider.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <apr_strings.h>
#include <openssl/crypto.h>

#include "bff_clienttoken.h"
#include "bff_ns.h"
#include "bff_session.h"

/* Internal: the lock holder vanished without an answer; try to take it. */
#define OUTCOME_GAVE_UP ((bff_refresh_outcome_e)-1)

/* Plaintext of an entry: "v1 <issued> <expires> <token>". The token has
 * passed the token response's character checks (no space in a b64token,
 * but the parse takes the rest of the line whatever it holds). */
#define RECORD_MAGIC "v1 "

/* One call's state. */
typedef struct {
    const bff_clienttoken_t *ct;
    apr_pool_t *p;
    const bff_refresh_clock_t *clock;
    const char *key;  /* c: */
    const char *lock; /* l:c: */
    const char *fail; /* f:c: */
    /* The last bytes read and what they opened to, so that a waiter polling
     * an unchanged entry does not decrypt it again. */
    unsigned char *raw;
    apr_size_t raw_len;
    int raw_ok;
    bff_clienttoken_value_t raw_tok;
} run_t;

static apr_time_t now_us(const run_t *x)
{
    return x->clock->now(x->clock->baton);
}

static apr_int64_t now_sec(const run_t *x)
{
    return (apr_int64_t)apr_time_sec(now_us(x));
}

/* Log lines go where the caller says, else to the core log hook. */
#define CLOG(x, level, rv, ...) \
    bff_log_emit_to((x)->ct->log, (x)->ct->log_baton, __FILE__, __LINE__, (level), (rv), \
                    __VA_ARGS__)

const char *bff_clienttoken_key(apr_pool_t *p, const bff_clienttoken_t *ct)
{
    if (!ct || !ct->issuer) {
        return NULL;
    }
    return bff_ns_key(p, ct->ring, BFF_NS_CLIENT_TOKEN, 0, ct->site,
                      apr_pstrcat(p, ct->issuer, "\n", ct->scope ? ct->scope : "", NULL));
}

/* Due for a new one: the rule of the user's tokens (bff_refresh_needed). */
static int is_due(const run_t *x, const bff_clienttoken_value_t *t)
{
    bff_session_t s;

    memset(&s, 0, sizeof(s));
    s.at_issued = t->issued;
    s.at_expires = t->expires;
    return bff_refresh_needed(x->ct->refresh_before, &s, now_sec(x));
}

static int is_valid(const run_t *x, const bff_clienttoken_value_t *t)
{
    return t->access_token && now_sec(x) < t->expires;
}

/* ---- the entry ---------------------------------------------------- */

static int parse_record(apr_pool_t *p, const char *pt, bff_clienttoken_value_t *t)
{
    apr_int64_t iat, exp;
    char *end;
    const char *s = pt;

    if (strncmp(s, RECORD_MAGIC, strlen(RECORD_MAGIC))) {
        return 0;
    }
    s += strlen(RECORD_MAGIC);
    iat = apr_strtoi64(s, &end, 10);
    if (end == s || *end != ' ') {
        return 0;
    }
    s = end + 1;
    exp = apr_strtoi64(s, &end, 10);
    if (end == s || *end != ' ' || !end[1]) {
        return 0;
    }
    t->issued = iat;
    t->expires = exp;
    t->access_token = apr_pstrdup(p, end + 1);
    return 1;
}

/* The cached token. APR_SUCCESS with *t set; APR_NOTFOUND when there is
 * none this node can use (absent, expired in the store, or sealed under a
 * key this node's ring does not hold: it is then fetched anew); any other
 * status: the store failed. */
static apr_status_t read_entry(run_t *x, bff_clienttoken_value_t *t)
{
    unsigned char *v, *pt;
    apr_size_t len, ptlen;
    apr_status_t rv;

    rv = bff_store_get(x->ct->store, x->p, x->key, &v, &len);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (x->raw && len == x->raw_len && !memcmp(v, x->raw, len)) {
        *t = x->raw_tok;
        return x->raw_ok ? APR_SUCCESS : APR_NOTFOUND;
    }
    x->raw = v;
    x->raw_len = len;
    x->raw_ok = 0;
    rv = bff_crypto_open(x->p, x->ct->ring, x->key, strlen(x->key), v, len, &pt, &ptlen, NULL);
    if (rv != APR_SUCCESS || !parse_record(x->p, (const char *)pt, &x->raw_tok)) {
        CLOG(x, BFF_LOG_DEBUG, rv,
             "BFF02206: the cached client token does not open with this "
             "node's keys (sealed under a key not in its BFFCryptoKey ring?): fetched anew");
        if (rv == APR_SUCCESS) {
            OPENSSL_cleanse(pt, ptlen);
        }
        return APR_NOTFOUND;
    }
    OPENSSL_cleanse(pt, ptlen);
    x->raw_ok = 1;
    *t = x->raw_tok;
    return APR_SUCCESS;
}

/* Seal and store a fetched token until it expires. */
static apr_status_t write_entry(run_t *x, const bff_clienttoken_value_t *t)
{
    char *pt = apr_psprintf(x->p, RECORD_MAGIC "%" APR_INT64_T_FMT " %" APR_INT64_T_FMT " %s",
                            t->issued, t->expires, t->access_token);
    unsigned char *sealed;
    apr_size_t slen;
    apr_status_t rv;

    rv = bff_crypto_seal(x->p, x->ct->ring, x->key, strlen(x->key), pt, strlen(pt), &sealed, &slen);
    OPENSSL_cleanse(pt, strlen(pt));
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* set, not add: it replaces a due token; only the lock holder writes. */
    return bff_store_set(x->ct->store, x->p, x->key, sealed, slen, t->expires);
}

/* ---- the failure marker (as bff_refresh.c's) ----------------------- */

static void fail_mark(const run_t *x, bff_refresh_outcome_e kind)
{
    const char *v = kind == BFF_REFRESH_PROVIDER_TIMEOUT ? "504" : "502";
    apr_int64_t ttl = x->ct->fail_ttl > 0 ? x->ct->fail_ttl : BFF_REFRESH_FAIL_TTL;

    /* add: later failures never stretch the window. */
    bff_store_add(x->ct->store, x->p, x->fail, (const unsigned char *)v, strlen(v),
                  now_sec(x) + ttl);
}

static bff_refresh_outcome_e fail_status(const run_t *x)
{
    unsigned char *v;
    apr_size_t len;

    if (APR_SUCCESS != bff_store_get(x->ct->store, x->p, x->fail, &v, &len) || len != 3) {
        return 0;
    }
    if (!memcmp(v, "502", 3)) {
        return BFF_REFRESH_PROVIDER_DOWN;
    }
    if (!memcmp(v, "504", 3)) {
        return BFF_REFRESH_PROVIDER_TIMEOUT;
    }
    return 0;
}

/* ---- the lock holder ---------------------------------------------- */

static bff_refresh_outcome_e provider_failed(const run_t *x, const bff_clienttoken_value_t *cur,
                                             apr_status_t rv)
{
    bff_refresh_outcome_e kind = rv == APR_TIMEUP ? BFF_REFRESH_PROVIDER_TIMEOUT
                                                  : BFF_REFRESH_PROVIDER_DOWN;

    if (rv != APR_EAGAIN) {
        fail_mark(x, kind);
    }
    return is_valid(x, cur) ? BFF_REFRESH_STILL_VALID : kind;
}

/* We hold the lock: fetch a token unless another request just did. */
static bff_refresh_outcome_e fetch_locked(run_t *x, bff_clienttoken_value_t *cur, apr_status_t *srv)
{
    const bff_clienttoken_endpoint_t *ep = x->ct->endpoint;
    bff_clienttoken_value_t fresh;
    bff_refresh_outcome_e marked;
    bff_refresh_grant_t g;
    const char *err = NULL;
    apr_int64_t now, ttl;
    apr_status_t rv;
    int valid;

    rv = read_entry(x, &fresh);
    if (rv == APR_SUCCESS) {
        *cur = fresh;
        if (!is_due(x, cur)) {
            return BFF_REFRESH_NOT_NEEDED;
        }
    }
    else if (rv != APR_NOTFOUND) {
        *srv = rv;
        return BFF_REFRESH_STORE_DOWN;
    }
    valid = is_valid(x, cur);
    if (APR_SUCCESS != (rv = ep->prepare(ep->baton, x->p))) {
        return provider_failed(x, cur, rv);
    }
    /* A failure moments ago: its answer, or the current token while it
     * lasts, without asking again. Unlike a session's refresh this is
     * checked with a valid token too: every request of the site, anonymous
     * ones included, would otherwise ask a failing provider in turn until
     * the token expires. */
    if ((marked = fail_status(x))) {
        return valid ? BFF_REFRESH_STILL_VALID : marked;
    }
    memset(&g, 0, sizeof(g));
    rv = ep->call(ep->baton, x->p, x->ct->scope, &g, &err);
    if (rv != APR_SUCCESS) {
        CLOG(x, valid ? BFF_LOG_WARNING : BFF_LOG_ERR, rv,
             "BFF02201: client token request (client_credentials) at %s failed: %s%s",
             ep->where ? ep->where(ep->baton) : "the token endpoint", err ? err : "error",
             valid ? "; the current client token is still used" : "");
        return provider_failed(x, cur, rv == APR_TIMEUP ? APR_TIMEUP : APR_EGENERAL);
    }
    if (g.result != BFF_GRANT_ISSUED || !g.access_token) {
        CLOG(x, BFF_LOG_ERR, 0,
             "BFF02202: the provider refused the client token request "
             "(client_credentials%s%s): %s; is the grant allowed for this client?",
             x->ct->scope ? ", scope " : "", x->ct->scope ? x->ct->scope : "",
             g.error ? g.error : "no access token");
        fail_mark(x, BFF_REFRESH_PROVIDER_DOWN);
        return valid ? BFF_REFRESH_STILL_VALID : BFF_REFRESH_PROVIDER_DOWN;
    }
    now = now_sec(x);
    ttl = g.expires_in > 0
              ? g.expires_in
              : (x->ct->default_ttl > 0 ? x->ct->default_ttl : BFF_CLIENTTOKEN_DEFAULT_TTL);
    cur->access_token = g.access_token;
    cur->issued = now;
    cur->expires = now + ttl;
    if (APR_SUCCESS != (rv = write_entry(x, cur))) {
        /* This request uses it all the same; the next one fetches again. */
        CLOG(x, BFF_LOG_WARNING, rv,
             "BFF02203: the client token could not be stored in the "
             "session store; it is used for this request only");
    }
    CLOG(x, BFF_LOG_DEBUG, 0, "BFF02204: client token fetched (expires in %" APR_INT64_T_FMT " s)",
         ttl);
    return BFF_REFRESH_REFRESHED;
}

/* ---- the waiters -------------------------------------------------- */

static int is_locked(const run_t *x)
{
    unsigned char *v;
    apr_size_t len;

    /* A store failure counts as locked: keep waiting, bounded. */
    return bff_store_get(x->ct->store, x->p, x->lock, &v, &len) != APR_NOTFOUND;
}

static bff_refresh_outcome_e fetch_wait(run_t *x, bff_clienttoken_value_t *cur, apr_time_t deadline,
                                        apr_status_t *srv)
{
    apr_interval_time_t poll = x->ct->poll > 0 ? x->ct->poll
                                               : apr_time_from_msec(BFF_REFRESH_POLL_MS);
    bff_clienttoken_value_t fresh;
    bff_refresh_outcome_e marked;
    apr_status_t rv;

    while (now_us(x) < deadline) {
        x->clock->sleep(x->clock->baton, poll);
        rv = read_entry(x, &fresh);
        if (rv == APR_SUCCESS) {
            *cur = fresh;
            if (!is_due(x, cur)) {
                return BFF_REFRESH_WAITED;
            }
        }
        else if (rv != APR_NOTFOUND) {
            *srv = rv;
            return BFF_REFRESH_STORE_DOWN;
        }
        if (!is_locked(x)) {
            /* The holder gave up: its answer, rather than another try at a
             * provider that just failed. */
            if (is_valid(x, cur)) {
                return BFF_REFRESH_STILL_VALID;
            }
            marked = fail_status(x);
            return marked ? marked : OUTCOME_GAVE_UP;
        }
    }
    return is_valid(x, cur) ? BFF_REFRESH_STILL_VALID : BFF_REFRESH_WAIT_TIMEOUT;
}

/* ---- the entry point ---------------------------------------------- */

static apr_status_t outcome_status(bff_refresh_outcome_e o, apr_status_t store_rv)
{
    switch (o) {
    case BFF_REFRESH_NOT_NEEDED:
    case BFF_REFRESH_REFRESHED:
    case BFF_REFRESH_WAITED:
    case BFF_REFRESH_STILL_VALID:
        return APR_SUCCESS;
    case BFF_REFRESH_PROVIDER_TIMEOUT:
    case BFF_REFRESH_WAIT_TIMEOUT:
        return APR_TIMEUP;
    case BFF_REFRESH_STORE_DOWN:
        return store_rv != APR_SUCCESS ? store_rv : APR_EGENERAL;
    default:
        return APR_EGENERAL;
    }
}

/* Take the lock and fetch, or wait for whoever holds it. */
static bff_refresh_outcome_e fetch_single_flight(run_t *x, bff_clienttoken_value_t *cur,
                                                 apr_status_t *store_rv)
{
    const bff_clienttoken_t *ct = x->ct;
    apr_int64_t ttl = ct->lock_ttl > 0 ? ct->lock_ttl : BFF_REFRESH_LOCK_TTL;
    apr_time_t deadline;
    const char *owner = NULL;
    bff_refresh_outcome_e o = BFF_REFRESH_PROVIDER_DOWN;
    apr_status_t rv;
    int attempt;

    deadline = now_us(x) + (ct->wait > 0 ? ct->wait : apr_time_from_msec(BFF_REFRESH_WAIT_MS));
    /* A second attempt only when the holder vanished without a word. */
    for (attempt = 0; attempt < 2; ++attempt) {
        rv = bff_store_lock_until(ct->store, x->p, x->lock, now_sec(x) + ttl, &owner);
        if (rv == APR_SUCCESS) {
            o = fetch_locked(x, cur, store_rv);
            if (bff_store_unlock(ct->store, x->p, x->lock, owner) == APR_NOTFOUND) {
                CLOG(x, BFF_LOG_DEBUG, 0,
                     "BFF02205: the client token lock was no longer this "
                     "request's (it outlived its TTL); left in place");
            }
            return o;
        }
        if (rv != APR_EEXIST) {
            *store_rv = rv;
            return BFF_REFRESH_STORE_DOWN;
        }
        o = fetch_wait(x, cur, deadline, store_rv);
        if (o != OUTCOME_GAVE_UP) {
            return o;
        }
    }
    return is_valid(x, cur) ? BFF_REFRESH_STILL_VALID : BFF_REFRESH_PROVIDER_DOWN;
}

apr_status_t bff_clienttoken_get(const bff_clienttoken_t *ct, apr_pool_t *p,
                                 bff_clienttoken_value_t *tok, bff_refresh_outcome_e *outcome)
{
    run_t x;
    bff_clienttoken_value_t cur;
    apr_status_t rv, store_rv = APR_SUCCESS;
    bff_refresh_outcome_e o;

    memset(&x, 0, sizeof(x));
    memset(&cur, 0, sizeof(cur));
    x.ct = ct;
    x.p = p;
    x.clock = ct->clock ? ct->clock : bff_refresh_clock_real();
    x.key = bff_clienttoken_key(p, ct);
    if (!x.key || !ct->endpoint) {
        *outcome = BFF_REFRESH_STORE_DOWN;
        return APR_EINVAL;
    }
    /* Named after the entry: the same on every node, whatever its ring. */
    x.lock = bff_ns_key(p, ct->ring, BFF_NS_LOCK, 0, ct->site, x.key);
    x.fail = bff_ns_key(p, ct->ring, BFF_NS_REFRESH_FAIL, 0, ct->site, x.key);
    rv = read_entry(&x, &cur);
    if (rv == APR_SUCCESS && !is_due(&x, &cur)) {
        o = BFF_REFRESH_NOT_NEEDED;
    }
    else if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        store_rv = rv;
        o = BFF_REFRESH_STORE_DOWN;
    }
    else {
        o = fetch_single_flight(&x, &cur, &store_rv);
    }
    *outcome = o;
    rv = outcome_status(o, store_rv);
    if (rv == APR_SUCCESS) {
        *tok = cur;
    }
    return rv;
}
