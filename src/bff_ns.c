/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the store namespace table, the site binding, session handles and the derivation of
 * every store key.
 */
#include <string.h>

#include <apr_strings.h>

#include "bff_ns.h"
#include "bff_util.h"

/* Changing a prefix or a derivation invalidates the entries of that
 * namespace (sessions: every user signs in again). */
static const bff_ns_info_t ns_table[BFF_NS_COUNT] = {
    [BFF_NS_SESSION] = { "s:", 1, "session" },
    [BFF_NS_INDEX_SID] = { "x:sid:", 1, "sid index" },
    [BFF_NS_INDEX_SUB] = { "x:sub:", 1, "sub index" },
    [BFF_NS_LOCK] = { "l:", 0, "lock" },
    [BFF_NS_REFRESH_FAIL] = { "f:", 0, "refresh failure marker" },
    [BFF_NS_JTI] = { "j:", 0, "logout token jti" },
    [BFF_NS_TXN_USED] = { "u:", 0, "login single-use marker" },
    [BFF_NS_CLIENT_TOKEN] = { "c:", 0, "client token" },
};

const bff_ns_info_t *bff_ns_info(bff_ns_e ns)
{
    return (int)ns >= 0 && ns < BFF_NS_COUNT ? &ns_table[ns] : NULL;
}

/* "<len>:<a><b>": unambiguous whatever a holds. */
static const char *join(apr_pool_t *p, const char *a, const char *b)
{
    return apr_psprintf(p, "%" APR_SIZE_T_FMT ":%s%s", strlen(a), a, b);
}

const char *bff_ns_site(apr_pool_t *p, const char *origin, const char *client_id)
{
    if (!origin || !client_id) {
        return NULL;
    }
    return join(p, origin, client_id);
}

static const char *sha256_hex(apr_pool_t *p, const char *label, const char *site, const char *id)
{
    const char *in = apr_pstrcat(p, label, "\n", join(p, site, id), NULL);
    unsigned char md[32];

    if (APR_SUCCESS != bff_util_sha256(in, strlen(in), md)) {
        return NULL;
    }
    return bff_util_hex(p, md, sizeof(md));
}

const char *bff_ns_handle(apr_pool_t *p, const char *site, const char *session_id)
{
    if (!site || !session_id) {
        return NULL;
    }
    return sha256_hex(p, "mod_bff session handle", site, session_id);
}

int bff_ns_key_count(bff_ns_e ns, const bff_keyring_t *ring)
{
    const bff_ns_info_t *info = bff_ns_info(ns);

    if (!info) {
        return 0;
    }
    return info->ring_keyed ? bff_crypto_keyring_count(ring) : 1;
}

const char *bff_ns_key(apr_pool_t *p, const bff_keyring_t *ring, bff_ns_e ns, int i,
                       const char *site, const char *id)
{
    const bff_ns_info_t *info = bff_ns_info(ns);
    const char *h;

    if (!info || !site || !id) {
        return NULL;
    }
    if (info->ring_keyed) {
        if (i < 0 || i >= bff_crypto_keyring_count(ring)) {
            return NULL;
        }
        return bff_crypto_store_key(p, ring, i, info->prefix, join(p, site, id));
    }
    switch (ns) {
    case BFF_NS_LOCK:
    case BFF_NS_REFRESH_FAIL:
        /* id is already a site-bound hash (a handle, an index key or a
         * client token's key). */
        return apr_pstrcat(p, info->prefix, id, NULL);
    default:
        h = sha256_hex(p, info->prefix, site, id);
        return h ? apr_pstrcat(p, info->prefix, h, NULL) : NULL;
    }
}
