/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* memcached replies as far as the module sees them. The reply parser is
 * apr-util's (apr_memcache: "VALUE k f n", "STORED", "NOT_STORED",
 * "DELETED", "NOT_FOUND", "SERVER_ERROR ..."); the module acts on what it
 * returns (status, value bytes and length) and on the socket state (our
 * timeouts, stale-connection retry, down/retry bookkeeping in
 * bff_store_memcache.c). There is no parser of our own to call without a
 * socket, so this target serves each input as the reply of a fake server on
 * 127.0.0.1 (a thread of this process, loopback only) and runs one store
 * operation against it, through the real client.
 *
 * Input: one byte picking the operation (get, set, add, remove), then the
 * bytes the server sends back before closing the connection. A store is
 * created per input in the input's pool (destroyed after it).
 * Invariants: the status is one the store interface defines for the
 * operation (a failure never looks like "not found" or "exists" unless the
 * server said so, never APR_ENOSPC/APR_EINVAL), and a value returned is
 * readable for its whole length. */
#include "fuzz.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "bff_store_memcache.h"

static int listen_fd = -1;
static int port;
static pthread_mutex_t reply_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char reply[8192];
static size_t reply_len;

/* Has buf (n bytes) a whole request? get/delete: one line; set/add: the
 * line "set <key> <flags> <exptime> <bytes>" then <bytes> and CRLF. */
static int request_complete(const char *buf, size_t n)
{
    const char *eol = memmem(buf, n, "\r\n", 2), *sp;
    size_t line;
    unsigned long bytes;

    if (!eol) {
        return 0;
    }
    line = (size_t)(eol - buf) + 2;
    if (strncmp(buf, "set ", 4) && strncmp(buf, "add ", 4)) {
        return 1;
    }
    sp = memrchr(buf, ' ', (size_t)(eol - buf));
    bytes = sp ? strtoul(sp + 1, NULL, 10) : 0;
    return n >= line + bytes + 2;
}

static void serve(int fd)
{
    char req[16384];
    size_t n = 0, len;
    ssize_t r;
    struct timeval tv = { 1, 0 };
    unsigned char out[sizeof(reply)];

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    while (n < sizeof(req) && !request_complete(req, n)) {
        if ((r = read(fd, req + n, sizeof(req) - n)) <= 0) {
            close(fd);
            return;
        }
        n += (size_t)r;
    }
    pthread_mutex_lock(&reply_lock);
    len = reply_len;
    memcpy(out, reply, len);
    pthread_mutex_unlock(&reply_lock);
    if (len) {
        (void)!write(fd, out, len);
    }
    /* The whole request was read, so this is a FIN, not a reset. */
    shutdown(fd, SHUT_WR);
    close(fd);
}

static void *server(void *arg)
{
    int fd;

    (void)arg;
    for (;;) {
        if ((fd = accept(listen_fd, NULL, NULL)) >= 0) {
            serve(fd);
        }
        else if (errno != EINTR) {
            usleep(1000);
        }
    }
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sockaddr_in sa;
    socklen_t slen = sizeof(sa);
    pthread_t th;
    int one = 1;

    fuzz_init();
    /* As httpd does (bff_store_memcache.h): a miss also reads the server's
     * stats, on a connection this fake server may have closed already. */
    signal(SIGPIPE, SIG_IGN);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((listen_fd = socket(AF_INET, SOCK_STREAM, 0)) < 0
        || setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))
        || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(listen_fd, 16)
        || getsockname(listen_fd, (struct sockaddr *)&sa, &slen)
        || pthread_create(&th, NULL, server, NULL)) {
        perror("fuzz_memcache: fake server");
        abort();
    }
    port = ntohs(sa.sin_port);
    pthread_detach(th);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char val[] = "sealed-record-bytes";
    apr_pool_t *p;
    bff_store_memcache_opts_t o;
    bff_store_t *st = NULL;
    const char *err = NULL;
    unsigned char *got = NULL;
    apr_size_t len = 0;
    apr_int64_t expires = (apr_int64_t)apr_time_sec(apr_time_now()) + 600;
    const char *key = "s:0123456789abcdef";
    apr_status_t rv;
    int op;

    if (size < 1 || size - 1 > sizeof(reply)) {
        return 0;
    }
    op = data[0] & 3;
    pthread_mutex_lock(&reply_lock);
    memcpy(reply, data + 1, size - 1);
    reply_len = size - 1;
    pthread_mutex_unlock(&reply_lock);

    p = fuzz_pool();
    bff_store_memcache_opts_default(&o);
    o.op_timeout = apr_time_from_msec(300);
    o.retry_after = 0;
    o.conn_max = o.conn_smax = 1;
    if (bff_store_memcache_create(p, apr_psprintf(p, "127.0.0.1:%d", port), &o, &st, &err)
        != APR_SUCCESS) {
        fprintf(stderr, "fuzz_memcache: %s\n", err ? err : "cannot create the store");
        abort();
    }
    switch (op) {
    case 0:
        rv = bff_store_get(st, p, key, &got, &len);
        if (rv == APR_SUCCESS) {
            volatile unsigned char sum = 0;
            apr_size_t i;

            FUZZ_ASSERT(got != NULL);
            for (i = 0; i < len; i++)
                sum ^= got[i];
            (void)sum;
        }
        else {
            FUZZ_ASSERT(got == NULL && len == 0);
        }
        FUZZ_ASSERT(rv != APR_EEXIST);
        break;
    case 1:
        rv = bff_store_set(st, p, key, val, sizeof(val), expires);
        FUZZ_ASSERT(rv != APR_NOTFOUND && rv != APR_EEXIST);
        break;
    case 2:
        rv = bff_store_add(st, p, key, val, sizeof(val), expires);
        FUZZ_ASSERT(rv != APR_NOTFOUND);
        break;
    default:
        rv = bff_store_remove(st, p, key);
        FUZZ_ASSERT(rv != APR_EEXIST);
        break;
    }
    FUZZ_ASSERT(rv != APR_ENOSPC && rv != APR_EINVAL);
    apr_pool_destroy(p);
    return 0;
}
