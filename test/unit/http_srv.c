/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* The loopback HTTP/1.1 server of the unit tests: see http_srv.h. */
#include "unit.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <apr_portable.h>
#include <apr_time.h>

#include "http_srv.h"

const bff_http_opts_t local_opts = {
    .connect_timeout_ms = 2000, .timeout_ms = 5000, .max_body = 4096, .allow_http = 1
};

const char *find_ci(const char *hay, apr_size_t len, const char *needle)
{
    apr_size_t n = strlen(needle), i;
    for (i = 0; i + n <= len; i++) {
        if (!strncasecmp(hay + i, needle, n)) {
            return hay + i;
        }
    }
    return NULL;
}

static void srv_read_request(srv_t *s, apr_socket_t *cs)
{
    const char *end, *cl;
    apr_size_t want = 0;

    for (;;) {
        apr_size_t n = sizeof(s->req) - 1 - s->req_len;
        if (n == 0 || apr_socket_recv(cs, s->req + s->req_len, &n) != APR_SUCCESS || !n) {
            break;
        }
        s->req_len += n;
        s->req[s->req_len] = '\0';
        if (!(end = strstr(s->req, "\r\n\r\n"))) {
            continue;
        }
        if (!want) {
            cl = find_ci(s->req, (apr_size_t)(end - s->req), "\r\nContent-Length:");
            want = (apr_size_t)(end - s->req) + 4
                   + (cl ? (apr_size_t)strtoul(cl + 17, NULL, 10) : 0);
        }
        if (s->req_len >= want) {
            break;
        }
    }
}

/* apr_socket_accept does not wait for the timeout on a non-blocking
 * socket: poll first, five seconds at most. */
static int srv_wait_client(srv_t *s)
{
    apr_os_sock_t fd;
    struct pollfd pfd;

    if (apr_os_sock_get(&fd, s->ls) != APR_SUCCESS) {
        return 0;
    }
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    return poll(&pfd, 1, 5000) == 1;
}

static void *srv_main(void *baton)
{
    srv_t *s = baton;
    apr_pool_t *tp;
    apr_socket_t *cs;
    apr_size_t n;

    /* Its own pool and allocator: the test thread keeps using its pool. */
    if (apr_pool_create_unmanaged_ex(&tp, NULL, NULL) != APR_SUCCESS) {
        return NULL;
    }
    if (srv_wait_client(s) && apr_socket_accept(&cs, s->ls, tp) == APR_SUCCESS) {
        apr_socket_timeout_set(cs, apr_time_from_sec(5));
        srv_read_request(s, cs);
        n = strlen(s->response);
        apr_socket_send(cs, s->response, &n);
        apr_socket_close(cs);
    }
    apr_pool_destroy(tp);
    return NULL;
}

srv_t *srv_listen(apr_pool_t *p)
{
    srv_t *s = apr_pcalloc(p, sizeof(*s));
    apr_sockaddr_t *sa;

    s->pool = p;
    assert_int_equal(apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0, p), APR_SUCCESS);
    assert_int_equal(apr_socket_create(&s->ls, APR_INET, SOCK_STREAM, APR_PROTO_TCP, p),
                     APR_SUCCESS);
    assert_int_equal(apr_socket_bind(s->ls, sa), APR_SUCCESS);
    assert_int_equal(apr_socket_listen(s->ls, 8), APR_SUCCESS);
    assert_int_equal(apr_socket_addr_get(&sa, APR_LOCAL, s->ls), APR_SUCCESS);
    s->port = sa->port;
    /* The server thread gives up if the client never comes. */
    apr_socket_timeout_set(s->ls, apr_time_from_sec(5));
    return s;
}

/* A plain pthread: the thread only touches its own socket and buffer, and
 * the pool is used from one thread at a time (the test waits in join). */
pthread_t srv_start(srv_t *s, const char *response)
{
    pthread_t t;

    s->response = response;
    assert_int_equal(pthread_create(&t, NULL, srv_main, s), 0);
    return t;
}

void srv_join(srv_t *s, pthread_t t)
{
    pthread_join(t, NULL);
    apr_socket_close(s->ls);
}

/* Sends all of len bytes at data (a big body takes several sends); gives
 * up when the client goes away. */
static void srv_send_all(apr_socket_t *cs, const char *data, apr_size_t len)
{
    while (len) {
        apr_size_t n = len;
        if (apr_socket_send(cs, data, &n) != APR_SUCCESS && !n) {
            return;
        }
        data += n;
        len -= n;
    }
}

/* Waits for a client or srv_stop(): 1 for a client. */
static int srv_wait_any(srv_t *s)
{
    apr_os_sock_t fd;
    struct pollfd pfd[2];

    if (apr_os_sock_get(&fd, s->ls) != APR_SUCCESS) {
        return 0;
    }
    pfd[0].fd = fd;
    pfd[0].events = POLLIN;
    pfd[0].revents = 0;
    pfd[1].fd = s->wake[0];
    pfd[1].events = POLLIN;
    pfd[1].revents = 0;
    /* A test that never stops its server fails after a minute, not never. */
    return poll(pfd, 2, 60000) > 0 && !pfd[1].revents && pfd[0].revents;
}

static void *srv_loop(void *baton)
{
    srv_t *s = baton;
    apr_pool_t *tp;
    apr_socket_t *cs;
    const char *resp;

    while (srv_wait_any(s)) {
        if (apr_pool_create_unmanaged_ex(&tp, NULL, NULL) != APR_SUCCESS) {
            break;
        }
        if (apr_socket_accept(&cs, s->ls, tp) == APR_SUCCESS) {
            apr_socket_timeout_set(cs, apr_time_from_sec(5));
            s->req_len = 0;
            s->req[0] = '\0';
            srv_read_request(s, cs);
            resp = s->route(s->baton, tp, s->req, s->req_len);
            srv_send_all(cs, resp, strlen(resp));
            apr_socket_close(cs);
        }
        apr_pool_destroy(tp);
    }
    return NULL;
}

pthread_t srv_serve(srv_t *s, srv_route_fn *route, void *baton)
{
    pthread_t t;

    s->route = route;
    s->baton = baton;
    assert_int_equal(pipe(s->wake), 0);
    assert_int_equal(pthread_create(&t, NULL, srv_loop, s), 0);
    return t;
}

void srv_stop(srv_t *s, pthread_t t)
{
    assert_int_equal(write(s->wake[1], "x", 1), 1);
    pthread_join(t, NULL);
    close(s->wake[0]);
    close(s->wake[1]);
    apr_socket_close(s->ls);
}

const char *req_body(srv_t *s)
{
    const char *e = strstr(s->req, "\r\n\r\n");
    return e ? e + 4 : "";
}
