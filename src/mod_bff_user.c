/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the user endpoint: CSRF check, session, idle slide, and the claims, lifetimes and
 * logout URL as JSON. Never a token.
 */
#include <apr_strings.h>
#include <jansson.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include "mod_bff.h"
#include "mod_bff_config.h"
#include "mod_bff_site.h"
#include "mod_bff_csrf.h"
#include "mod_bff_respond.h"
#include "mod_bff_session.h"
#include "mod_bff_user.h"
#include "bff_url.h"
#include "bff_util.h"

/* The handler's Location: the logout URL sits beside this endpoint. */
static const char *base_path(request_rec *r)
{
    const char *u = r->uri, *slash = strrchr(u, '/');
    return apr_pstrndup(r->pool, u, (apr_size_t)(slash - u) + 1);
}

/* BFFUserClaims: only the claims named there leave the server; the others
 * stay in the session for Require bff-claim and BFFPassClaims. Takes and
 * returns one reference. */
static json_t *only_user_claims(const bff_site_t *site, json_t *claims)
{
    const char *const *name;
    json_t *out, *v;

    if (!site->user_claims || !claims) {
        return claims;
    }
    out = json_object();
    for (name = site->user_claims; out && *name; ++name) {
        if ((v = json_object_get(claims, *name))) {
            json_object_set(out, *name, v);
        }
    }
    json_decref(claims);
    return out;
}

/* ?slide=false: an answer that does not count as use (an SPA polling the
 * session's state must not keep it alive). Anything else slides. */
static int wants_slide(request_rec *r)
{
    apr_table_t *q = NULL;
    const char *v;

    if (!r->args || APR_SUCCESS != bff_url_parse_query(r->pool, r->args, &q) || !q) {
        return 1;
    }
    v = apr_table_get(q, "slide");
    return !(v && !strcmp(v, "false"));
}

static json_t *user_json(request_rec *r, const bff_site_t *site, const bff_session_t *s)
{
    apr_int64_t now = bff_util_now();
    json_t *claims = json_loads(s->claims ? s->claims : "{}", 0, NULL);

    if (!json_is_object(claims)) {
        json_decref(claims);
        claims = json_object();
    }
    if (!(claims = only_user_claims(site, claims))) {
        return NULL;
    }
    return json_pack("{s:o,s:s,s:I,s:I,s:s}", "claims", claims, "sub", s->sub, "sessionExpiresIn",
                     (json_int_t)(s->expires - now), "idleExpiresIn",
                     (json_int_t)(s->last_access + site->idle_timeout - now), "logoutUrl",
                     apr_pstrcat(r->pool, base_path(r),
                                 "logout?sid=", s->logout_id ? s->logout_id : "", NULL));
}

int bff_user_handle(request_rec *r, bff_site_t *site)
{
    const bff_dir_conf_t *dc = bff_dir_conf(r);
    bff_req_session_t *rs;
    const char *why;
    apr_status_t rv;
    json_t *o;

    if ((why = bff_csrf_check(r, site, dc))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "BFF00230: user request refused: %s", why);
        return bff_csrf_refuse(r, dc);
    }
    rv = bff_glue_session_load(r, site, &rs);
    if (rv == APR_SUCCESS && wants_slide(r)
        && bff_glue_session_touch(r, site, rs) == APR_NOTFOUND) {
        rv = APR_NOTFOUND;
    }
    if (rv != APR_SUCCESS) {
        return bff_respond_outcome(r,
                                   rv == APR_NOTFOUND ? BFF_OUTCOME_NO_SESSION
                                                      : BFF_OUTCOME_STORE_DOWN,
                                   BFF_AS_API, NULL);
    }
    if (!(o = user_json(r, site, rs->s))) {
        return bff_respond_outcome(r, BFF_OUTCOME_INTERNAL, BFF_AS_API,
                                   "The response could not be encoded.");
    }
    return bff_respond_json(r, o);
}
