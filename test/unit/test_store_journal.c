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

/* take everything noted for server; returns how many, keys in *keys */
static int take_all(bff_store_journal_t *j, int server, apr_pool_t *p,
                    char (**keys)[BFF_STORE_JOURNAL_KEY_MAX], int *lost)
{
    int n;

    bff_store_journal_take(j, server, p, BFF_STORE_JOURNAL_KEYS, keys, &n, lost);
    return n;
}

/* Notes are per server, in order, each key once; done forgets the first n
 * and keeps the ones made meanwhile. */
static void test_note_take_done(void **state)
{
    apr_pool_t *p = *state;
    bff_store_journal_t *j = mkjournal(p, 3);
    char(*keys)[BFF_STORE_JOURNAL_KEY_MAX];
    apr_time_t claim;
    int lost;

    assert_int_equal(bff_store_journal_servers(j), 3);
    assert_int_equal(bff_store_journal_claim(j, 1, &claim), APR_SUCCESS);
    assert_false(bff_store_journal_pending(j, 0));
    bff_store_journal_note(j, 1, "s:a");
    bff_store_journal_note(j, 1, "s:b");
    bff_store_journal_note(j, 1, "s:a"); /* again: one delete undoes both */
    assert_false(bff_store_journal_pending(j, 0));
    assert_true(bff_store_journal_pending(j, 1));
    assert_false(bff_store_journal_pending(j, 2));
    assert_int_equal(take_all(j, 1, p, &keys, &lost), 2);
    assert_string_equal(keys[0], "s:a");
    assert_string_equal(keys[1], "s:b");
    assert_int_equal(lost, 0);
    bff_store_journal_note(j, 1, "s:c"); /* while the replay runs */
    bff_store_journal_done(j, 1, claim, 2, 0);
    assert_true(bff_store_journal_pending(j, 1));
    assert_int_equal(take_all(j, 1, p, &keys, &lost), 1);
    assert_string_equal(keys[0], "s:c");
    bff_store_journal_done(j, 1, claim, 1, 0);
    assert_false(bff_store_journal_pending(j, 1));
    assert_int_equal(take_all(j, 1, p, &keys, &lost), 0);
    assert_null(keys);

    /* bad input is ignored, never written out of bounds */
    bff_store_journal_note(j, -1, "s:x");
    bff_store_journal_note(j, 3, "s:x");
    bff_store_journal_note(j, 0, NULL);
    bff_store_journal_note(j, 0, apr_psprintf(p, "%0*d", BFF_STORE_JOURNAL_KEY_MAX, 7));
    assert_false(bff_store_journal_pending(j, 0));
    assert_false(bff_store_journal_pending(j, 3));
    assert_int_equal(bff_store_journal_claim(j, 5, &claim), APR_EINVAL);
    assert_int_equal(bff_store_journal_create(p, 0, NULL, &j), APR_EINVAL);
}

/* A full journal counts what it could not note; the server stays pending
 * until the loss has been reported (done with the count take gave). */
static void test_full(void **state)
{
    apr_pool_t *p = *state;
    bff_store_journal_t *j = mkjournal(p, 1);
    char(*keys)[BFF_STORE_JOURNAL_KEY_MAX];
    apr_time_t claim;
    int i, n, lost;

    assert_int_equal(bff_store_journal_claim(j, 0, &claim), APR_SUCCESS);
    for (i = 0; i < BFF_STORE_JOURNAL_KEYS + 5; i++) {
        bff_store_journal_note(j, 0, apr_psprintf(p, "s:%d", i));
    }
    bff_store_journal_take(j, 0, p, 10, &keys, &n, &lost);
    assert_int_equal(n, 10);
    assert_int_equal(lost, 5);
    assert_string_equal(keys[9], "s:9");
    bff_store_journal_done(j, 0, claim, 10, lost);
    assert_int_equal(take_all(j, 0, p, &keys, &lost), BFF_STORE_JOURNAL_KEYS - 10);
    assert_int_equal(lost, 0);
    assert_string_equal(keys[0], "s:10");
    bff_store_journal_done(j, 0, claim, BFF_STORE_JOURNAL_KEYS - 10, 0);
    assert_false(bff_store_journal_pending(j, 0));

    /* only lost writes: still pending, so that the next replay says so */
    for (i = 0; i < BFF_STORE_JOURNAL_KEYS + 1; i++) {
        bff_store_journal_note(j, 0, apr_psprintf(p, "t:%d", i));
    }
    bff_store_journal_done(j, 0, claim, BFF_STORE_JOURNAL_KEYS, 0);
    assert_true(bff_store_journal_pending(j, 0));
    assert_int_equal(take_all(j, 0, p, &keys, &lost), 0);
    assert_int_equal(lost, 1);
    bff_store_journal_done(j, 0, claim, 0, lost);
    assert_false(bff_store_journal_pending(j, 0));
}

/* One replayer at a time per server; a claim taken over (its holder was
 * thought dead) no longer removes notes or ends the new holder's claim. */
static void test_claim(void **state)
{
    apr_pool_t *p = *state;
    bff_store_journal_t *j = mkjournal(p, 2);
    char(*keys)[BFF_STORE_JOURNAL_KEY_MAX];
    apr_time_t c0, c1, c2;
    int lost;

    assert_int_equal(bff_store_journal_claim(j, 0, &c0), APR_SUCCESS);
    assert_int_equal(bff_store_journal_claim(j, 0, &c1), APR_EBUSY);
    assert_int_equal(bff_store_journal_claim(j, 1, &c1), APR_SUCCESS);
    bff_store_journal_release(j, 0, c0);
    assert_int_equal(bff_store_journal_claim(j, 0, &c2), APR_SUCCESS);
    assert_true(c2 != c0);
    bff_store_journal_note(j, 0, "s:a");
    bff_store_journal_done(j, 0, c0, 1, 0); /* an old claim: no effect */
    bff_store_journal_release(j, 0, c0);
    assert_true(bff_store_journal_pending(j, 0));
    assert_int_equal(bff_store_journal_claim(j, 0, &c1), APR_EBUSY);
    assert_int_equal(take_all(j, 0, p, &keys, &lost), 1);
    bff_store_journal_done(j, 0, c2, 1, 0);
    assert_false(bff_store_journal_pending(j, 0));
}

/* A process that exits while it holds a claim (a child stopped in the middle
 * of a replay) does not block the others. */
static void test_claim_of_dead_process(void **state)
{
    apr_pool_t *p = *state;
    bff_store_journal_t *j = mkjournal(p, 1);
    apr_time_t c;
    int status = -1;
    pid_t pid;

    bff_store_journal_note(j, 0, "s:a");
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(bff_store_journal_claim(j, 0, &c) == APR_SUCCESS ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(bff_store_journal_claim(j, 0, &c), APR_SUCCESS);
}

/* The processes of a node share it: what a child notes, its parent (and
 * every other child) sees, and a claim made in one excludes the others. */
static void test_shared_by_processes(void **state)
{
    apr_pool_t *p = *state;
    bff_store_journal_t *j = mkjournal(p, 2);
    char(*keys)[BFF_STORE_JOURNAL_KEY_MAX];
    int status = -1, lost, fds[2], go[2];
    apr_time_t claim, mine;
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
        (void)read(go[0], &c, 1);
        _exit(0);
    }
    assert_int_equal(read(fds[0], &c, 1), 1);
    assert_true(bff_store_journal_pending(j, 1));
    assert_int_equal(take_all(j, 1, p, &keys, &lost), 1);
    assert_string_equal(keys[0], "s:from-child");
    assert_int_equal(bff_store_journal_claim(j, 1, &mine), APR_EBUSY); /* the child's */
    assert_int_equal(write(go[1], "x", 1), 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(bff_store_journal_claim(j, 1, &mine), APR_SUCCESS); /* its process is gone */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_note_take_done, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_full, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_claim, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_claim_of_dead_process, unit_pool_setup,
                                        unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_shared_by_processes, unit_pool_setup,
                                        unit_pool_teardown),
    };

    return unit_run("store_journal", tests);
}
