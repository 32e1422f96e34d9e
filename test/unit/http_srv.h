/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* A tiny HTTP/1.1 server for the unit tests of bff_http, bff_oidc and
 * bff_provider: it listens on 127.0.0.1 and, from a thread of this process,
 * either serves one connection with a canned response and keeps the request
 * it read (srv_start), or serves every connection until stopped with the
 * answer a route function gives (srv_serve). */
#ifndef BFF_TEST_HTTP_SRV_H
#define BFF_TEST_HTTP_SRV_H

#include <pthread.h>

#include <apr_network_io.h>
#include <apr_pools.h>

#include "bff_http.h"

/* srv_serve: the response to one request (sent as is, then the connection
 * closes), allocated in p or static. Runs in the server's thread, one
 * request at a time; it may block (the next client then waits). */
typedef const char *srv_route_fn(void *baton, apr_pool_t *p, const char *req, apr_size_t len);

typedef struct {
    apr_pool_t *pool;
    apr_socket_t *ls;
    int port;
    const char *response; /* sent as is, then the connection closes */
    char req[16384];      /* what the client sent */
    apr_size_t req_len;
    srv_route_fn *route; /* srv_serve */
    void *baton;
    int wake[2]; /* srv_stop writes to wake[1] */
} srv_t;

/* Client options for the loopback server (plain http allowed). */
extern const bff_http_opts_t local_opts;

/* Listening, not yet serving: the port is known. */
srv_t *srv_listen(apr_pool_t *p);
/* Serves one connection with response in a new thread; the server gives up
 * after 5 s without a client. */
pthread_t srv_start(srv_t *s, const char *response);
/* Waits for the thread and closes the listening socket. */
void srv_join(srv_t *s, pthread_t t);

/* Serves every connection with route until srv_stop(). */
pthread_t srv_serve(srv_t *s, srv_route_fn *route, void *baton);
/* Stops srv_serve's thread, waits for it and closes the listening socket. */
void srv_stop(srv_t *s, pthread_t t);

/* needle in the len bytes at hay, case-insensitive; NULL if absent. */
const char *find_ci(const char *hay, apr_size_t len, const char *needle);
/* The body of the request the server read. */
const char *req_body(srv_t *s);

#endif /* BFF_TEST_HTTP_SRV_H */
