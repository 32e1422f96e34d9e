/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: small primitives: CSPRNG, base64(url), hex, constant-time comparison, SHA-256, URL
 * encoding, secrets from files, durations and sizes.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "bff_util.h"

#define BFF_SECRET_FILE_MAX (64 * 1024)

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hex_digits[] = "0123456789abcdef";

apr_status_t bff_util_random(unsigned char *buf, apr_size_t len)
{
    /* RAND_bytes takes an int: feed it in chunks so a huge len cannot wrap. */
    while (len > 0) {
        int chunk = len > (apr_size_t)INT_MAX ? INT_MAX : (int)len;
        if (RAND_bytes(buf, chunk) != 1) {
            return APR_EGENERAL;
        }
        buf += chunk;
        len -= (apr_size_t)chunk;
    }
    return APR_SUCCESS;
}

char *bff_util_random_token(apr_pool_t *p, apr_size_t nbytes)
{
    unsigned char *buf;
    char *token;

    if (nbytes == 0 || nbytes > 4096) {
        return NULL;
    }
    buf = apr_palloc(p, nbytes);
    if (APR_SUCCESS != bff_util_random(buf, nbytes)) {
        return NULL;
    }
    token = bff_util_b64url_encode(p, buf, nbytes);
    /* The raw bytes stay in the pool until it dies; do not leave them there. */
    OPENSSL_cleanse(buf, nbytes);
    return token;
}

static char *b64_encode_with(apr_pool_t *p, const unsigned char *data, apr_size_t len,
                             const char *alphabet, int pad)
{
    apr_size_t groups, outlen, i, o = 0;
    char *out;

    if (data == NULL && len > 0) {
        return NULL;
    }
    groups = len / 3 + (len % 3 ? 1 : 0);
    if (groups > (APR_SIZE_MAX - 1) / 4) {
        return NULL;
    }
    outlen = groups * 4;
    out = apr_palloc(p, outlen + 1);
    for (i = 0; i + 2 < len; i += 3) {
        apr_uint32_t v = ((apr_uint32_t)data[i] << 16) | ((apr_uint32_t)data[i + 1] << 8)
                         | data[i + 2];
        out[o++] = alphabet[(v >> 18) & 0x3f];
        out[o++] = alphabet[(v >> 12) & 0x3f];
        out[o++] = alphabet[(v >> 6) & 0x3f];
        out[o++] = alphabet[v & 0x3f];
    }
    if (len - i == 1) {
        apr_uint32_t v = (apr_uint32_t)data[i] << 16;
        out[o++] = alphabet[(v >> 18) & 0x3f];
        out[o++] = alphabet[(v >> 12) & 0x3f];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    }
    else if (len - i == 2) {
        apr_uint32_t v = ((apr_uint32_t)data[i] << 16) | ((apr_uint32_t)data[i + 1] << 8);
        out[o++] = alphabet[(v >> 18) & 0x3f];
        out[o++] = alphabet[(v >> 12) & 0x3f];
        out[o++] = alphabet[(v >> 6) & 0x3f];
        if (pad) {
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    return out;
}

char *bff_util_b64url_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    return b64_encode_with(p, data, len, b64url_alphabet, 0);
}

char *bff_util_b64_encode(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    return b64_encode_with(p, data, len, b64_alphabet, 1);
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

apr_status_t bff_util_b64url_decode(apr_pool_t *p, const char *s, apr_size_t slen,
                                    unsigned char **out, apr_size_t *outlen)
{
    const unsigned char *in = (const unsigned char *)s;
    unsigned char *buf;
    apr_size_t i, o = 0, rem;
    apr_uint32_t acc = 0;
    int bits = 0;

    if (out == NULL || outlen == NULL) {
        return APR_EINVAL;
    }
    *out = NULL;
    *outlen = 0;
    if (s == NULL && slen > 0) {
        return APR_EINVAL;
    }
    /* One leftover character carries only 6 bits: never a whole byte. */
    rem = slen % 4;
    if (rem == 1) {
        return APR_EINVAL;
    }
    buf = apr_palloc(p, (slen / 4) * 3 + 3);
    for (i = 0; i < slen; i++) {
        int v = b64url_value(in[i]);
        if (v < 0) {
            return APR_EINVAL;
        }
        acc = (acc << 6) | (apr_uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    /* The bits left over must be zero, otherwise two encodings would decode
     * to the same bytes (and a signature could be "changed" without effect). */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        return APR_EINVAL;
    }
    buf[o] = '\0';
    *out = buf;
    *outlen = o;
    return APR_SUCCESS;
}

int bff_util_ct_equal(const void *a, const void *b, apr_size_t len)
{
    if (len == 0) {
        return 1;
    }
    if (a == NULL || b == NULL) {
        return 0;
    }
    return CRYPTO_memcmp(a, b, len) == 0;
}

int bff_util_ct_streq(const char *a, const char *b)
{
    apr_size_t la, lb;

    if (a == NULL || b == NULL) {
        return 0;
    }
    la = strlen(a);
    lb = strlen(b);
    if (la != lb) {
        /* Same amount of work as a real comparison of a, so the time does
         * not depend on where the strings differ. */
        (void)CRYPTO_memcmp(a, a, la);
        return 0;
    }
    return la == 0 || CRYPTO_memcmp(a, b, la) == 0;
}

char *bff_util_hex(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    apr_size_t i;
    char *out;

    if ((data == NULL && len > 0) || len > (APR_SIZE_MAX - 1) / 2) {
        return NULL;
    }
    out = apr_palloc(p, len * 2 + 1);
    for (i = 0; i < len; i++) {
        out[2 * i] = hex_digits[data[i] >> 4];
        out[2 * i + 1] = hex_digits[data[i] & 0x0f];
    }
    out[len * 2] = '\0';
    return out;
}

apr_status_t bff_util_sha256(const void *data, apr_size_t len, unsigned char out[32])
{
    unsigned int mdlen = 0;

    if (data == NULL && len > 0) {
        return APR_EINVAL;
    }
    if (data == NULL) {
        data = "";
    }
    if (EVP_Digest(data, len, out, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
           || c == '.' || c == '_' || c == '~';
}

char *bff_util_url_encode(apr_pool_t *p, const char *s)
{
    const unsigned char *in = (const unsigned char *)s;
    apr_size_t len, i, o = 0;
    char *out;

    if (s == NULL) {
        return NULL;
    }
    len = strlen(s);
    if (len > (APR_SIZE_MAX - 1) / 3) {
        return NULL;
    }
    out = apr_palloc(p, len * 3 + 1);
    for (i = 0; i < len; i++) {
        if (is_unreserved(in[i])) {
            out[o++] = (char)in[i];
        }
        else {
            out[o++] = '%';
            out[o++] = "0123456789ABCDEF"[in[i] >> 4];
            out[o++] = "0123456789ABCDEF"[in[i] & 0x0f];
        }
    }
    out[o] = '\0';
    return out;
}

int bff_util_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

apr_status_t bff_util_url_decode(apr_pool_t *p, const char *s, apr_size_t len, char **out)
{
    const unsigned char *in = (const unsigned char *)s;
    apr_size_t i, o = 0;
    char *buf;

    if (out == NULL) {
        return APR_EINVAL;
    }
    *out = NULL;
    if ((s == NULL && len > 0) || len == APR_SIZE_MAX) {
        return APR_EINVAL;
    }
    buf = apr_palloc(p, len + 1);
    for (i = 0; i < len; i++) {
        unsigned char c = in[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3 || (hi = bff_util_hex_value(in[i + 1])) < 0
                || (lo = bff_util_hex_value(in[i + 2])) < 0) {
                return APR_EINVAL;
            }
            c = (unsigned char)((hi << 4) | lo);
            i += 2;
        }
        else if (c == '+') {
            c = ' ';
        }
        /* A NUL (raw within len, or %00) would silently cut the C string. */
        if (c == '\0') {
            return APR_EINVAL;
        }
        buf[o++] = (char)c;
    }
    buf[o] = '\0';
    *out = buf;
    return APR_SUCCESS;
}

static int is_trailing_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static apr_status_t read_secret_file(apr_pool_t *p, const char *path, char **data, apr_size_t *len,
                                     const char **err)
{
    apr_file_t *f = NULL;
    apr_finfo_t finfo;
    apr_status_t rv;
    apr_size_t total = 0;
    char *buf = NULL;
    char ebuf[128];

    *data = NULL;
    *len = 0;
    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, APR_OS_DEFAULT, p);
    if (APR_SUCCESS != rv) {
        *err = apr_psprintf(p, "cannot open secret file '%s': %s", path,
                            apr_strerror(rv, ebuf, sizeof(ebuf)));
        f = NULL;
        goto leave;
    }
    /* A FIFO or device would block or never end; only plain files qualify. */
    if (APR_SUCCESS != (rv = apr_file_info_get(&finfo, APR_FINFO_TYPE, f))) {
        *err = apr_psprintf(p, "cannot stat secret file '%s': %s", path,
                            apr_strerror(rv, ebuf, sizeof(ebuf)));
        goto leave;
    }
    if (finfo.filetype != APR_REG) {
        *err = apr_psprintf(p, "secret file '%s' is not a regular file", path);
        rv = APR_EINVAL;
        goto leave;
    }
    /* One byte more than allowed, to tell "exactly 64 KiB" from "larger". */
    buf = apr_palloc(p, BFF_SECRET_FILE_MAX + 2);
    while (total < BFF_SECRET_FILE_MAX + 1) {
        apr_size_t n = BFF_SECRET_FILE_MAX + 1 - total;
        rv = apr_file_read(f, buf + total, &n);
        total += n;
        if (APR_EOF == rv) {
            rv = APR_SUCCESS;
            break;
        }
        if (APR_SUCCESS != rv) {
            *err = apr_psprintf(p, "cannot read secret file '%s': %s", path,
                                apr_strerror(rv, ebuf, sizeof(ebuf)));
            goto leave;
        }
    }
    if (total > BFF_SECRET_FILE_MAX) {
        *err = apr_psprintf(p, "secret file '%s' is larger than %d bytes", path,
                            BFF_SECRET_FILE_MAX);
        rv = APR_EINVAL;
        goto leave;
    }
    while (total > 0 && is_trailing_space((unsigned char)buf[total - 1])) {
        total--;
    }
    if (total == 0) {
        *err = apr_psprintf(p, "secret file '%s' is empty", path);
        rv = APR_EINVAL;
        goto leave;
    }
    buf[total] = '\0';
    *data = buf;
    *len = total;

leave:
    if (APR_SUCCESS != rv && buf != NULL) {
        OPENSSL_cleanse(buf, BFF_SECRET_FILE_MAX + 2);
    }
    if (f != NULL) {
        apr_file_close(f);
    }
    return rv;
}

apr_status_t bff_util_read_secret(apr_pool_t *p, const char *arg, const char **secret,
                                  apr_size_t *len, const char **err)
{
    const char *dummy_err;
    char *data;
    apr_size_t dlen;
    apr_status_t rv;

    if (err == NULL) {
        err = &dummy_err;
    }
    *err = NULL;
    if (secret == NULL || len == NULL) {
        *err = "internal error: no place for the secret";
        return APR_EINVAL;
    }
    *secret = NULL;
    *len = 0;
    if (arg == NULL || *arg == '\0') {
        *err = "empty secret";
        return APR_EINVAL;
    }
    if (strncmp(arg, "file:", 5) != 0) {
        *secret = arg;
        *len = strlen(arg);
        return APR_SUCCESS;
    }
    if (arg[5] == '\0') {
        *err = "'file:' needs a path";
        return APR_EINVAL;
    }
    if (APR_SUCCESS != (rv = read_secret_file(p, arg + 5, &data, &dlen, err))) {
        return rv;
    }
    *secret = data;
    *len = dlen;
    return APR_SUCCESS;
}

apr_int64_t bff_util_now(void)
{
    return (apr_int64_t)apr_time_sec(apr_time_now());
}

/* Decimal digits at the start of s into *val (no sign, no spaces); *end is
 * the first non-digit. APR_EINVAL when there is no digit or on overflow. */
static apr_status_t parse_digits(const char *s, apr_uint64_t max, apr_uint64_t *val,
                                 const char **end)
{
    apr_uint64_t v = 0;
    const char *q = s;

    if (!(*q >= '0' && *q <= '9')) {
        return APR_EINVAL;
    }
    for (; *q >= '0' && *q <= '9'; q++) {
        unsigned d = (unsigned)(*q - '0');
        if (v > (max - d) / 10) {
            return APR_EINVAL;
        }
        v = v * 10 + d;
    }
    *val = v;
    *end = q;
    return APR_SUCCESS;
}

apr_status_t bff_util_parse_duration(const char *s, apr_int64_t *secs)
{
    apr_uint64_t v, mult;
    const char *end;

    if (s == NULL || secs == NULL) {
        return APR_EINVAL;
    }
    if (APR_SUCCESS != parse_digits(s, (apr_uint64_t)INT64_MAX, &v, &end)) {
        return APR_EINVAL;
    }
    switch (*end) {
    case '\0':
        mult = 1;
        break;
    case 's':
    case 'S':
        mult = 1;
        end++;
        break;
    case 'm':
    case 'M':
        mult = 60;
        end++;
        break;
    case 'h':
    case 'H':
        mult = 3600;
        end++;
        break;
    case 'd':
    case 'D':
        mult = 86400;
        end++;
        break;
    default:
        return APR_EINVAL;
    }
    if (*end != '\0' || v > (apr_uint64_t)INT64_MAX / mult) {
        return APR_EINVAL;
    }
    *secs = (apr_int64_t)(v * mult);
    return APR_SUCCESS;
}

apr_status_t bff_util_parse_size(const char *s, apr_size_t *bytes)
{
    apr_uint64_t v, mult, max = (apr_uint64_t)APR_SIZE_MAX;
    const char *end;

    if (s == NULL || bytes == NULL) {
        return APR_EINVAL;
    }
    if (APR_SUCCESS != parse_digits(s, max, &v, &end)) {
        return APR_EINVAL;
    }
    switch (*end) {
    case '\0':
        mult = 1;
        break;
    case 'k':
    case 'K':
        mult = 1024;
        end++;
        break;
    case 'm':
    case 'M':
        mult = 1024 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        mult = 1024 * 1024 * 1024;
        end++;
        break;
    default:
        return APR_EINVAL;
    }
    if (*end != '\0' || v > max / mult) {
        return APR_EINVAL;
    }
    *bytes = (apr_size_t)(v * mult);
    return APR_SUCCESS;
}
