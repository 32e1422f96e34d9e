/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* Unit tests for bff_http. Plain HTTP against the loopback server of
 * http_srv.c: requests sent, redirects not followed, body limit, refused
 * URLs, timeouts. Then real TLS: an in-process OpenSSL server with a
 * certificate made at start, trusted through the CA-file option. Checks
 * that worker threads resume each other's TLS sessions with the provider,
 * and that a session is never used under another trust configuration (a
 * client that does not trust the server still fails verification). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <apr_time.h>

#include "bff_config.h" /* PACKAGE_VERSION: configure.ac's AC_INIT */
#include "unit.h"
#include "bff_http.h"
#include "http_srv.h"

/* ---- plain HTTP against the loopback server ---- */

static void http_get(void **state)
{
    apr_pool_t *p = *state;
    srv_t *s = srv_listen(p);
    pthread_t t = srv_start(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: 11\r\nConnection: close\r\n\r\n"
                               "{\"a\": \"b\"}\n");
    bff_http_resp_t *r = NULL;
    const char *err = NULL;
    const char *url = apr_psprintf(p, "http://127.0.0.1:%d/.well-known/x", s->port);

    assert_int_equal(bff_http_get(p, &local_opts, url, &r, &err), APR_SUCCESS);
    srv_join(s, t);
    assert_non_null(r);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->content_type, "application/json");
    assert_int_equal(r->len, 11);
    assert_string_equal(r->body, "{\"a\": \"b\"}\n");
    assert_true(!strncmp(s->req, "GET /.well-known/x HTTP/1.1\r\n", 29));
    assert_non_null(find_ci(s->req, s->req_len, "\r\nAccept: application/json\r\n"));
    assert_non_null(
        find_ci(s->req, s->req_len, "\r\nUser-Agent: " PACKAGE_NAME "/" PACKAGE_VERSION "\r\n"));
    assert_null(find_ci(s->req, s->req_len, "Authorization:"));
}

static void http_redirect_not_followed(void **state)
{
    apr_pool_t *p = *state;
    srv_t *s = srv_listen(p);
    pthread_t t = srv_start(s, "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/x\r\n"
                               "Content-Length: 0\r\nConnection: close\r\n\r\n");
    bff_http_resp_t *r = NULL;
    const char *err = NULL;

    assert_int_equal(bff_http_get(p, &local_opts, apr_psprintf(p, "http://localhost:%d/", s->port),
                                  &r, &err),
                     APR_SUCCESS);
    srv_join(s, t);
    assert_int_equal(r->status, 302);
    assert_null(r->content_type);
    assert_int_equal(r->len, 0);
    assert_string_equal(r->body, "");
}

static void http_body_limit(void **state)
{
    apr_pool_t *p = *state;
    bff_http_opts_t o = local_opts;
    char *big = apr_palloc(p, 201);
    srv_t *s;
    pthread_t t;
    bff_http_resp_t *r = NULL;
    const char *err = NULL;

    memset(big, 'x', 200);
    big[200] = '\0';
    o.max_body = 100;
    /* Announced by Content-Length. */
    s = srv_listen(p);
    t = srv_start(s, apr_pstrcat(p,
                                 "HTTP/1.1 200 OK\r\nContent-Length: 200\r\n"
                                 "Connection: close\r\n\r\n",
                                 big, NULL));
    assert_int_equal(bff_http_get(p, &o, apr_psprintf(p, "http://127.0.0.1:%d/", s->port), &r,
                                  &err),
                     APR_ENOSPC);
    srv_join(s, t);
    assert_null(r);
    assert_non_null(strstr(err, "127.0.0.1"));
    /* Unannounced (read to close): caught while writing. */
    s = srv_listen(p);
    t = srv_start(s, apr_pstrcat(p, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", big, NULL));
    assert_int_equal(bff_http_get(p, &o, apr_psprintf(p, "http://127.0.0.1:%d/", s->port), &r,
                                  &err),
                     APR_ENOSPC);
    srv_join(s, t);
    /* Exactly at the limit is fine. */
    o.max_body = 200;
    s = srv_listen(p);
    t = srv_start(s, apr_pstrcat(p, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", big, NULL));
    assert_int_equal(bff_http_get(p, &o, apr_psprintf(p, "http://127.0.0.1:%d/", s->port), &r,
                                  &err),
                     APR_SUCCESS);
    srv_join(s, t);
    assert_int_equal(r->len, 200);
}

static void http_refused_urls(void **state)
{
    apr_pool_t *p = *state;
    bff_http_opts_t o = local_opts;
    bff_http_resp_t *r = NULL;
    const char *err = NULL;
    const char *bad[] = { "http://example.com/",        "ftp://127.0.0.1/", "file:///etc/passwd",
                          "https://user:pw@127.0.0.1/", "127.0.0.1/x",      "" };
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bff_http_get(p, &o, bad[i], &r, &err), APR_EINVAL);
        assert_null(r);
        assert_non_null(err);
    }
    o.allow_http = 0;
    assert_int_equal(bff_http_get(p, &o, "http://127.0.0.1:1/", &r, &err), APR_EINVAL);
    assert_int_equal(bff_http_post_form(p, &o, "http://127.0.0.1:1/", "a=b", NULL, NULL, &r, &err),
                     APR_EINVAL);
}

static void http_timeout_and_refused(void **state)
{
    apr_pool_t *p = *state;
    bff_http_opts_t o = local_opts;
    srv_t *s = srv_listen(p);
    bff_http_resp_t *r = NULL;
    const char *err = NULL;
    const char *url = apr_psprintf(p, "http://127.0.0.1:%d/", s->port);
    apr_time_t t0;

    /* Listening but never accepting: the kernel completes the handshake,
     * nobody answers. */
    o.timeout_ms = 300;
    t0 = apr_time_now();
    assert_int_equal(bff_http_get(p, &o, url, &r, &err), APR_TIMEUP);
    assert_true(apr_time_now() - t0 < apr_time_from_msec(2000));
    assert_true(apr_time_now() - t0 >= apr_time_from_msec(250));
    assert_null(r);
    assert_non_null(strstr(err, "127.0.0.1"));
    apr_socket_close(s->ls);
    /* Nobody listening any more. */
    assert_int_equal(bff_http_get(p, &o, url, &r, &err), APR_ECONNREFUSED);
}

/* ---- TLS ---- */

#define MAX_CONNS 8

typedef struct {
    int fd; /* listening socket */
    int port;
    SSL_CTX *ctx;
    int expect; /* connections to serve */
    int served;
    int reused[MAX_CONNS]; /* SSL_session_reused() per connection, -1: handshake failed */
} tls_srv_t;

/* A self-signed P-256 certificate for IP 127.0.0.1, written to *pem_file. */
static void make_cert(apr_pool_t *p, EVP_PKEY **pkey, X509 **cert, const char **pem_file)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    X509_NAME *name;
    char path[] = "/tmp/bff-test-http-XXXXXX";
    FILE *f;
    int fd;

    *pkey = EVP_EC_gen("P-256");
    assert_non_null(*pkey);
    *cert = X509_new();
    assert_non_null(*cert);
    X509_set_version(*cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(*cert), (long)getpid());
    X509_gmtime_adj(X509_getm_notBefore(*cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(*cert), 3600);
    name = X509_get_subject_name(*cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1,
                               0);
    X509_set_issuer_name(*cert, name);
    X509_set_pubkey(*cert, *pkey);
    X509V3_set_ctx(&v3, *cert, *cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
    assert_non_null(ext);
    X509_add_ext(*cert, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    assert_non_null(ext);
    X509_add_ext(*cert, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(*cert, *pkey, EVP_sha256()) > 0);

    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, *cert), 1);
    fclose(f);
    *pem_file = apr_pstrdup(p, path);
}

static void srv_serve_one(tls_srv_t *s, int cfd)
{
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
    char buf[4096];
    size_t got = 0;
    SSL *ssl = SSL_new(s->ctx);
    int n, idx = s->served++;

    s->reused[idx] = -1;
    if (!ssl || SSL_set_fd(ssl, cfd) != 1 || SSL_accept(ssl) != 1) {
        goto leave;
    }
    s->reused[idx] = SSL_session_reused(ssl);
    while (got < sizeof(buf) - 1
           && (n = SSL_read(ssl, buf + got, (int)(sizeof(buf) - 1 - got))) > 0) {
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n")) {
            break;
        }
    }
    SSL_write(ssl, resp, (int)sizeof(resp) - 1);
    SSL_shutdown(ssl);
leave:
    SSL_free(ssl);
    ERR_clear_error();
    close(cfd);
}

static void *srv_main(void *baton)
{
    tls_srv_t *s = baton;
    struct timeval tv = { 5, 0 };

    while (s->served < s->expect) {
        int cfd = accept(s->fd, NULL, NULL);
        if (cfd < 0) {
            break; /* the 5 s accept timeout: the client never came */
        }
        setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        srv_serve_one(s, cfd);
    }
    return NULL;
}

static void srv_setup(tls_srv_t *s, EVP_PKEY *pkey, X509 *cert, int expect)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    struct timeval tv = { 5, 0 };

    memset(s, 0, sizeof(*s));
    s->expect = expect;
    s->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(s->ctx);
    assert_int_equal(SSL_CTX_use_certificate(s->ctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, pkey), 1);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s->fd, 8), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&sa, &len), 0);
    s->port = ntohs(sa.sin_port);
    setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

typedef struct {
    const char *url;
    const char *ca_file;
    apr_status_t rv;
    long status;
    char *err;
} call_t;

/* One call from a thread of its own, as a worker thread of httpd would. */
static void *call_main(void *baton)
{
    call_t *c = baton;
    apr_pool_t *p;
    bff_http_opts_t o = { .connect_timeout_ms = 2000, .timeout_ms = 5000, .max_body = 4096 };
    bff_http_resp_t *r = NULL;
    const char *err = NULL;

    if (apr_pool_create_unmanaged_ex(&p, NULL, NULL) != APR_SUCCESS) {
        return NULL;
    }
    o.ca_file = c->ca_file;
    c->rv = bff_http_get(p, &o, c->url, &r, &err);
    c->status = r ? r->status : 0;
    c->err = err ? strdup(err) : NULL;
    apr_pool_destroy(p);
    bff_http_thread_release();
    return NULL;
}

static void call_in_thread(call_t *c)
{
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, call_main, c), 0);
    pthread_join(t, NULL);
}

static void tls_sessions_shared_per_trust(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *pkey, *other_key;
    X509 *cert, *other_cert;
    const char *ca, *other_ca;
    tls_srv_t s;
    pthread_t t;
    call_t a, b, c;

    make_cert(p, &pkey, &cert, &ca);
    make_cert(p, &other_key, &other_cert, &other_ca);
    srv_setup(&s, pkey, cert, 3);
    assert_int_equal(pthread_create(&t, NULL, srv_main, &s), 0);

    memset(&a, 0, sizeof(a));
    a.url = apr_psprintf(p, "https://127.0.0.1:%d/.well-known/openid-configuration", s.port);
    a.ca_file = ca;
    b = a;
    c = a;
    c.ca_file = other_ca; /* trusts only a certificate the server does not have */

    call_in_thread(&a); /* full handshake, verified against ca */
    call_in_thread(&b); /* another thread: resumes a's session */
    call_in_thread(&c); /* another trust store: must verify, and fail */
    pthread_join(t, NULL);

    assert_int_equal(a.rv, APR_SUCCESS);
    assert_int_equal(a.status, 200);
    assert_int_equal(b.rv, APR_SUCCESS);
    assert_int_equal(b.status, 200);
    assert_int_not_equal(c.rv, APR_SUCCESS);
    assert_non_null(c.err);
    print_message("    untrusted: %s\n", c.err);
    assert_int_equal(s.served, 3);
    assert_int_equal(s.reused[0], 0);
    assert_int_equal(s.reused[1], 1);
    /* The third client refuses the server's certificate: no session of the
     * first trust store was offered to it (a resumption skips that check). */
    assert_int_not_equal(s.reused[2], 1);

    free(a.err);
    free(b.err);
    free(c.err);
    close(s.fd);
    SSL_CTX_free(s.ctx);
    unlink(ca);
    unlink(other_ca);
    X509_free(cert);
    X509_free(other_cert);
    EVP_PKEY_free(pkey);
    EVP_PKEY_free(other_key);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, unit_pool_setup, unit_pool_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(http_get),          T(http_redirect_not_followed), T(http_body_limit),
        T(http_refused_urls), T(http_timeout_and_refused),   T(tls_sessions_shared_per_trust),
    };

    /* A regression in the transfer timeouts must fail the run, not hang it. */
    alarm(120);
    if (bff_http_global_init() != APR_SUCCESS) {
        return 1;
    }
    return unit_run("http", tests);
}
