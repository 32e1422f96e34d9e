/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the outcome table and the answers mod_bff writes itself. Every body is no-store and
 * nosniff; pages carry a CSP that allows nothing.
 */
#include <apr_atomic.h>
#include <apr_strings.h>
#include <jansson.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <util_filter.h>

#include "mod_bff.h"
#include "mod_bff_respond.h"
#include "bff_log.h"
#include "bff_util.h"

/* One row per outcome. The page title is "<Sign-in|Sign-out> <title>", or
 * page_title for pages outside the sign-in and sign-out flows. */
typedef struct {
    int status;
    const char *error;   /* JSON error code (API answers) */
    const char *message; /* JSON message */
    const char *title;   /* page title after the flow's noun */
    const char *text;    /* page text */
    int level;           /* log level of the flow's line; -1: rate-limited error */
    const char *page_title;
} outcome_row_t;

#define TRY_AGAIN "Please try again in a moment."

static const outcome_row_t table[BFF_OUTCOME_COUNT] = {
    [BFF_OUTCOME_OK] = { HTTP_OK, "", "", "", "", APLOG_DEBUG, "OK" },
    [BFF_OUTCOME_NO_SESSION] = { HTTP_UNAUTHORIZED, "unauthenticated",
                                 "There is no valid session; sign in first.", "is needed",
                                 "There is no valid session; please sign in.", APLOG_DEBUG,
                                 "Sign-in needed" },
    [BFF_OUTCOME_SESSION_ENDED] = { HTTP_UNAUTHORIZED, "unauthenticated",
                                    "The session has ended; sign in again.", "is needed",
                                    "The session has ended; please sign in again.", APLOG_INFO,
                                    "Sign-in needed" },
    [BFF_OUTCOME_CSRF] = { HTTP_FORBIDDEN, "csrf", "The request must come from this site.",
                           "was refused", "The request must come from this site.", APLOG_INFO,
                           "Request refused" },
    [BFF_OUTCOME_FORBIDDEN] = { HTTP_FORBIDDEN, "forbidden",
                                "You are signed in but not allowed to use this.", "was refused",
                                "You are signed in, but your account is not allowed to see this "
                                "page.",
                                APLOG_INFO, "Access denied" },
    [BFF_OUTCOME_BAD_REQUEST] = { HTTP_BAD_REQUEST, "invalid_request", "The request is malformed.",
                                  "failed", "The request is malformed.", APLOG_INFO,
                                  "Bad request" },
    [BFF_OUTCOME_STORE_DOWN] = { HTTP_SERVICE_UNAVAILABLE, "store_unavailable",
                                 "The session store is not available; try again.", "is unavailable",
                                 "The session store is not available right now. " TRY_AGAIN, -1,
                                 "Service unavailable" },
    [BFF_OUTCOME_STORE_FULL] = { HTTP_SERVICE_UNAVAILABLE, "store_full",
                                 "Too many sign-ins are in progress; try again.", "is busy",
                                 "Too many sign-ins are in progress right now. " TRY_AGAIN,
                                 APLOG_WARNING, "Service busy" },
    [BFF_OUTCOME_PROVIDER_DOWN] = { HTTP_BAD_GATEWAY, "provider_error",
                                    "The access token could not be renewed; try again.",
                                    "is unavailable",
                                    "The identity provider cannot be reached right now. " TRY_AGAIN,
                                    APLOG_ERR, "Service unavailable" },
    [BFF_OUTCOME_PROVIDER_TIMEOUT] = { HTTP_GATEWAY_TIME_OUT, "provider_timeout",
                                       "The identity provider did not answer in time; try again.",
                                       "is unavailable",
                                       "The identity provider cannot be reached right now. " TRY_AGAIN,
                                       APLOG_ERR, "Service unavailable" },
    [BFF_OUTCOME_PROVIDER_DENIED] = { HTTP_FORBIDDEN, "access_denied",
                                      "The identity provider did not complete the sign-in.",
                                      "was not completed",
                                      "The identity provider did not complete the sign-in. "
                                      "You can try to sign in again.",
                                      APLOG_INFO, "Sign-in was not completed" },
    [BFF_OUTCOME_PROVIDER_INVALID] = { HTTP_BAD_GATEWAY, "provider_error",
                                       "The identity provider's answer could not be verified.",
                                       "failed",
                                       "The identity provider's answer could not be verified.",
                                       APLOG_ERR, "Sign-in failed" },
    [BFF_OUTCOME_NOT_CONFIGURED] = { HTTP_INTERNAL_SERVER_ERROR, "not_configured",
                                     "The sign-in service is not configured.", "is unavailable",
                                     "The sign-in service is not configured.", APLOG_ERR,
                                     "Not configured" },
    [BFF_OUTCOME_NOT_FOUND] = { HTTP_NOT_FOUND, "not_found",
                                "No such endpoint; use login, callback, user, logout or "
                                "backchannel-logout.",
                                "failed", "No such page.", APLOG_DEBUG, "Not found" },
    [BFF_OUTCOME_METHOD] = { HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                             "This method is not allowed here.", "failed",
                             "This method is not allowed here.", APLOG_DEBUG,
                             "Method not allowed" },
    [BFF_OUTCOME_INTERNAL] = { HTTP_INTERNAL_SERVER_ERROR, "internal",
                               "The server could not complete the request.", "failed",
                               "The server could not complete the request. " TRY_AGAIN, APLOG_ERR,
                               "Server error" },
};

static const outcome_row_t *row(bff_outcome_e o)
{
    return (unsigned)o < BFF_OUTCOME_COUNT ? &table[o] : &table[BFF_OUTCOME_INTERNAL];
}

/* Error at most once per STORE_LOG_INTERVAL seconds per child, debug
 * otherwise (the store backend already names the server that is down). */
#define STORE_LOG_INTERVAL 10

static int store_down_level(void)
{
    static bff_log_rate_t slot;

    return bff_log_rate_level(&slot, STORE_LOG_INTERVAL, bff_util_now(), APLOG_ERR);
}

int bff_respond_level(bff_outcome_e o)
{
    int level = row(o)->level;

    return level < 0 ? store_down_level() : level;
}

int bff_respond_status(bff_outcome_e o)
{
    return row(o)->status;
}

void bff_respond_no_store(request_rec *r)
{
    /* err_headers_out survives error and redirect responses too. */
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
}

int bff_respond_body(request_rec *r, int status, const char *ctype, const char *body)
{
    r->status = status;
    bff_respond_no_store(r);
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    ap_set_content_type(r, ctype);
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}

int bff_respond_json_error(request_rec *r, int status, const char *error, const char *message)
{
    json_t *o = json_pack("{s:s,s:s}", "error", error, "message", message);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    const char *body = txt ? apr_pstrcat(r->pool, txt, "\n", NULL) : "{\"error\":\"internal\"}\n";

    free(txt);
    json_decref(o);
    return bff_respond_body(r, status, "application/json", body);
}

int bff_respond_page(request_rec *r, int status, const char *title, const char *message)
{
    const char *body = apr_psprintf(
        r->pool,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n"
        "<body><h1>%s</h1>\n<p>%s</p>\n<p><a href=\"/\">Back to the start page</a></p>"
        "</body></html>\n",
        ap_escape_html(r->pool, title), ap_escape_html(r->pool, title),
        ap_escape_html(r->pool, message));

    apr_table_setn(r->headers_out, "Content-Security-Policy", "default-src 'none'");
    return bff_respond_body(r, status, "text/html; charset=utf-8", body);
}

int bff_respond_json(request_rec *r, json_t *o)
{
    char *txt = json_dumps(o, JSON_COMPACT);
    const char *body;

    json_decref(o);
    if (!txt) {
        return bff_respond_outcome(r, BFF_OUTCOME_INTERNAL, BFF_AS_API,
                                   "The response could not be encoded.");
    }
    body = apr_pstrcat(r->pool, txt, "\n", NULL);
    free(txt);
    return bff_respond_body(r, HTTP_OK, "application/json", body);
}

/* The provider reads OAuth error codes (OpenID Connect Back-Channel Logout
 * 1.0, 2.8): its own mistakes are invalid_request, ours are temporary. */
static const char *provider_error(const outcome_row_t *w)
{
    return w->status < 500 ? "invalid_request" : "temporarily_unavailable";
}

int bff_respond_outcome(request_rec *r, bff_outcome_e o, bff_as_e as, const char *text)
{
    const outcome_row_t *w = row(o);

    if (o == BFF_OUTCOME_STORE_FULL) {
        apr_table_setn(r->err_headers_out, "Retry-After", "30");
    }
    switch (as) {
    case BFF_AS_SIGNIN:
    case BFF_AS_SIGNOUT:
        return bff_respond_page(r, w->status,
                                apr_pstrcat(r->pool, as == BFF_AS_SIGNIN ? "Sign-in " : "Sign-out ",
                                            w->title, NULL),
                                text ? text : w->text);
    case BFF_AS_PAGE:
        return bff_respond_page(r, w->status, w->page_title, text ? text : w->text);
    case BFF_AS_PROVIDER:
        return bff_respond_json_error(r, w->status, provider_error(w), text ? text : w->message);
    case BFF_AS_API:
    default:
        return bff_respond_json_error(r, w->status, w->error, text ? text : w->message);
    }
}

int bff_respond_redirect(request_rec *r, const char *url)
{
    bff_respond_no_store(r);
    apr_table_setn(r->headers_out, "Location", url);
    return HTTP_MOVED_TEMPORARILY;
}

int bff_respond_method_not_allowed(request_rec *r, const char *allow)
{
    apr_table_setn(r->err_headers_out, "Allow", allow);
    return bff_respond_outcome(r, BFF_OUTCOME_METHOD, BFF_AS_API,
                               apr_psprintf(r->pool, "Use %s for this endpoint.", allow));
}

void bff_respond_cookie(request_rec *r, const char *name, const char *value, apr_int64_t max_age,
                        bff_samesite_e ss)
{
    const char *c = bff_cookie_format(r->pool, name, value, max_age, ss);

    if (c) {
        apr_table_add(r->err_headers_out, "Set-Cookie", c);
    }
}

/* ---- answers in place of httpd's error response ------------------------ */

#define ERROR_ANSWER_KEY "mod_bff:error-answer"
#define ERROR_FILTER "BFF_ERROR_ANSWER"

typedef struct {
    int status;
    const char *ctype;
    const char *body;
    int csp; /* a page: Content-Security-Policy none */
} error_answer_t;

/* Render the answer now (into the request pool), send it when httpd sends
 * its error response: mod_authz_core decides 401 and builds the response
 * itself, so the status and the body are replaced on their way out. */
void bff_respond_outcome_for_error(request_rec *r, bff_outcome_e o, bff_as_e as)
{
    const outcome_row_t *w = row(o);
    error_answer_t *a = apr_pcalloc(r->pool, sizeof(*a));
    json_t *j;
    char *txt;

    a->status = w->status;
    if (as == BFF_AS_API) {
        j = json_pack("{s:s,s:s}", "error", w->error, "message", w->message);
        txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
        a->body = txt ? apr_pstrcat(r->pool, txt, "\n", NULL) : "{\"error\":\"internal\"}\n";
        free(txt);
        json_decref(j);
        a->ctype = "application/json";
    }
    else {
        a->body = apr_psprintf(
            r->pool,
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n"
            "<body><h1>%s</h1>\n<p>%s</p>\n<p><a href=\"/\">Back to the start page</a></p>"
            "</body></html>\n",
            w->page_title, w->page_title, ap_escape_html(r->pool, w->text));
        a->ctype = "text/html; charset=utf-8";
        a->csp = 1;
    }
    apr_pool_userdata_setn(a, ERROR_ANSWER_KEY, NULL, r->pool);
}

/* APR's ring macros cast away volatile: fine here, not with -Wcast-qual. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"

/* Drops what httpd writes, and at its end sends the answer instead. Nothing
 * has reached the header filter before: the status is still ours to set. */
static apr_status_t error_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    error_answer_t *a = f->ctx;
    apr_bucket *e;
    int eos = 0;

    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb); e = APR_BUCKET_NEXT(e)) {
        eos = eos || APR_BUCKET_IS_EOS(e);
    }
    apr_brigade_cleanup(bb);
    if (!eos) {
        return APR_SUCCESS;
    }
    ap_remove_output_filter(f);
    r->status = a->status;
    r->status_line = NULL;
    ap_set_content_type(r, a->ctype);
    apr_table_unset(r->headers_out, "WWW-Authenticate");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    if (a->csp) {
        apr_table_setn(r->headers_out, "Content-Security-Policy", "default-src 'none'");
    }
    ap_set_content_length(r, (apr_off_t)strlen(a->body));
    if (!r->header_only) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create(a->body, strlen(a->body),
                                                               bb->bucket_alloc));
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
    return ap_pass_brigade(f->next, bb);
}

#pragma GCC diagnostic pop

void bff_respond_insert_error_filter(request_rec *r)
{
    void *a = NULL;

    apr_pool_userdata_get(&a, ERROR_ANSWER_KEY, r->pool);
    if (a) {
        ap_add_output_filter(ERROR_FILTER, a, r, r->connection);
    }
}

void bff_respond_register(apr_pool_t *p)
{
    ap_register_output_filter(ERROR_FILTER, error_filter, NULL, AP_FTYPE_CONTENT_SET);
}
