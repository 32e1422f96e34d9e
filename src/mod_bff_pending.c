/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: pending logins in slot cookies: choosing a slot for a new login (spread by state, then
 * foreign, then oldest), sealing it bound to the site and the cookie's name, finding the one a
 * callback names.
 */
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "mod_bff.h"
#include "mod_bff_config.h"
#include "mod_bff_site.h"
#include "mod_bff_pending.h"
#include "mod_bff_respond.h"
#include "bff_cookie.h"
#include "bff_session.h"
#include "bff_util.h"

/* Pending logins live in the browser, sealed, so an anonymous client can
 * start as many as it likes without writing to the store. They take a fixed
 * set of cookie names, "<prefix>0" .. "<prefix>N-1" (slots, N =
 * BFF_TXN_MAX_PENDING): however many logins start at once, and each sees
 * only the cookies the browser had before any of them answered, a browser
 * never holds more than N, so the Cookie header stays bounded (one name per
 * login would let concurrent logins pile up past LimitRequestFieldSize, and
 * httpd would then refuse every request to the host with 400 until they
 * expire). */

#if BFF_TXN_MAX_PENDING < 1 || BFF_TXN_MAX_PENDING > 10
#error "slot names are one digit"
#endif

#define TXN_SCAN_MAX 16 /* pending-login cookies looked at per request */

static const char *txn_binding(request_rec *r, const bff_site_t *site, const char *cookie)
{
    return bff_txn_binding(r->pool, cookie, site->issuer, site->client_id, site->redirect_uri);
}

void bff_pending_expire(request_rec *r, const char *name)
{
    bff_respond_cookie(r, name, "", 0, BFF_SAMESITE_LAX);
}

/* The slot a cookie name is, or -1 (a per-login name of earlier releases). */
static int slot_of(const bff_site_t *site, const char *name)
{
    apr_size_t n = strlen(site->txn_cookie_prefix);

    if (strncmp(name, site->txn_cookie_prefix, n) || name[n] < '0'
        || name[n] >= '0' + BFF_TXN_MAX_PENDING || name[n + 1]) {
        return -1;
    }
    return name[n] - '0';
}

static const char *slot_name(request_rec *r, const bff_site_t *site, int i)
{
    return apr_psprintf(r->pool, "%s%d", site->txn_cookie_prefix, i);
}

/* What a slot holds, in the order a new login prefers to take it: nothing
 * usable (not sent, expired, junk), a cookie that does not open here (another
 * site on another port of this host name with the same BFFCookieName, or a
 * key no longer in BFFCryptoKey), a live pending login of this site. */
typedef enum { SLOT_FREE = 0, SLOT_FOREIGN = 1, SLOT_LIVE = 2 } slot_use_e;

/* What the browser's slot cookies hold. */
typedef struct {
    slot_use_e use[BFF_TXN_MAX_PENDING];
    apr_int64_t created[BFF_TXN_MAX_PENDING]; /* oldest live pending login per slot */
    int expired[BFF_TXN_MAX_PENDING];
} slots_t;

/* Read the slot cookies; this site's cookies of earlier releases (the
 * binder, per-login names) are deleted on the way. */
static void scan_slots(request_rec *r, const bff_site_t *site, slots_t *sl)
{
    const char *hdr = apr_table_get(r->headers_in, "Cookie");
    apr_array_header_t *all = NULL;
    const bff_cookie_pair_t *c;
    apr_int64_t now = bff_util_now();
    bff_txn_t *t;
    int i, k;

    memset(sl, 0, sizeof(*sl));
    if (hdr && bff_cookie_get(r->pool, hdr, site->txn_cookie_name)) {
        bff_pending_expire(r, site->txn_cookie_name); /* the binder of earlier releases */
    }
    if (hdr) {
        all = bff_cookie_with_prefix(r->pool, hdr, site->txn_cookie_prefix, TXN_SCAN_MAX);
    }
    c = all ? (const bff_cookie_pair_t *)all->elts : NULL;
    for (k = 0; all && k < all->nelts; ++k) {
        apr_status_t rv = bff_txn_from_cookie(r->pool, site->keyring,
                                              txn_binding(r, site, c[k].name), c[k].value, NULL,
                                              now, &t);
        if ((i = slot_of(site, c[k].name)) < 0) {
            if (rv == APR_SUCCESS || rv == APR_TIMEUP) {
                bff_pending_expire(r, c[k].name); /* a per-login name of earlier releases */
            }
        }
        else if (rv == APR_SUCCESS) {
            if (sl->use[i] != SLOT_LIVE || t->created < sl->created[i]) {
                sl->created[i] = t->created;
            }
            sl->use[i] = SLOT_LIVE;
        }
        else if (rv == APR_TIMEUP) {
            sl->expired[i] = 1;
        }
        else if (rv != APR_EINVAL && sl->use[i] == SLOT_FREE) {
            sl->use[i] = SLOT_FOREIGN;
        }
    }
}

/* The slot for a new pending login with this state: the one H(state) picks
 * if free, else the next free one, so logins that start at once (and all see
 * the same cookies) spread over the slots; with none free, a slot another
 * site's cookie holds; else the one with the oldest pending login, so that
 * the newest N logins of sequential tabs complete. Expired cookies in the
 * other slots are deleted on the way. */
static int choose_slot(request_rec *r, const bff_site_t *site, const char *state)
{
    slots_t sl;
    unsigned char h[32];
    int i, k, start, pick = -1;
    slot_use_e want;

    scan_slots(r, site, &sl);
    start = (APR_SUCCESS == bff_util_sha256(state, strlen(state), h)) ? h[0] % BFF_TXN_MAX_PENDING
                                                                      : 0;
    for (want = SLOT_FREE; pick < 0 && want <= SLOT_FOREIGN; ++want) {
        for (k = 0; pick < 0 && k < BFF_TXN_MAX_PENDING; ++k) {
            if (sl.use[(start + k) % BFF_TXN_MAX_PENDING] == want) {
                pick = (start + k) % BFF_TXN_MAX_PENDING;
            }
        }
    }
    if (pick < 0) {
        for (pick = 0, i = 1; i < BFF_TXN_MAX_PENDING; ++i) {
            if (sl.created[i] < sl.created[pick]) {
                pick = i;
            }
        }
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BFF00252: %d logins pending in this "
                      "browser, the oldest is dropped",
                      BFF_TXN_MAX_PENDING);
    }
    for (i = 0; i < BFF_TXN_MAX_PENDING; ++i) {
        if (sl.expired[i] && sl.use[i] == SLOT_FREE && i != pick) {
            bff_pending_expire(r, slot_name(r, site, i));
        }
    }
    return pick;
}

apr_status_t bff_pending_seal(request_rec *r, const bff_site_t *site, const bff_txn_t *t,
                              const char **name, const char **value)
{
    *name = slot_name(r, site, choose_slot(r, site, t->state));
    return bff_txn_to_cookie(r->pool, site->keyring, txn_binding(r, site, *name), t, value);
}

apr_status_t bff_pending_open(request_rec *r, const bff_site_t *site, const char *state,
                              const char **name, bff_txn_t **t)
{
    const char *hdr = apr_table_get(r->headers_in, "Cookie");
    apr_array_header_t *all;
    const bff_cookie_pair_t *c;
    apr_int64_t now = bff_util_now();
    apr_status_t rv, found = APR_NOTFOUND;
    int k;

    *t = NULL;
    *name = NULL;
    all = hdr ? bff_cookie_with_prefix(r->pool, hdr, site->txn_cookie_prefix, TXN_SCAN_MAX) : NULL;
    c = all ? (const bff_cookie_pair_t *)all->elts : NULL;
    for (k = 0; all && k < all->nelts; ++k) {
        if (slot_of(site, c[k].name) < 0) {
            continue;
        }
        rv = bff_txn_from_cookie(r->pool, site->keyring, txn_binding(r, site, c[k].name),
                                 c[k].value, state, now, t);
        if (rv == APR_SUCCESS) {
            *name = c[k].name;
            return APR_SUCCESS;
        }
        if (rv == APR_TIMEUP) { /* it holds this state, expired */
            *name = c[k].name;
            found = APR_TIMEUP;
        }
        else if (rv != APR_EINVAL && found == APR_NOTFOUND) {
            found = rv; /* EINVAL: another login, or junk */
        }
    }
    return found;
}
