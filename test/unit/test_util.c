/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <apr_strings.h>

#include "bff_util.h"

static void test_random(void **state)
{
    apr_pool_t *p = *state;
    unsigned char a[32], b[32], zero[32];
    char *t1, *t2;

    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    memset(zero, 0, sizeof(zero));
    assert_int_equal(bff_util_random(a, sizeof(a)), APR_SUCCESS);
    assert_int_equal(bff_util_random(b, sizeof(b)), APR_SUCCESS);
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(bff_util_random(a, 0), APR_SUCCESS);

    t1 = bff_util_random_token(p, 32);
    t2 = bff_util_random_token(p, 32);
    assert_non_null(t1);
    assert_non_null(t2);
    assert_int_equal(strlen(t1), 43);
    assert_string_not_equal(t1, t2);
    assert_int_equal(strspn(t1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                "0123456789-_"),
                     43);
    assert_int_equal(strlen(bff_util_random_token(p, 16)), 22);
    assert_null(bff_util_random_token(p, 0));
    assert_null(bff_util_random_token(p, 100000));
}

static void test_b64url_encode(void **state)
{
    apr_pool_t *p = *state;
    const unsigned char bin[] = { 0xfb, 0xff, 0xbf };

    /* RFC 4648 section 10 vectors, unpadded. */
    assert_string_equal(bff_util_b64url_encode(p, (const unsigned char *)"", 0), "");
    assert_string_equal(bff_util_b64url_encode(p, NULL, 0), "");
    assert_string_equal(bff_util_b64url_encode(p, (const unsigned char *)"f", 1), "Zg");
    assert_string_equal(bff_util_b64url_encode(p, (const unsigned char *)"fo", 2), "Zm8");
    assert_string_equal(bff_util_b64url_encode(p, (const unsigned char *)"foo", 3), "Zm9v");
    assert_string_equal(bff_util_b64url_encode(p, (const unsigned char *)"foob", 4), "Zm9vYg");
    assert_string_equal(bff_util_b64url_encode(p, (const unsigned char *)"fooba", 5), "Zm9vYmE");
    assert_string_equal(bff_util_b64url_encode(p, (const unsigned char *)"foobar", 6), "Zm9vYmFy");
    assert_string_equal(bff_util_b64url_encode(p, bin, 3), "-_-_");
    assert_null(bff_util_b64url_encode(p, NULL, 3));
}

static void test_b64_encode(void **state)
{
    apr_pool_t *p = *state;
    const unsigned char bin[] = { 0xfb, 0xff, 0xbf };

    assert_string_equal(bff_util_b64_encode(p, (const unsigned char *)"", 0), "");
    assert_string_equal(bff_util_b64_encode(p, (const unsigned char *)"f", 1), "Zg==");
    assert_string_equal(bff_util_b64_encode(p, (const unsigned char *)"fo", 2), "Zm8=");
    assert_string_equal(bff_util_b64_encode(p, (const unsigned char *)"foo", 3), "Zm9v");
    assert_string_equal(bff_util_b64_encode(p, (const unsigned char *)"foobar", 6), "Zm9vYmFy");
    assert_string_equal(bff_util_b64_encode(p, bin, 3), "+/+/");
    /* HTTP Basic credentials. */
    assert_string_equal(bff_util_b64_encode(p, (const unsigned char *)"client:s3cr%t", 13),
                        "Y2xpZW50OnMzY3IldA==");
}

static void decode_ok(apr_pool_t *p, const char *in, const char *expect, apr_size_t elen)
{
    unsigned char *out = NULL;
    apr_size_t olen = 99;

    assert_int_equal(bff_util_b64url_decode(p, in, strlen(in), &out, &olen), APR_SUCCESS);
    assert_non_null(out);
    assert_int_equal(olen, elen);
    assert_memory_equal(out, expect, elen);
    assert_int_equal(out[olen], '\0');
}

static void decode_bad(apr_pool_t *p, const char *in, apr_size_t len)
{
    unsigned char sentinel[1] = { 'x' };
    unsigned char *out = sentinel;
    apr_size_t olen = 99;

    assert_int_equal(bff_util_b64url_decode(p, in, len, &out, &olen), APR_EINVAL);
    assert_null(out);
    assert_int_equal(olen, 0);
}

static void test_b64url_decode(void **state)
{
    apr_pool_t *p = *state;
    unsigned char rnd[100];
    unsigned char *out;
    apr_size_t olen, n;

    decode_ok(p, "", "", 0);
    decode_ok(p, "Zg", "f", 1);
    decode_ok(p, "Zm8", "fo", 2);
    decode_ok(p, "Zm9v", "foo", 3);
    decode_ok(p, "Zm9vYg", "foob", 4);
    decode_ok(p, "Zm9vYmFy", "foobar", 6);
    decode_ok(p, "-_-_", "\xfb\xff\xbf", 3);
    decode_ok(p, "AA", "\0", 1);

    /* Only a prefix of the buffer is decoded: slen counts, not the NUL. */
    assert_int_equal(bff_util_b64url_decode(p, "Zm9vYmFy", 4, &out, &olen), APR_SUCCESS);
    assert_int_equal(olen, 3);
    assert_memory_equal(out, "foo", 3);

    decode_bad(p, "Zg==", 4); /* padding */
    decode_bad(p, "Zm8=", 4);
    decode_bad(p, "Zg=", 3);
    decode_bad(p, "+/+/", 4); /* standard alphabet */
    decode_bad(p, "Zm9v+", 5);
    decode_bad(p, "Zm9v/A", 6);
    decode_bad(p, "Zm 9v", 5); /* whitespace */
    decode_bad(p, "Zm9v\n", 5);
    decode_bad(p, " Zm9v", 5);
    decode_bad(p, "Zm9\t", 4);
    decode_bad(p, "Z", 1); /* len % 4 == 1 */
    decode_bad(p, "Zm9vY", 5);
    decode_bad(p, "Zh", 2); /* non-zero trailing bits */
    decode_bad(p, "Zm9", 3);
    decode_bad(p, "Zm\0v", 4);        /* embedded NUL */
    decode_bad(p, "Zm9v\xc3\xa9", 6); /* non-ASCII */
    decode_bad(p, NULL, 4);
    assert_int_equal(bff_util_b64url_decode(p, "Zg", 2, NULL, &olen), APR_EINVAL);
    assert_int_equal(bff_util_b64url_decode(p, "Zg", 2, &out, NULL), APR_EINVAL);

    /* Round trip of every length up to 100. */
    assert_int_equal(bff_util_random(rnd, sizeof(rnd)), APR_SUCCESS);
    for (n = 0; n <= sizeof(rnd); n++) {
        char *enc = bff_util_b64url_encode(p, rnd, n);
        assert_non_null(enc);
        assert_int_equal(bff_util_b64url_decode(p, enc, strlen(enc), &out, &olen), APR_SUCCESS);
        assert_int_equal(olen, n);
        assert_memory_equal(out, rnd, n);
    }
}

static void test_ct(void **state)
{
    (void)state;
    assert_true(bff_util_ct_equal("abc", "abc", 3));
    assert_false(bff_util_ct_equal("abc", "abd", 3));
    assert_false(bff_util_ct_equal("xbc", "abc", 3));
    assert_true(bff_util_ct_equal("abc", "abd", 2));
    assert_true(bff_util_ct_equal(NULL, NULL, 0));
    assert_false(bff_util_ct_equal(NULL, "abc", 3));
    assert_false(bff_util_ct_equal("abc", NULL, 3));

    assert_true(bff_util_ct_streq("state-123", "state-123"));
    assert_true(bff_util_ct_streq("", ""));
    assert_false(bff_util_ct_streq("state-123", "state-124"));
    assert_false(bff_util_ct_streq("state-123", "state-12"));
    assert_false(bff_util_ct_streq("state-12", "state-123"));
    assert_false(bff_util_ct_streq("", "a"));
    assert_false(bff_util_ct_streq(NULL, "a"));
    assert_false(bff_util_ct_streq("a", NULL));
    assert_false(bff_util_ct_streq(NULL, NULL));
}

/* A comparison with a longer first argument must stop at the shorter
 * string's end: put the second string right before an unreadable page, so
 * reading one byte past its NUL faults. */
static void test_ct_no_overread(void **state)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *map, *b;
    const char *a = "state-12345678901234567890";

    (void)state;
    map = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
    b = map + pg - sizeof("state-12");
    memcpy(b, "state-12", sizeof("state-12"));
    assert_false(bff_util_ct_streq(a, b));
    assert_false(bff_util_ct_streq(b, a));
    assert_true(bff_util_ct_streq(b, "state-12"));
    munmap(map, (size_t)pg * 2);
}

static void test_hex_sha256(void **state)
{
    apr_pool_t *p = *state;
    unsigned char md[32];
    const unsigned char bin[] = { 0x00, 0x0f, 0xa0, 0xff };

    assert_string_equal(bff_util_hex(p, bin, 4), "000fa0ff");
    assert_string_equal(bff_util_hex(p, bin, 0), "");
    assert_null(bff_util_hex(p, NULL, 1));

    assert_int_equal(bff_util_sha256("abc", 3, md), APR_SUCCESS);
    assert_string_equal(bff_util_hex(p, md, 32),
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(bff_util_sha256("", 0, md), APR_SUCCESS);
    assert_string_equal(bff_util_hex(p, md, 32),
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(bff_util_sha256(NULL, 0, md), APR_SUCCESS);
    assert_string_equal(bff_util_hex(p, md, 32),
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(bff_util_sha256(NULL, 5, md), APR_EINVAL);

    /* RFC 7636 appendix B: S256 challenge of the example verifier. */
    {
        const char *v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_int_equal(bff_util_sha256(v, strlen(v), md), APR_SUCCESS);
        assert_string_equal(bff_util_b64url_encode(p, md, 32),
                            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}

static void test_url_encode(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bff_util_url_encode(p, ""), "");
    assert_string_equal(bff_util_url_encode(p, "AZaz09-._~"), "AZaz09-._~");
    assert_string_equal(bff_util_url_encode(p, "a b+c&d=e/f?g#h%"),
                        "a%20b%2Bc%26d%3De%2Ff%3Fg%23h%25");
    assert_string_equal(bff_util_url_encode(p, "https://app.example/cb?x=1"),
                        "https%3A%2F%2Fapp.example%2Fcb%3Fx%3D1");
    assert_string_equal(bff_util_url_encode(p, "\xc3\xa9\x01\x7f"), "%C3%A9%01%7F");
    assert_null(bff_util_url_encode(p, NULL));
}

static void url_decode_bad(apr_pool_t *p, const char *s, apr_size_t len)
{
    char sentinel[1] = { 'x' };
    char *out = sentinel;
    assert_int_equal(bff_util_url_decode(p, s, len, &out), APR_EINVAL);
    assert_null(out);
}

static void test_url_decode(void **state)
{
    apr_pool_t *p = *state;
    char *out;

    assert_int_equal(bff_util_url_decode(p, "", 0, &out), APR_SUCCESS);
    assert_string_equal(out, "");
    assert_int_equal(bff_util_url_decode(p, "a+b%20c%2Bd%2fe%C3%a9", 21, &out), APR_SUCCESS);
    assert_string_equal(out, "a b c+d/e\xc3\xa9");
    /* Only len bytes count. */
    assert_int_equal(bff_util_url_decode(p, "abc%41def", 6, &out), APR_SUCCESS);
    assert_string_equal(out, "abcA");
    assert_int_equal(bff_util_url_decode(p, "%2525", 5, &out), APR_SUCCESS);
    assert_string_equal(out, "%25");

    url_decode_bad(p, "%", 1);
    url_decode_bad(p, "a%2", 3);
    url_decode_bad(p, "%2g", 3);
    url_decode_bad(p, "%g2", 3);
    url_decode_bad(p, "%%41", 4);
    url_decode_bad(p, "abc%41def", 4); /* escape cut by len */
    url_decode_bad(p, "a%00b", 5);     /* encoded NUL */
    url_decode_bad(p, "a\0b", 3);      /* raw NUL inside len */
    url_decode_bad(p, NULL, 1);
    assert_int_equal(bff_util_url_decode(p, "a", 1, NULL), APR_EINVAL);
}

static const char *write_tmp(apr_pool_t *p, const char *content, apr_size_t len)
{
    char *path = apr_pstrdup(p, "/tmp/bff_secret_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_read_secret(void **state)
{
    apr_pool_t *p = *state;
    const char *secret, *err, *path;
    apr_size_t len;
    char *big;

    /* A literal secret is itself. */
    assert_int_equal(bff_util_read_secret(p, "s3cret value", &secret, &len, &err), APR_SUCCESS);
    assert_string_equal(secret, "s3cret value");
    assert_int_equal(len, 12);

    /* From a file, trailing whitespace trimmed, leading kept. */
    path = write_tmp(p, " top-secret-42\r\n\t \n", 19);
    assert_int_equal(bff_util_read_secret(p, apr_pstrcat(p, "file:", path, NULL), &secret, &len,
                                          &err),
                     APR_SUCCESS);
    assert_string_equal(secret, " top-secret-42");
    assert_int_equal(len, 14);
    unlink(path);

    /* Binary content with a NUL: len is authoritative. */
    path = write_tmp(p, "ab\0cd\n", 6);
    assert_int_equal(bff_util_read_secret(p, apr_pstrcat(p, "file:", path, NULL), &secret, &len,
                                          &err),
                     APR_SUCCESS);
    assert_int_equal(len, 5);
    assert_memory_equal(secret, "ab\0cd", 5);
    unlink(path);

    /* Only whitespace: refused, and the message names the path. */
    path = write_tmp(p, " \n\n\t", 4);
    err = NULL;
    assert_int_equal(bff_util_read_secret(p, apr_pstrcat(p, "file:", path, NULL), &secret, &len,
                                          &err),
                     APR_EINVAL);
    assert_non_null(err);
    assert_non_null(strstr(err, path));
    assert_null(secret);
    unlink(path);

    /* Exactly 64 KiB is fine, one byte more is not; the content is never
     * in the message. */
    big = apr_palloc(p, 65537);
    memset(big, 'Q', 65537);
    path = write_tmp(p, big, 65536);
    assert_int_equal(bff_util_read_secret(p, apr_pstrcat(p, "file:", path, NULL), &secret, &len,
                                          &err),
                     APR_SUCCESS);
    assert_int_equal(len, 65536);
    unlink(path);
    path = write_tmp(p, big, 65537);
    err = NULL;
    assert_int_equal(bff_util_read_secret(p, apr_pstrcat(p, "file:", path, NULL), &secret, &len,
                                          &err),
                     APR_EINVAL);
    assert_non_null(err);
    assert_non_null(strstr(err, path));
    assert_null(strstr(err, "QQQQ"));
    unlink(path);

    /* Missing file: error names the path. */
    err = NULL;
    assert_int_equal(bff_util_read_secret(p, "file:/nonexistent/bff/secret", &secret, &len, &err)
                         == APR_SUCCESS,
                     0);
    assert_non_null(err);
    assert_non_null(strstr(err, "/nonexistent/bff/secret"));

    /* A directory or a device is not a secret file. */
    err = NULL;
    assert_int_equal(bff_util_read_secret(p, "file:/tmp", &secret, &len, &err) == APR_SUCCESS, 0);
    assert_non_null(err);
    err = NULL;
    assert_int_equal(bff_util_read_secret(p, "file:/dev/zero", &secret, &len, &err), APR_EINVAL);
    assert_non_null(err);

    /* Empty arguments. */
    err = NULL;
    assert_int_equal(bff_util_read_secret(p, "file:", &secret, &len, &err), APR_EINVAL);
    assert_non_null(err);
    err = NULL;
    assert_int_equal(bff_util_read_secret(p, "", &secret, &len, &err), APR_EINVAL);
    assert_non_null(err);
    assert_int_equal(bff_util_read_secret(p, NULL, &secret, &len, &err), APR_EINVAL);
    /* err may be NULL. */
    assert_int_equal(bff_util_read_secret(p, "", &secret, &len, NULL), APR_EINVAL);
}

static void test_now(void **state)
{
    apr_int64_t now = bff_util_now();
    (void)state;
    /* Between 2023 and 2100. */
    assert_true(now > 1700000000);
    assert_true(now < 4102444800LL);
    assert_true(bff_util_now() - now <= 1);
}

static void duration_bad(const char *s)
{
    apr_int64_t v = -7;
    assert_int_equal(bff_util_parse_duration(s, &v), APR_EINVAL);
    assert_int_equal(v, -7);
}

static void test_duration(void **state)
{
    apr_int64_t v;
    (void)state;

    assert_int_equal(bff_util_parse_duration("90", &v), APR_SUCCESS);
    assert_int_equal(v, 90);
    assert_int_equal(bff_util_parse_duration("90s", &v), APR_SUCCESS);
    assert_int_equal(v, 90);
    assert_int_equal(bff_util_parse_duration("30m", &v), APR_SUCCESS);
    assert_int_equal(v, 1800);
    assert_int_equal(bff_util_parse_duration("8h", &v), APR_SUCCESS);
    assert_int_equal(v, 28800);
    assert_int_equal(bff_util_parse_duration("2d", &v), APR_SUCCESS);
    assert_int_equal(v, 172800);
    assert_int_equal(bff_util_parse_duration("2D", &v), APR_SUCCESS);
    assert_int_equal(v, 172800);
    assert_int_equal(bff_util_parse_duration("0", &v), APR_SUCCESS);
    assert_int_equal(v, 0);
    assert_int_equal(bff_util_parse_duration("007m", &v), APR_SUCCESS);
    assert_int_equal(v, 420);
    assert_int_equal(bff_util_parse_duration("9223372036854775807", &v), APR_SUCCESS);
    assert_true(v == INT64_MAX);
    assert_int_equal(bff_util_parse_duration("106751991167300d", &v), APR_SUCCESS);

    duration_bad("");
    duration_bad("s");
    duration_bad("-5");
    duration_bad("+5");
    duration_bad(" 5");
    duration_bad("5 ");
    duration_bad("5 s");
    duration_bad("5x");
    duration_bad("5ms");
    duration_bad("5ss");
    duration_bad("1.5h");
    duration_bad("0x10");
    duration_bad("9223372036854775808"); /* INT64_MAX + 1 */
    duration_bad("99999999999999999999999");
    duration_bad("106751991167301d"); /* overflows after the multiply */
    duration_bad("153722867280912931m");
    duration_bad(NULL);
    assert_int_equal(bff_util_parse_duration("5", NULL), APR_EINVAL);
}

static void size_bad(const char *s)
{
    apr_size_t v = 7;
    assert_int_equal(bff_util_parse_size(s, &v), APR_EINVAL);
    assert_int_equal(v, 7);
}

static void test_size(void **state)
{
    apr_size_t v;
    (void)state;

    assert_int_equal(bff_util_parse_size("1048576", &v), APR_SUCCESS);
    assert_int_equal(v, 1048576);
    assert_int_equal(bff_util_parse_size("512K", &v), APR_SUCCESS);
    assert_int_equal(v, 524288);
    assert_int_equal(bff_util_parse_size("512k", &v), APR_SUCCESS);
    assert_int_equal(v, 524288);
    assert_int_equal(bff_util_parse_size("64M", &v), APR_SUCCESS);
    assert_int_equal(v, 64 * 1024 * 1024);
    assert_int_equal(bff_util_parse_size("1G", &v), APR_SUCCESS);
    assert_int_equal(v, 1024 * 1024 * 1024);
    assert_int_equal(bff_util_parse_size("0", &v), APR_SUCCESS);
    assert_int_equal(v, 0);
    assert_int_equal(bff_util_parse_size("18446744073709551615", &v), APR_SUCCESS);
    assert_true(v == APR_SIZE_MAX);

    size_bad("");
    size_bad("K");
    size_bad("-1");
    size_bad("+1");
    size_bad(" 1");
    size_bad("1 ");
    size_bad("1KB");
    size_bad("1T");
    size_bad("1.5M");
    size_bad("18446744073709551616");
    size_bad("17179869184G");       /* 2^34 G = 2^64 */
    size_bad("18014398509481984K"); /* 2^54 K = 2^64 */
    size_bad(NULL);
    assert_int_equal(bff_util_parse_size("1", NULL), APR_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_random, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_b64url_encode, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_b64_encode, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_b64url_decode, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_ct, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_ct_no_overread, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_hex_sha256, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_url_encode, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_url_decode, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_read_secret, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_now, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_duration, unit_pool_setup, unit_pool_teardown),
        cmocka_unit_test_setup_teardown(test_size, unit_pool_setup, unit_pool_teardown),
    };
    return unit_run("util", tests);
}
