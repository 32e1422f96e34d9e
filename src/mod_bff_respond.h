/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: every answer mod_bff writes itself: the outcome table (outcome -> status, JSON error,
 * page, log level), JSON and page bodies, cookies, no-store, redirects, 405.
 */
#ifndef MOD_BFF_RESPOND_H
#define MOD_BFF_RESPOND_H

#include <httpd.h>
#include <jansson.h>

#include "bff_cookie.h"
#include "bff_outcome.h"

/* Who reads the answer: decides its form, never its status. */
typedef enum {
    BFF_AS_API = 0,  /* the SPA's fetch(): {"error":..., "message":...} */
    BFF_AS_SIGNIN,   /* a browser navigation of the sign-in: a short page */
    BFF_AS_SIGNOUT,  /* a browser navigation of the sign-out: a short page */
    BFF_AS_PROVIDER, /* the provider's back channel: OAuth error codes in JSON */
    BFF_AS_PAGE      /* a browser navigation elsewhere (AuthType bff pages) */
} bff_as_e;

/* Answer an outcome as the table says. text, if not NULL, replaces the
 * table's JSON message or page text (for answers that name a header or a
 * provider's error code). Returns what the handler returns. */
int bff_respond_outcome(request_rec *r, bff_outcome_e o, bff_as_e as, const char *text);

/* The log level the outcome is logged at by the flow that met it (the flow
 * writes the tagged line). For STORE_DOWN: error once per 10 s per child,
 * debug otherwise, so an outage does not flood the log. */
int bff_respond_level(bff_outcome_e o);

/* ap_log_rerror() with a level computed once. httpd's macro evaluates its
 * level argument two or three times (the level check, then the call): a
 * rate-limited level (STORE_DOWN's, bff_log_rate_level) is granted by the
 * first evaluation and refused by the next, and the line never appears.
 * Use this whenever the level is not a constant. */
#define BFF_RLOG_AT(level, rv, r, ...) \
    do { \
        int bff_level_ = (level); \
        ap_log_rerror(APLOG_MARK, bff_level_, (rv), (r), __VA_ARGS__); \
    } while (0)

/* The HTTP status of an outcome. */
int bff_respond_status(bff_outcome_e o);

/* Answer an outcome in place of the error response httpd is about to send
 * for this request (an authorization failure decided by mod_authz_core):
 * its status and body are replaced when the error response goes out. */
void bff_respond_outcome_for_error(request_rec *r, bff_outcome_e o, bff_as_e as);

/* The insert_error_filter hook that does it, and the filter's registration. */
void bff_respond_insert_error_filter(request_rec *r);
void bff_respond_register(apr_pool_t *p);

/* Small answers. */
int bff_respond_json_error(request_rec *r, int status, const char *error, const char *message);
int bff_respond_page(request_rec *r, int status, const char *title, const char *message);
int bff_respond_json(request_rec *r, json_t *o); /* 200; takes o's reference */
int bff_respond_body(request_rec *r, int status, const char *ctype, const char *body);
int bff_respond_redirect(request_rec *r, const char *url); /* 302, no-store */
int bff_respond_method_not_allowed(request_rec *r, const char *allow);
void bff_respond_no_store(request_rec *r);

/* Set-Cookie on every answer, error and redirect included; max_age 0
 * expires the cookie, -1 makes it a browser-session cookie. */
void bff_respond_cookie(request_rec *r, const char *name, const char *value, apr_int64_t max_age,
                        bff_samesite_e ss);

#endif /* MOD_BFF_RESPOND_H */
