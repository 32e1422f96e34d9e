/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <string.h>

#include <apr_strings.h>

#include "bff_crypto.h"
#include "bff_ns.h"

static const char K1[] = "0123456789abcdef0123456789abcdef";
static const char K2[] = "another secret, long enough";
static const char ID[] = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE";

static bff_keyring_t *ring_of(apr_pool_t *p, const char *site, const char *a, const char *b)
{
    bff_keyring_t *ring;

    assert_int_equal(bff_crypto_keyring_create(p, &ring), APR_SUCCESS);
    assert_int_equal(bff_crypto_keyring_add_ctx(ring, a, strlen(a), site), APR_SUCCESS);
    if (b) {
        assert_int_equal(bff_crypto_keyring_add_ctx(ring, b, strlen(b), site), APR_SUCCESS);
    }
    return ring;
}

static int is_hex64(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static void test_table(void **state)
{
    int ns, other;
    (void)state;

    for (ns = 0; ns < BFF_NS_COUNT; ++ns) {
        const bff_ns_info_t *a = bff_ns_info((bff_ns_e)ns);
        assert_non_null(a);
        assert_non_null(a->prefix);
        assert_non_null(a->name);
        /* No prefix is a prefix of another: namespaces never overlap. */
        for (other = 0; other < BFF_NS_COUNT; ++other) {
            const bff_ns_info_t *b = bff_ns_info((bff_ns_e)other);
            if (other != ns) {
                assert_int_not_equal(strncmp(a->prefix, b->prefix, strlen(a->prefix)), 0);
            }
        }
    }
    assert_null(bff_ns_info(BFF_NS_COUNT));
    assert_null(bff_ns_info((bff_ns_e)-1));
    /* Rotation semantics per namespace, as docs/sessions.md describes. */
    assert_true(bff_ns_info(BFF_NS_SESSION)->ring_keyed);
    assert_true(bff_ns_info(BFF_NS_INDEX_SID)->ring_keyed);
    assert_true(bff_ns_info(BFF_NS_INDEX_SUB)->ring_keyed);
    assert_false(bff_ns_info(BFF_NS_JTI)->ring_keyed);
    assert_false(bff_ns_info(BFF_NS_LOCK)->ring_keyed);
    assert_false(bff_ns_info(BFF_NS_REFRESH_FAIL)->ring_keyed);
    assert_false(bff_ns_info(BFF_NS_TXN_USED)->ring_keyed);
}

static void test_site_and_handle(void **state)
{
    apr_pool_t *p = *state;
    const char *a = bff_ns_site(p, "https://a.example", "client");
    const char *h;

    /* Length-prefixed: moving a character between origin and client id
     * gives another site. */
    assert_string_not_equal(a, bff_ns_site(p, "https://a.example", "c"));
    assert_string_not_equal(bff_ns_site(p, "https://a.examplec", "lient"), a);
    assert_null(bff_ns_site(p, NULL, "client"));
    assert_null(bff_ns_site(p, "https://a.example", NULL));

    h = bff_ns_handle(p, a, ID);
    assert_non_null(h);
    assert_true(is_hex64(h));
    assert_null(strstr(h, ID));
    assert_string_equal(h, bff_ns_handle(p, a, ID));
    assert_string_not_equal(h, bff_ns_handle(p, bff_ns_site(p, "https://b.example", "client"), ID));
    assert_string_not_equal(h, bff_ns_handle(p, bff_ns_site(p, "https://a.example", "other"), ID));
    assert_null(bff_ns_handle(p, NULL, ID));
    assert_null(bff_ns_handle(p, a, NULL));
}

/* Ring-keyed namespaces: one key per ring entry; the same entry i gives the
 * same key in a ring where that secret sits elsewhere only by its secret. */
static void test_ring_keyed(void **state)
{
    apr_pool_t *p = *state;
    const char *site = bff_ns_site(p, "https://a.example", "client");
    bff_keyring_t *old = ring_of(p, site, K1, NULL);
    bff_keyring_t *rotated = ring_of(p, site, K2, K1);
    const char *h = bff_ns_handle(p, site, ID);
    bff_ns_e ns;

    for (ns = BFF_NS_SESSION; ns <= BFF_NS_INDEX_SUB; ++ns) {
        const char *prefix = bff_ns_info(ns)->prefix;
        const char *k_old = bff_ns_key(p, old, ns, 0, site, h);
        const char *k_new = bff_ns_key(p, rotated, ns, 0, site, h);
        assert_int_equal(bff_ns_key_count(ns, old), 1);
        assert_int_equal(bff_ns_key_count(ns, rotated), 2);
        assert_non_null(k_old);
        assert_int_equal(strncmp(k_old, prefix, strlen(prefix)), 0);
        assert_true(is_hex64(k_old + strlen(prefix)));
        assert_string_not_equal(k_old, k_new);
        /* Entry 1 of the rotated ring is the old key: entries written
         * before the rotation are found. */
        assert_string_equal(k_old, bff_ns_key(p, rotated, ns, 1, site, h));
        assert_null(bff_ns_key(p, rotated, ns, 2, site, h));
        assert_null(bff_ns_key(p, rotated, ns, -1, site, h));
        /* Bound to the site. */
        assert_string_not_equal(k_old, bff_ns_key(p, old, ns, 0,
                                                  bff_ns_site(p, "https://a.example", "x"), h));
    }
}

/* Fixed namespaces: the same key on every node, whatever its ring. */
static void test_fixed(void **state)
{
    apr_pool_t *p = *state;
    const char *site = bff_ns_site(p, "https://a.example", "client");
    const char *site_b = bff_ns_site(p, "https://b.example", "client");
    bff_keyring_t *old = ring_of(p, site, K1, NULL);
    bff_keyring_t *rotated = ring_of(p, site, K2, K1);
    const char *h = bff_ns_handle(p, site, ID);
    const char *j;

    assert_int_equal(bff_ns_key_count(BFF_NS_JTI, rotated), 1);
    assert_int_equal(bff_ns_key_count(BFF_NS_LOCK, rotated), 1);
    assert_int_equal(bff_ns_key_count(BFF_NS_REFRESH_FAIL, rotated), 1);
    assert_int_equal(bff_ns_key_count(BFF_NS_COUNT, rotated), 0);

    j = bff_ns_key(p, old, BFF_NS_JTI, 0, site, "https://op\njti-1");
    assert_non_null(j);
    assert_int_equal(strncmp(j, "j:", 2), 0);
    assert_true(is_hex64(j + 2));
    assert_string_equal(j, bff_ns_key(p, rotated, BFF_NS_JTI, 0, site, "https://op\njti-1"));
    assert_string_equal(j, bff_ns_key(p, NULL, BFF_NS_JTI, 0, site, "https://op\njti-1"));
    assert_string_not_equal(j, bff_ns_key(p, old, BFF_NS_JTI, 0, site, "https://op\njti-2"));
    assert_string_not_equal(j, bff_ns_key(p, old, BFF_NS_JTI, 0, site_b, "https://op\njti-1"));

    assert_string_equal(bff_ns_key(p, old, BFF_NS_LOCK, 0, site, h), apr_pstrcat(p, "l:", h, NULL));
    assert_string_equal(bff_ns_key(p, rotated, BFF_NS_LOCK, 1, site, h),
                        apr_pstrcat(p, "l:", h, NULL));
    assert_string_equal(bff_ns_key(p, rotated, BFF_NS_REFRESH_FAIL, 0, site, h),
                        apr_pstrcat(p, "f:", h, NULL));

    /* A login's single-use marker: the same on nodes in a rotation, one per
     * site and state. */
    j = bff_ns_key(p, old, BFF_NS_TXN_USED, 0, site, "https://op\nstate-1");
    assert_non_null(j);
    assert_int_equal(strncmp(j, "u:", 2), 0);
    assert_true(is_hex64(j + 2));
    assert_string_equal(j, bff_ns_key(p, rotated, BFF_NS_TXN_USED, 0, site, "https://op\nstate-1"));
    assert_string_not_equal(j, bff_ns_key(p, old, BFF_NS_TXN_USED, 0, site, "https://op\nstate-2"));
    assert_string_not_equal(j,
                            bff_ns_key(p, old, BFF_NS_TXN_USED, 0, site_b, "https://op\nstate-1"));
    assert_string_not_equal(j, bff_ns_key(p, old, BFF_NS_JTI, 0, site, "https://op\nstate-1"));

    /* A client token: one key per site, issuer and scope, the same on
     * every node; its lock and failure marker are named after it. */
    j = bff_ns_key(p, old, BFF_NS_CLIENT_TOKEN, 0, site, "https://op\napi:read");
    assert_non_null(j);
    assert_int_equal(strncmp(j, "c:", 2), 0);
    assert_true(is_hex64(j + 2));
    assert_int_equal(bff_ns_key_count(BFF_NS_CLIENT_TOKEN, rotated), 1);
    assert_string_equal(j, bff_ns_key(p, rotated, BFF_NS_CLIENT_TOKEN, 0, site,
                                      "https://op\napi:read"));
    assert_string_not_equal(j, bff_ns_key(p, old, BFF_NS_CLIENT_TOKEN, 0, site, "https://op\n"));
    assert_string_not_equal(j, bff_ns_key(p, old, BFF_NS_CLIENT_TOKEN, 0, site,
                                          "https://op2\napi:read"));
    assert_string_not_equal(j, bff_ns_key(p, old, BFF_NS_CLIENT_TOKEN, 0, site_b,
                                          "https://op\napi:read"));
    assert_string_not_equal(j,
                            bff_ns_key(p, old, BFF_NS_TXN_USED, 0, site, "https://op\napi:read"));
    assert_string_equal(bff_ns_key(p, old, BFF_NS_LOCK, 0, site, j), apr_pstrcat(p, "l:", j, NULL));
    assert_false(bff_ns_info(BFF_NS_CLIENT_TOKEN)->ring_keyed);

    assert_null(bff_ns_key(p, old, BFF_NS_JTI, 0, NULL, "x"));
    assert_null(bff_ns_key(p, old, BFF_NS_JTI, 0, site, NULL));
    assert_null(bff_ns_key(p, old, BFF_NS_COUNT, 0, site, "x"));
}

/* Per-site keys: a record sealed for one site does not open for another
 * configured with the same secret. */
static void test_site_keys(void **state)
{
    apr_pool_t *p = *state;
    const char *sa = bff_ns_site(p, "https://a.example", "client-a");
    const char *sb = bff_ns_site(p, "https://a.example:8443", "client-b");
    bff_keyring_t *ra = ring_of(p, sa, K1, NULL), *rb = ring_of(p, sb, K1, NULL);
    bff_keyring_t *ra2 = ring_of(p, sa, K1, NULL);
    unsigned char *rec, *pt;
    apr_size_t len, ptlen;

    assert_int_equal(bff_crypto_seal(p, ra, "k", 1, "secret", 6, &rec, &len), APR_SUCCESS);
    assert_int_not_equal(bff_crypto_open(p, rb, "k", 1, rec, len, &pt, &ptlen, NULL), APR_SUCCESS);
    assert_int_equal(bff_crypto_open(p, ra2, "k", 1, rec, len, &pt, &ptlen, NULL), APR_SUCCESS);
    assert_string_equal((const char *)pt, "secret");
    /* Store keys differ as well, for the same id. */
    assert_string_not_equal(bff_crypto_store_key(p, ra, 0, "s:", "x"),
                            bff_crypto_store_key(p, rb, 0, "s:", "x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_table, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_site_and_handle, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_ring_keyed, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_fixed, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_site_keys, unit_pool_setup, unit_pool_teardown),
    };
    return unit_run("ns", tests);
}
