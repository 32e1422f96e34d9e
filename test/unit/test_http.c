/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* bff_http over real TLS: an in-process OpenSSL server with a certificate
 * made at start, trusted through the CA-file option. Checks that worker
 * threads resume each other's TLS sessions with the provider, and that a
 * session is never used under another trust configuration (a client that
 * does not trust the server still fails verification). */
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

#include "unit.h"
#include "bff_http.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(tls_sessions_shared_per_trust, unit_pool_setup,
                                        unit_pool_teardown),
    };

    if (bff_http_global_init() != APR_SUCCESS) {
        return 1;
    }
    return unit_run("http", tests);
}
