/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the back channel to the provider over libcurl: bounded GET and form POST, TLS always
 * verified, one cached connection and trust store per thread.
 */
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <apr_strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "bff_http.h"
#include "bff_url.h"
#include "bff_util.h"
#include "bff_version.h"

#define BFF_HTTP_DEF_MAX_BODY ((apr_size_t)1024 * 1024)

/* State of one transfer. The body grows in malloc'd memory so that
 * doubling does not leave dead copies in the pool; it is copied into the
 * pool once at the end. */
typedef struct {
    char *buf;
    apr_size_t len;
    apr_size_t cap;
    apr_size_t max;
    int too_big;
    const char *ca_file;
    struct trust_t *trust;
    int ca_failed;
} xfer_t;

apr_status_t bff_http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? APR_SUCCESS : APR_EGENERAL;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *baton)
{
    xfer_t *x = baton;
    apr_size_t n = nmemb;
    char *nbuf;
    apr_size_t ncap;

    /* curl documents size as always 1; guard the multiplication anyway. */
    if (size != 1) {
        if (nmemb && size > (apr_size_t)-1 / nmemb) {
            x->too_big = 1;
            return 0;
        }
        n = size * nmemb;
    }
    if (n > x->max || x->len > x->max - n) {
        x->too_big = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (x->len + n + 1 > x->cap) {
        ncap = x->cap ? x->cap : 4096;
        while (ncap < x->len + n + 1) {
            ncap *= 2;
        }
        if (ncap > x->max + 1) {
            ncap = x->max + 1;
        }
        if (!(nbuf = realloc(x->buf, ncap))) {
            return 0;
        }
        x->buf = nbuf;
        x->cap = ncap;
    }
    memcpy(x->buf + x->len, data, n);
    x->len += n;
    x->buf[x->len] = '\0';
    return n;
}

/* One trust store per process and CA file: the system CAs plus the
 * operator's extra file. Parsing the system bundle costs ~16 ms of CPU; with
 * a store per curl handle every worker thread paid it on its first call.
 * X509_STORE is reference counted and safe to share between threads.
 * Each also has a curl share of TLS sessions: a worker thread's first
 * connection to the provider resumes a session another thread made instead
 * of a full handshake (no certificate chain to verify, on either side).
 * Sessions are shared only among connections verified with the same store.
 * Bounded by the number of distinct BFFProviderCAFile values; kept for the
 * life of the process. */
typedef struct trust_t {
    struct trust_t *next;
    char *ca_file; /* "" for the system CAs only */
    X509_STORE *store;
    CURLSH *share; /* NULL: no session sharing, still correct */
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
} trust_t;

static pthread_mutex_t trust_mutex = PTHREAD_MUTEX_INITIALIZER;
static trust_t *trust_list;

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *baton)
{
    trust_t *t = baton;

    (void)h;
    (void)access;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) {
        pthread_mutex_lock(&t->locks[data]);
    }
}

static void share_unlock(CURL *h, curl_lock_data data, void *baton)
{
    trust_t *t = baton;

    (void)h;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) {
        pthread_mutex_unlock(&t->locks[data]);
    }
}

static void share_make(trust_t *t)
{
    int i;

    for (i = 0; i < CURL_LOCK_DATA_LAST; ++i) {
        pthread_mutex_init(&t->locks[i], NULL);
    }
    if (!(t->share = curl_share_init())) {
        return;
    }
    if (curl_share_setopt(t->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK
        || curl_share_setopt(t->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK
        || curl_share_setopt(t->share, CURLSHOPT_USERDATA, t) != CURLSHE_OK
        || curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
        curl_share_cleanup(t->share);
        t->share = NULL;
    }
}

static trust_t *trust_get(const char *ca_file)
{
    const char *key = ca_file ? ca_file : "";
    X509_STORE *store = NULL;
    trust_t *t;

    pthread_mutex_lock(&trust_mutex);
    for (t = trust_list; t; t = t->next) {
        if (!strcmp(t->ca_file, key)) {
            goto leave;
        }
    }
    if (!(store = X509_STORE_new()) || X509_STORE_set_default_paths(store) != 1
        || (*key && X509_STORE_load_file(store, key) != 1) || !(t = calloc(1, sizeof(*t)))
        || !(t->ca_file = strdup(key))) {
        /* Not cached: the next call tries again (the file may be fixed). */
        X509_STORE_free(store);
        free(t);
        t = NULL;
        goto leave;
    }
    t->store = store;
    share_make(t);
    t->next = trust_list;
    trust_list = t;
leave:
    pthread_mutex_unlock(&trust_mutex);
    return t;
}

/* Installs the shared trust store (system CAs plus ca_file) into curl's
 * TLS context; curl itself loads no CA file. */
static CURLcode ssl_ctx_cb(CURL *curl, void *sslctx, void *baton)
{
    xfer_t *x = baton;
    trust_t *t = x->trust ? x->trust : trust_get(x->ca_file);

    if (!t) {
        x->ca_failed = 1;
        return CURLE_SSL_CACERT_BADFILE;
    }
    /* The context takes its own reference. */
    SSL_CTX_set1_cert_store((SSL_CTX *)sslctx, t->store);
    return CURLE_OK;
}

static void opts_get(const bff_http_opts_t *opts, bff_http_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    if (opts) {
        *o = *opts;
    }
    if (o->connect_timeout_ms <= 0) {
        o->connect_timeout_ms = BFF_HTTP_DEF_CONNECT_MS;
    }
    if (o->timeout_ms <= 0) {
        o->timeout_ms = BFF_HTTP_DEF_TIMEOUT_MS;
    }
    if (o->max_body == 0) {
        o->max_body = BFF_HTTP_DEF_MAX_BODY;
    }
    /* The connect phase is part of the whole transfer. */
    if (o->connect_timeout_ms > o->timeout_ms) {
        o->connect_timeout_ms = o->timeout_ms;
    }
}

/* https always; http only when allowed and only to a loopback host (a test
 * or sidecar provider), so a stray http:// URL never leaks a secret. */
static apr_status_t check_url(apr_pool_t *p, const bff_http_opts_t *o, const char *url,
                              bff_url_t *u, const char **err)
{
    if (!url || APR_SUCCESS != bff_url_parse(p, url, u)) {
        *err = "refused URL: not an absolute http(s) URL";
        return APR_EINVAL;
    }
    if (!strcmp(u->scheme, "https")) {
        return APR_SUCCESS;
    }
    if (o->allow_http && !strcmp(u->scheme, "http") && bff_url_host_is_loopback(u->host)) {
        return APR_SUCCESS;
    }
    *err = apr_psprintf(p, "refused URL for host %s: only https is allowed%s", u->host,
                        o->allow_http ? " (http only to a loopback host)" : "");
    return APR_EINVAL;
}

static apr_status_t map_curl(CURLcode cc, const xfer_t *x)
{
    switch (cc) {
    case CURLE_OK:
        return APR_SUCCESS;
    case CURLE_OPERATION_TIMEDOUT:
        return APR_TIMEUP;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return APR_ECONNREFUSED;
    case CURLE_FILESIZE_EXCEEDED:
        return APR_ENOSPC;
    case CURLE_WRITE_ERROR:
        return x->too_big ? APR_ENOSPC : APR_EGENERAL;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return APR_EINVAL;
    default:
        return APR_EGENERAL;
    }
}

/* The Authorization header holds the client secret: wipe it before curl
 * frees the list. */
static void slist_wipe_free(struct curl_slist *l)
{
    struct curl_slist *i;

    for (i = l; i; i = i->next) {
        if (i->data) {
            OPENSSL_cleanse(i->data, strlen(i->data));
        }
    }
    curl_slist_free_all(l);
}

static apr_status_t basic_header(apr_pool_t *p, const char *user, const char *pass,
                                 struct curl_slist **hdrs)
{
    char *eu, *ep, *cred, *b64, *line;
    apr_size_t clen;
    struct curl_slist *n;

    eu = bff_util_url_encode(p, user);
    ep = bff_util_url_encode(p, pass ? pass : "");
    if (!eu || !ep) {
        return APR_ENOMEM;
    }
    cred = apr_pstrcat(p, eu, ":", ep, NULL);
    clen = strlen(cred);
    b64 = bff_util_b64_encode(p, (const unsigned char *)cred, clen);
    OPENSSL_cleanse(cred, clen);
    OPENSSL_cleanse(ep, strlen(ep));
    if (!b64) {
        return APR_ENOMEM;
    }
    line = apr_pstrcat(p, "Authorization: Basic ", b64, NULL);
    n = curl_slist_append(*hdrs, line);
    OPENSSL_cleanse(b64, strlen(b64));
    OPENSSL_cleanse(line, strlen(line));
    if (!n) {
        return APR_ENOMEM;
    }
    *hdrs = n;
    return APR_SUCCESS;
}

/* Authorization: Bearer (RFC 6750 2.1), wiped with the list like Basic. */
static apr_status_t bearer_header(apr_pool_t *p, const char *token, struct curl_slist **hdrs)
{
    char *line = apr_pstrcat(p, "Authorization: Bearer ", token, NULL);
    struct curl_slist *n = curl_slist_append(*hdrs, line);

    OPENSSL_cleanse(line, strlen(line));
    if (!n) {
        return APR_ENOMEM;
    }
    *hdrs = n;
    return APR_SUCCESS;
}

/* One easy handle per thread, reset between calls: it keeps the open TLS
 * connection to the provider, which a fresh handle would handshake again on
 * every call. Bounded: one per thread. No destructor at thread exit: httpd's
 * workers end with their process, and a destructor running curl and OpenSSL
 * while the process exits crashed children at shutdown; threads that end
 * earlier (tests, tools) call bff_http_thread_release(). */
static __thread CURL *thread_handle;

static CURL *handle_get(void)
{
    CURL *c = thread_handle;

    thread_handle = NULL;
    if (c) {
        curl_easy_reset(c);
        return c;
    }
    return curl_easy_init();
}

static void handle_put(CURL *c, int reusable)
{
    if (!c) {
        return;
    }
    if (reusable && !thread_handle) {
        thread_handle = c;
        return;
    }
    curl_easy_cleanup(c);
}

void bff_http_thread_release(void)
{
    CURL *c = thread_handle;

    thread_handle = NULL;
    if (c) {
        curl_easy_cleanup(c);
    }
}

static apr_status_t perform(apr_pool_t *p, const bff_http_opts_t *opts, const char *url,
                            const char *form_body, const char *basic_user, const char *basic_pass,
                            const char *bearer, bff_http_resp_t **resp, const char **err)
{
    bff_http_opts_t o;
    bff_url_t u;
    xfer_t x;
    CURL *c = NULL;
    CURLcode cc;
    struct curl_slist *hdrs = NULL, *n;
    char errbuf[CURL_ERROR_SIZE];
    const char *method = form_body ? "POST" : "GET";
    const char *ctype = NULL;
    long status = 0;
    bff_http_resp_t *r;
    apr_status_t rv;

    *resp = NULL;
    *err = NULL;
    memset(&x, 0, sizeof(x));
    errbuf[0] = '\0';
    opts_get(opts, &o);
    if (APR_SUCCESS != (rv = check_url(p, &o, url, &u, err))) {
        return rv;
    }
    x.max = o.max_body;
    x.ca_file = o.ca_file;

    if (!(c = handle_get())) {
        *err = "cannot create a curl handle";
        return APR_ENOMEM;
    }

#define SETOPT(opt, val) \
    do { \
        if (CURLE_OK != (cc = curl_easy_setopt(c, (opt), (val)))) \
            goto setopt_failed; \
    } while (0)

    SETOPT(CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, o.allow_http ? "http,https" : "https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "https");
#else
    SETOPT(CURLOPT_PROTOCOLS,
           o.allow_http ? (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS) : (long)CURLPROTO_HTTPS);
    SETOPT(CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, o.connect_timeout_ms);
    SETOPT(CURLOPT_TIMEOUT_MS, o.timeout_ms);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(CURLOPT_ERRORBUFFER, errbuf);
    SETOPT(CURLOPT_USERAGENT, bff_version_user_agent());
    SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
    SETOPT(CURLOPT_WRITEDATA, &x);
    /* Refuse early when Content-Length already says too much; the write
     * callback catches chunked or lying responses. */
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o.max_body);

    cc = curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
    if (cc == CURLE_OK) {
        if ((x.trust = trust_get(o.ca_file)) && x.trust->share) {
            SETOPT(CURLOPT_SHARE, x.trust->share);
        }
        SETOPT(CURLOPT_SSL_CTX_DATA, &x);
        /* The callback installs the shared store; loading the bundle here
         * as well would be the cost we are avoiding. */
        SETOPT(CURLOPT_CAINFO, (char *)NULL);
        SETOPT(CURLOPT_CAPATH, (char *)NULL);
    }
    else if (o.ca_file && *o.ca_file) {
        if (cc == CURLE_NOT_BUILT_IN || cc == CURLE_UNKNOWN_OPTION) {
            /* Not OpenSSL underneath: the file then replaces the bundle,
             * the CA path (where configured) still holds the system CAs. */
            SETOPT(CURLOPT_CAINFO, o.ca_file);
        }
        else {
            goto setopt_failed;
        }
    }

    if (!(n = curl_slist_append(hdrs, "Accept: application/json"))) {
        goto nomem;
    }
    hdrs = n;
    if (form_body) {
        if (!(n = curl_slist_append(hdrs, "Content-Type: application/x-www-form-urlencoded"))) {
            goto nomem;
        }
        hdrs = n;
        /* No "Expect: 100-continue" round trip for a small form. */
        if (!(n = curl_slist_append(hdrs, "Expect:"))) {
            goto nomem;
        }
        hdrs = n;
        if (basic_user && APR_SUCCESS != basic_header(p, basic_user, basic_pass, &hdrs)) {
            goto nomem;
        }
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(form_body));
        SETOPT(CURLOPT_POSTFIELDS, form_body);
    }
    else {
        SETOPT(CURLOPT_HTTPGET, 1L);
    }
    if (bearer && APR_SUCCESS != bearer_header(p, bearer, &hdrs)) {
        goto nomem;
    }
    SETOPT(CURLOPT_HTTPHEADER, hdrs);
#undef SETOPT

    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        rv = map_curl(cc, &x);
        if (x.ca_failed) {
            *err = apr_psprintf(p, "%s %s: cannot load CA file %s", method, u.host, o.ca_file);
        }
        else if (rv == APR_ENOSPC) {
            *err = apr_psprintf(p, "%s %s: response body larger than %" APR_SIZE_T_FMT " bytes",
                                method, u.host, o.max_body);
        }
        else {
            *err = apr_psprintf(p, "%s %s: %s", method, u.host,
                                errbuf[0] ? errbuf : curl_easy_strerror(cc));
        }
        goto leave;
    }

    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
    r = apr_pcalloc(p, sizeof(*r));
    r->status = status;
    r->content_type = ctype ? apr_pstrdup(p, ctype) : NULL;
    r->len = x.len;
    r->body = x.buf ? apr_pstrmemdup(p, x.buf, x.len) : "";
    *resp = r;
    rv = APR_SUCCESS;
    goto leave;

setopt_failed:
    *err = apr_psprintf(p, "%s %s: curl option refused: %s", method, u.host,
                        curl_easy_strerror(cc));
    rv = APR_EGENERAL;
    goto leave;
nomem:
    *err = "out of memory building the request";
    rv = APR_ENOMEM;
leave:
    /* After a failure start afresh: nothing of a broken exchange is kept. */
    handle_put(c, rv == APR_SUCCESS);
    slist_wipe_free(hdrs);
    if (x.buf) {
        /* Token responses: do not leave them in freed heap memory. */
        OPENSSL_cleanse(x.buf, x.cap);
        free(x.buf);
    }
    return rv;
}

apr_status_t bff_http_get(apr_pool_t *p, const bff_http_opts_t *opts, const char *url,
                          bff_http_resp_t **resp, const char **err)
{
    return perform(p, opts, url, NULL, NULL, NULL, NULL, resp, err);
}

apr_status_t bff_http_post_form(apr_pool_t *p, const bff_http_opts_t *opts, const char *url,
                                const char *form_body, const char *basic_user,
                                const char *basic_pass, bff_http_resp_t **resp, const char **err)
{
    return perform(p, opts, url, form_body ? form_body : "", basic_user, basic_pass, NULL, resp,
                   err);
}

apr_status_t bff_http_get_bearer(apr_pool_t *p, const bff_http_opts_t *opts, const char *url,
                                 const char *bearer, bff_http_resp_t **resp, const char **err)
{
    if (!bearer || !*bearer || strpbrk(bearer, "\r\n")) {
        *resp = NULL;
        *err = "refused bearer token: empty or with a line break";
        return APR_EINVAL;
    }
    return perform(p, opts, url, NULL, NULL, NULL, bearer, resp, err);
}
