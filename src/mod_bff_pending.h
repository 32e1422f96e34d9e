/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: pending logins, sealed in the browser's "<cookie>-tx.N" cookies (a fixed set of slots):
 * which slot a new login takes, and which slot holds the login a callback completes.
 */
#ifndef MOD_BFF_PENDING_H
#define MOD_BFF_PENDING_H

#include <httpd.h>

#include "mod_bff_config.h"
#include "mod_bff_site.h"
#include "bff_session.h"

/* Seal a new pending login into the slot it takes: *name and *value are
 * the cookie to set (SameSite=Lax, BFF_TXN_LIFETIME). Expired slots and
 * cookies of earlier releases are deleted on the way. */
apr_status_t bff_pending_seal(request_rec *r, const bff_site_t *site, const bff_txn_t *t,
                              const char **name, const char **value);

/* The pending login that this browser started with state: the slot cookie
 * that opens and holds it. *name is that cookie's name. APR_NOTFOUND: no
 * slot holds it; APR_TIMEUP: expired (*name set); anything else: not found,
 * and a slot cookie did not open here (sealed for another site or client,
 * with a key not in BFFCryptoKey, or altered). */
apr_status_t bff_pending_open(request_rec *r, const bff_site_t *site, const char *state,
                              const char **name, bff_txn_t **t);

/* Delete a pending-login cookie. */
void bff_pending_expire(request_rec *r, const char *name);

#endif /* MOD_BFF_PENDING_H */
