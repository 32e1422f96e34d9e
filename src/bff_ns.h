/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the store namespace table and the one function that derives every store key.
 */
#ifndef BFF_NS_H
#define BFF_NS_H

#include <apr_pools.h>

#include "bff_crypto.h"

/* The namespaces of the session store, in one table, and the one function
 * that derives an entry's store key. Every key is bound to its site (the
 * origin of BFFRedirectURI and the client id, see bff_ns_site()), so two
 * virtual hosts sharing a store and a key never meet.
 *
 * Two kinds of derivation:
 *  - ring-keyed: prefix + hex(HMAC-SHA256(store key of ring entry i, ...)).
 *    Used where the store key itself must not let someone who reads the
 *    store learn or test the identifier (a sub is guessable). After a key
 *    rotation the entry may sit under any entry's key: read under each key
 *    of the ring (i = 0 .. bff_ns_key_count() - 1), write under i = 0, and
 *    remove the older copy after a rewrite.
 *  - fixed: the same key on every node whatever its ring (SHA-256, or the
 *    prefix in front of a value that is itself such a hash). For entries
 *    that hold no secret and must be single-use or mutually exclusive
 *    across nodes, also while a rolling rotation leaves nodes with
 *    different first keys: add() stays atomic across them. (An index's
 *    lock is named after the index's key under ring entry 0, so it is
 *    only as shared as the first key: during a rotation two nodes may lock
 *    one index under two names; docs/sessions.md says what that costs.)
 *
 * prefix    derivation (input)                        sealed with     TTL
 * s:        ring-keyed (site, session handle)          ring, AAD=key   idle/lifetime end
 * x:sid:    ring-keyed (site, issuer, provider sid)    ring, AAD=key   latest session end
 * x:sub:    ring-keyed (site, issuer, sub)             ring, AAD=key   latest session end
 * l:        fixed: prefix + what it guards (a session   -               lock TTL
 *           handle; an index's key under ring entry 0)
 * f:        fixed: prefix + session handle              -               a few seconds
 * j:        fixed: SHA-256(site, issuer, jti)           -               token max age
 * u:        fixed: SHA-256(site, issuer, login state)   -               the login's expiry
 * c:        fixed: SHA-256(site, issuer, scope)         ring, AAD=key   the token's expiry
 *           (the client's own access token, BFFTokenRelay client: shared by every
 *           node, so the key cannot depend on the ring; the value is sealed with the
 *           first ring key and opens under any key of the ring; its lock is l: and
 *           its failure marker f: + this key)
 * (t: login transactions are not store entries any more: they travel in a
 * sealed cookie, and u: makes each usable once; see the handler.)
 *
 * A session handle is hex(SHA-256(site, session id)): it names a session
 * without the cookie value and without the ring, so indexes, locks and
 * failure markers survive a key rotation and a record's move to the new
 * key. It is not a credential: the record's key needs the ring as well. */
typedef enum {
    BFF_NS_SESSION = 0,
    BFF_NS_INDEX_SID,
    BFF_NS_INDEX_SUB,
    BFF_NS_LOCK,
    BFF_NS_REFRESH_FAIL,
    BFF_NS_JTI,
    BFF_NS_TXN_USED,
    BFF_NS_CLIENT_TOKEN,
    BFF_NS_COUNT
} bff_ns_e;

typedef struct {
    const char *prefix;
    int ring_keyed;   /* 1: one key per ring entry; 0: the same on every node */
    const char *name; /* for logs and docs */
} bff_ns_info_t;

/* NULL for a value outside the enum. */
const bff_ns_info_t *bff_ns_info(bff_ns_e ns);

/* The site binding: origin and client id, length-prefixed so no pair of
 * values maps to another pair's string. Also the HKDF context of the
 * site's keys (bff_crypto_keyring_add_ctx). */
const char *bff_ns_site(apr_pool_t *p, const char *origin, const char *client_id);

/* 64 hex digits; NULL when an argument is NULL. */
const char *bff_ns_handle(apr_pool_t *p, const char *site, const char *session_id);

/* How many store keys an entry of ns may sit under: the ring's size for
 * ring-keyed namespaces, 1 for fixed ones. */
int bff_ns_key_count(bff_ns_e ns, const bff_keyring_t *ring);

/* The store key of an entry of ns for ring entry i (ignored by fixed
 * namespaces). id is: the session handle (s:, l:, f:), "issuer\nvalue"
 * (x:sid:, x:sub:), "issuer\njti" (j:), "issuer\nstate" (u:), "issuer\nscope" (c:), or
 * for l: and f: an index key or a c: key. NULL for a
 * bad argument (unknown ns, i out of the ring, NULL site or id). */
const char *bff_ns_key(apr_pool_t *p, const bff_keyring_t *ring, bff_ns_e ns, int i,
                       const char *site, const char *id);

#endif /* BFF_NS_H */
