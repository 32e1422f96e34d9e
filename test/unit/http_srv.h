/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* A tiny HTTP/1.1 server for the unit tests of bff_http and bff_oidc: it
 * listens on 127.0.0.1, serves one connection from a thread of this
 * process with a canned response, and keeps the request it read. */
#ifndef BFF_TEST_HTTP_SRV_H
#define BFF_TEST_HTTP_SRV_H

#include <pthread.h>

#include <apr_network_io.h>
#include <apr_pools.h>

#include "bff_http.h"

typedef struct {
    apr_pool_t *pool;
    apr_socket_t *ls;
    int port;
    const char *response; /* sent as is, then the connection closes */
    char req[16384];      /* what the client sent */
    apr_size_t req_len;
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

/* needle in the len bytes at hay, case-insensitive; NULL if absent. */
const char *find_ci(const char *hay, apr_size_t len, const char *needle);
/* The body of the request the server read. */
const char *req_body(srv_t *s);

#endif /* BFF_TEST_HTTP_SRV_H */
