/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_strings.h>

#include "bff_store_journal.h"

static bff_store_journal_t *mkjournal(apr_pool_t *p, int n)
{
    bff_store_journal_t *j = NULL;

    assert_int_equal(bff_store_journal_create(p, n, NULL, &j), APR_SUCCESS);
    assert_int_equal(bff_store_journal_child_init(j, p), APR_SUCCESS);
    return j;
}

/* take everything noted for slot under claim; returns how many */
static int take_all(bff_store_journal_t *j, int slot, apr_uint64_t claim, apr_pool_t *p,
                    char (**keys)[BFF_STORE_JOURNAL_KEY_MAX], int *lost)
{
    int n;

    assert_int_equal(bff_store_journal_take(j, slot, claim, p, BFF_STORE_JOURNAL_KEYS, keys, &n,
                                            lost),
                     APR_SUCCESS);
    return n;
}

/* Slots are named after servers: the same name finds the same slot (also
 * from another store, or after the server list changed), a full journal
 * reuses a slot with nothing noted, never one with notes. */
static void test_slots(void **state)
{
    apr_pool_t *p = *state;
    bff_store_journal_t *j = mkjournal(p, 2);

    assert_int_equal(bff_store_journal_slot(j, "10.0.0.1:11211"), 0);
    assert_int_equal(bff_store_journal_slot(j, "10.0.0.2:11211"), 1);
    assert_int_equal(bff_store_journal_slot(j, "10.0.0.1:11211"), 0);
    bff_store_journal_note(j, 0, "s:a");
    assert_int_equal(bff_store_journal_slot(j, "10.0.0.3:11211"), 1); /* 2 had nothing */
    bff_store_journal_note(j, 1, "s:b");
    assert_int_equal(bff_store_journal_slot(j, "10.0.0.4:11211"), -1);
    assert_int_equal(bff_store_journal_slot(j, "10.0.0.1:11211"), 0);
    assert_true(bff_store_journal_pending(j, 0));
    assert_int_equal(bff_store_journal_slot(j, NULL), -1);
    assert_int_equal(bff_store_journal_slot(j,
                                            apr_psprintf(p, "%0*d", BFF_STORE_JOURNAL_NAME_MAX, 1)),
                     -1);
}

/* Notes are per slot, in order, each key once among those not yet taken;
 * done forgets the first n and keeps the ones made meanwhile, also a key
 * noted again while its earlier note was being replayed. */
static void test_note_take_done(void **state)
{
    apr_pool_t *p = *state;
    bff_store_journal_t *j = mkjournal(p, 3);
    char(*keys)[BFF_STORE_JOURNAL_KEY_MAX];
    apr_uint64_t claim, other;
    int lost;

    assert_false(bff_store_journal_pending(j, 0));
    bff_store_journal_note(j, 1, "s:a");
    bff_store_journal_note(j, 1, "s:b");
    bff_store_journal_note(j, 1, "s:a"); /* again: one delete undoes both */
    assert_false(bff_store_journal_pending(j, 0));
    assert_true(bff_store_journal_pending(j, 1));
    assert_false(bff_store_journal_pending(j, 2));
    assert_int_equal(bff_store_journal_claim(j, 1, &claim), APR_SUCCESS);
    assert_int_equal(take_all(j, 1, claim, p, &keys, &lost), 2);
    assert_string_equal(keys[0], "s:a");
    assert_string_equal(keys[1], "s:b");
    assert_int_equal(lost, 0);
    bff_store_journal_note(j, 1, "s:c"); /* while the replay runs */
    bff_store_journal_note(j, 1, "s:a"); /* written again after its delete */
    assert_int_equal(bff_store_journal_done(j, 1, claim, 2, 0), APR_SUCCESS);
    assert_true(bff_store_journal_pending(j, 1));
    assert_int_equal(take_all(j, 1, claim, p, &keys, &lost), 2);
    assert_string_equal(keys[0], "s:c");
    assert_string_equal(keys[1], "s:a");
    assert_int_equal(bff_store_journal_done(j, 1, claim, 2, 0), APR_SUCCESS);
    assert_false(bff_store_journal_pending(j, 1));
    assert_int_equal(take_all(j, 1, claim, p, &keys, &lost), 0);
    assert_null(keys);
    bff_store_journal_release(j, 1, claim);
    /* a released claim takes and forgets nothing */
    bff_store_journal_note(j, 1, "s:d");
    assert_int_equal(bff_store_journal_done(j, 1, claim, 1, 0), APR_EBUSY);
    assert_int_equal(bff_store_journal_claim(j, 1, &other), APR_SUCCESS);
    assert_int_equal(bff_store_journal_take(j, 1, claim, p, 5, &keys, &lost, &lost), APR_EBUSY);
    assert_true(bff_store_journal_pending(j, 1));

    /* bad input is ignored, never written out of bounds */
    bff_store_journal_note(j, -1, "s:x");
    bff_store_journal_note(j, 3, "s:x");
    bff_store_journal_note(j, 0, NULL);
    bff_store_journal_note(j, 0, apr_psprintf(p, "%0*d", BFF_STORE_JOURNAL_KEY_MAX, 7));
    assert_false(bff_store_journal_pending(j, 0));
    assert_false(bff_store_journal_pending(j, 3));
    assert_false(bff_store_journal_pending(j, -1));
    assert_int_equal(bff_store_journal_claim(j, 5, &claim), APR_EINVAL);
    assert_int_equal(bff_store_journal_create(p, 0, NULL, &j), APR_EINVAL);
}

/* A full journal counts what it could not note; the slot stays pending
 * until the loss has been reported (done with the count take gave). */
static void test_full(void **state)
{
    apr_pool_t *p = *state;
    bff_store_journal_t *j = mkjournal(p, 1);
    char(*keys)[BFF_STORE_JOURNAL_KEY_MAX];
    apr_uint64_t claim;
    int i, n, lost;

    assert_int_equal(bff_store_journal_claim(j, 0, &claim), APR_SUCCESS);
    for (i = 0; i < BFF_STORE_JOURNAL_KEYS + 5; i++) {
        bff_store_journal_note(j, 0, apr_psprintf(p, "s:%d", i));
    }
    assert_int_equal(bff_store_journal_take(j, 0, claim, p, 10, &keys, &n, &lost), APR_SUCCESS);
    assert_int_equal(n, 10);
    assert_int_equal(lost, 5);
    assert_string_equal(keys[9], "s:9");
    bff_store_journal_done(j, 0, claim, 10, lost);
    assert_int_equal(take_all(j, 0, claim, p, &keys, &lost), BFF_STORE_JOURNAL_KEYS - 10);
    assert_int_equal(lost, 0);
    assert_string_equal(keys[0], "s:10");
    bff_store_journal_done(j, 0, claim, BFF_STORE_JOURNAL_KEYS - 10, 0);
    assert_false(bff_store_journal_pending(j, 0));

    /* only lost writes: still pending, so that the next replay says so */
    for (i = 0; i < BFF_STORE_JOURNAL_KEYS + 1; i++) {
        bff_store_journal_note(j, 0, apr_psprintf(p, "t:%d", i));
    }
    assert_int_equal(take_all(j, 0, claim, p, &keys, &lost), BFF_STORE_JOURNAL_KEYS);
    bff_store_journal_done(j, 0, claim, BFF_STORE_JOURNAL_KEYS, 0);
    assert_true(bff_store_journal_pending(j, 0));
    assert_int_equal(take_all(j, 0, claim, p, &keys, &lost), 0);
    assert_int_equal(lost, 1);
    bff_store_journal_done(j, 0, claim, 0, lost);
    assert_false(bff_store_journal_pending(j, 0));
}

/* One replayer at a time per slot; a claim taken over no longer takes or
 * forgets notes, nor ends the new holder's claim. */
static void test_claim(void **state)
{
    apr_pool_t *p = *state;
    bff_store_journal_t *j = mkjournal(p, 2);
    char(*keys)[BFF_STORE_JOURNAL_KEY_MAX];
    apr_uint64_t c0, c1, c2;
    int lost;

    assert_int_equal(bff_store_journal_claim(j, 0, &c0), APR_SUCCESS);
    assert_int_equal(bff_store_journal_claim(j, 0, &c1), APR_EBUSY);
    assert_int_equal(bff_store_journal_claim(j, 1, &c1), APR_SUCCESS);
    bff_store_journal_release(j, 0, c0);
    assert_int_equal(bff_store_journal_claim(j, 0, &c2), APR_SUCCESS);
    assert_true(c2 != c0 && c2 != c1);
    bff_store_journal_note(j, 0, "s:a");
    assert_int_equal(bff_store_journal_done(j, 0, c0, 1, 0), APR_EBUSY); /* an old claim */
    bff_store_journal_release(j, 0, c0);
    assert_true(bff_store_journal_pending(j, 0));
    assert_int_equal(bff_store_journal_claim(j, 0, &c1), APR_EBUSY);
    assert_int_equal(take_all(j, 0, c2, p, &keys, &lost), 1);
    assert_int_equal(bff_store_journal_done(j, 0, c2, 1, 0), APR_SUCCESS);
    assert_false(bff_store_journal_pending(j, 0));
}

/* The processes of a node share it: what a child notes, its parent (and
 * every other child) sees; a claim made in one excludes the others while
 * that process lives, and is taken over once it is gone. */
static void test_shared_by_processes(void **state)
{
    apr_pool_t *p = *state;
    bff_store_journal_t *j = mkjournal(p, 2);
    char(*keys)[BFF_STORE_JOURNAL_KEY_MAX];
    int status = -1, lost, fds[2], go[2];
    apr_uint64_t claim, mine;
    char c;
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    assert_int_equal(pipe(go), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        apr_pool_t *cp;
        apr_pool_create(&cp, NULL);
        bff_store_journal_child_init(j, cp);
        bff_store_journal_note(j, 1, "s:from-child");
        /* then stays alive until the parent has looked */
        if (bff_store_journal_claim(j, 1, &claim) != APR_SUCCESS || write(fds[1], "c", 1) != 1) {
            _exit(1);
        }
        if (read(go[0], &c, 1) != 1) {
            _exit(2);
        }
        _exit(0);
    }
    assert_int_equal(read(fds[0], &c, 1), 1);
    assert_true(bff_store_journal_pending(j, 1));
    assert_int_equal(bff_store_journal_claim(j, 1, &mine), APR_EBUSY); /* the child's */
    assert_int_equal(write(go[1], "x", 1), 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(bff_store_journal_claim(j, 1, &mine), APR_SUCCESS); /* it is gone */
    assert_int_equal(take_all(j, 1, mine, p, &keys, &lost), 1);
    assert_string_equal(keys[0], "s:from-child");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slots, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_note_take_done, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_full, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_claim, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_shared_by_processes, unit_pool_setup,
                                        unit_pool_teardown),
    };

    return unit_run("store_journal", tests);
}
