/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the userinfo endpoint (bff_userinfo.h): fetch with the access token, parse, refuse a
 * signed or encrypted answer, check sub, merge under the ID token's claims.
 */
#include <string.h>
#include <strings.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "bff_jose.h"
#include "bff_userinfo.h"

static apr_status_t json_release(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

/* The object lives as long as p. */
static json_t *pool_owned(apr_pool_t *p, json_t *j)
{
    if (j) {
        apr_pool_cleanup_register(p, j, json_release, apr_pool_cleanup_null);
    }
    return j;
}

/* "application/jwt", any case, parameters allowed after it. */
static int is_jwt_type(const char *ct)
{
    static const char jwt[] = "application/jwt";
    apr_size_t n = sizeof(jwt) - 1;

    while (ct && apr_isspace(*ct)) {
        ++ct;
    }
    return ct && !strncasecmp(ct, jwt, n) && (!ct[n] || ct[n] == ';' || apr_isspace(ct[n]));
}

apr_status_t bff_userinfo_parse(apr_pool_t *p, const bff_http_resp_t *resp, json_t **claims,
                                const char **err)
{
    json_t *doc, *sub;

    *claims = NULL;
    *err = NULL;
    if (!resp) {
        *err = "userinfo endpoint: no response";
        return APR_EGENERAL;
    }
    if (resp->status != 200) {
        *err = apr_psprintf(p, "userinfo endpoint answered HTTP %ld", resp->status);
        return APR_EGENERAL;
    }
    if (is_jwt_type(resp->content_type)) {
        *err = "userinfo endpoint answered application/jwt (a signed or encrypted userinfo "
               "response), which mod_bff does not verify; register the client for plain "
               "JSON userinfo (no userinfo_signed_response_alg or "
               "userinfo_encrypted_response_alg)";
        return APR_ENOTIMPL;
    }
    doc = resp->body ? json_loadb(resp->body, resp->len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!json_is_object(doc)) {
        json_decref(doc);
        *err = "userinfo endpoint: the answer is not a JSON object";
        return APR_EINVAL;
    }
    sub = json_object_get(doc, "sub");
    if (!json_is_string(sub) || json_string_length(sub) == 0) {
        json_decref(doc);
        *err = "userinfo endpoint: the answer has no sub";
        return APR_EINVAL;
    }
    *claims = pool_owned(p, doc);
    return APR_SUCCESS;
}

apr_status_t bff_userinfo_fetch(apr_pool_t *p, const bff_http_opts_t *http, const char *endpoint,
                                const char *access_token, json_t **claims, const char **err)
{
    bff_http_opts_t o;
    bff_http_resp_t *resp = NULL;
    const char *herr = NULL;
    apr_status_t rv;

    *claims = NULL;
    *err = NULL;
    memset(&o, 0, sizeof(o));
    if (http) {
        o = *http;
    }
    if (!o.max_body || o.max_body > BFF_USERINFO_MAX_BODY) {
        o.max_body = BFF_USERINFO_MAX_BODY;
    }
    rv = bff_http_get_bearer(p, &o, endpoint, access_token, &resp, &herr);
    if (rv != APR_SUCCESS) {
        *err = apr_psprintf(p, "userinfo endpoint: %s", herr ? herr : "request failed");
        return rv;
    }
    return bff_userinfo_parse(p, resp, claims, err);
}

apr_status_t bff_userinfo_merge(apr_pool_t *p, json_t *id_claims, json_t *userinfo, json_t **merged,
                                const char **err)
{
    const char *id_sub = json_string_value(json_object_get(id_claims, "sub"));
    const char *ui_sub = json_string_value(json_object_get(userinfo, "sub"));
    const char *name;
    json_t *out, *v;

    *merged = NULL;
    *err = NULL;
    if (!json_is_object(id_claims) || !json_is_object(userinfo)) {
        *err = "userinfo: claims are not JSON objects";
        return APR_EINVAL;
    }
    /* Exactly, no normalisation: another sub is another user (token
     * substitution), whatever the rest of the answer says. */
    if (!id_sub || !ui_sub || strcmp(id_sub, ui_sub)) {
        *err = "userinfo sub does not equal the ID token's sub (OIDC Core 5.3.4)";
        return APR_EINVAL;
    }
    if (!(out = json_deep_copy(id_claims))) {
        *err = "userinfo: out of memory";
        return APR_ENOMEM;
    }
    json_object_foreach(userinfo, name, v)
    {
        if (!json_object_get(out, name) && json_object_set(out, name, v)) {
            json_decref(out);
            *err = "userinfo: out of memory";
            return APR_ENOMEM;
        }
    }
    *merged = pool_owned(p, out);
    return APR_SUCCESS;
}

apr_status_t bff_userinfo_carry(apr_pool_t *p, const char *session_claims, const char *old_id_token,
                                json_t *new_id_claims, json_t **out)
{
    bff_jws_t *old = NULL;
    const char *err = NULL, *name;
    json_t *had, *v, *res = NULL;

    *out = new_id_claims;
    if (!session_claims || !old_id_token || !json_is_object(new_id_claims)
        || APR_SUCCESS != bff_jose_jws_parse(p, old_id_token, &old, &err)) {
        return APR_SUCCESS;
    }
    had = json_loads(session_claims, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(had)) {
        json_decref(had);
        return APR_SUCCESS;
    }
    json_object_foreach(had, name, v)
    {
        if (json_object_get(old->payload, name) || json_object_get(new_id_claims, name)) {
            continue;
        }
        if (!res && !(res = json_deep_copy(new_id_claims))) {
            break;
        }
        json_object_set(res, name, v);
    }
    json_decref(had);
    if (res) {
        *out = pool_owned(p, res);
    }
    return APR_SUCCESS;
}
