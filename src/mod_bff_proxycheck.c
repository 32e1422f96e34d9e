/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Glue: the start-up check that no ProxyPass hides the bff handler. mod_proxy
 * maps a URL to a backend at translate_name, before any <Location>'s
 * SetHandler: "ProxyPass / http://app/" forwards /bff/callback to the app
 * unless "ProxyPass /bff !" comes first. The login then ends at the app's
 * 404 and nothing in mod_bff's log says why. This reads mod_proxy's public
 * configuration (mod_proxy.h) as mod_proxy's own proxy_trans does: the
 * ProxyPass of the <Location> sections that cover the callback (the last one
 * wins, as sections merge), else the server's ProxyPass and ProxyPassMatch
 * in order, the first match wins; "!" excludes.
 */
#include <apr_fnmatch.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <mod_proxy.h>

#include "mod_bff.h"
#include "mod_bff_config.h"
#include "mod_bff_proxycheck.h"
#include "bff_url.h"

/* mod_proxy's alias_match(): fake is a prefix of uri, a run of slashes
 * matching a run of slashes, ending at a path segment's end. */
static int alias_match(const char *uri, const char *fake)
{
    const char *a = fake, *u = uri;

    while (*a && *u) {
        if (*a == '/') {
            if (*u != '/') {
                return 0;
            }
            while (*a == '/') {
                ++a;
            }
            while (*u == '/') {
                ++u;
            }
        }
        else if (*u++ != *a++) {
            return 0;
        }
    }
    if (*a) {
        return 0; /* the uri ended first */
    }
    return a[-1] == '/' || !*u || *u == '/';
}

static int is_exclusion(const struct proxy_alias *ent)
{
    return ent->real && !strcmp(ent->real, "!");
}

static int alias_covers(const struct proxy_alias *ent, const char *path)
{
    if (ent->regex) {
        return !ap_regexec(ent->regex, path, 0, NULL, 0);
    }
    return ent->fake && alias_match(path, ent->fake);
}

/* Whether a <Location> section applies to path, as ap_location_walk does:
 * a regex, a wildcard pattern, or a plain prefix. */
static int location_covers(const core_dir_config *cd, const char *path)
{
    if (!cd->d) {
        return 0;
    }
    if (cd->r) {
        return !ap_regexec(cd->r, path, 0, NULL, 0);
    }
    if (cd->d_is_fnmatch) {
        return APR_SUCCESS == apr_fnmatch(cd->d, path, APR_FNM_PATHNAME);
    }
    return !strncmp(path, cd->d, strlen(cd->d));
}

/* The ProxyPass that maps path, or NULL (none, or an exclusion). *where
 * says which section it is in. */
static const struct proxy_alias *proxy_for(apr_pool_t *p, server_rec *s, module *proxy,
                                           const char *path, const char **where)
{
    core_server_config *core = ap_get_core_module_config(s->module_config);
    const proxy_server_conf *ps = ap_get_module_config(s->module_config, proxy);
    const struct proxy_alias *loc = NULL;
    int i;

    for (i = 0; core->sec_url && i < core->sec_url->nelts; ++i) {
        ap_conf_vector_t *sec = APR_ARRAY_IDX(core->sec_url, i, ap_conf_vector_t *);
        const core_dir_config *cd = ap_get_core_module_config(sec);
        const proxy_dir_conf *pd = ap_get_module_config(sec, proxy);

        if (pd && pd->alias_set && pd->alias && location_covers(cd, path)) {
            loc = pd->alias;
            *where = apr_psprintf(p, "<Location %s> ProxyPass", cd->d);
        }
    }
    if (loc) {
        return is_exclusion(loc) ? NULL : loc;
    }
    for (i = 0; ps && ps->aliases && i < ps->aliases->nelts; ++i) {
        const struct proxy_alias *ent = &APR_ARRAY_IDX(ps->aliases, i, struct proxy_alias);

        if (alias_covers(ent, path)) {
            *where = ent->regex ? "ProxyPassMatch" : "ProxyPass";
            return is_exclusion(ent) ? NULL : ent;
        }
    }
    return NULL;
}

void bff_proxycheck_run(apr_pool_t *p, server_rec *s)
{
    module *proxy = ap_find_linked_module("mod_proxy.c");
    server_rec *vs;

    if (!proxy) {
        return;
    }
    for (vs = s; vs; vs = vs->next) {
        const bff_srv_conf_t *sc = bff_srv_conf(vs);
        const struct proxy_alias *ent;
        const char *where = NULL, *base;
        bff_url_t u;

        /* The handler's location is the callback's directory. */
        if (!sc || !sc->redirect_uri || APR_SUCCESS != bff_url_parse(p, sc->redirect_uri, &u)
            || !u.path) {
            continue;
        }
        if (!(ent = proxy_for(p, vs, proxy, u.path, &where))) {
            continue;
        }
        base = apr_pstrndup(p, u.path, (apr_size_t)(strrchr(u.path, '/') - u.path));
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, vs,
                     "BFF03201: %s %s %s covers %s, the location of the bff handler "
                     "(%s %s): mod_proxy forwards its requests and no login can complete; "
                     "put \"ProxyPass %s !\" before it",
                     where, ent->fake ? ent->fake : "", ent->real ? ent->real : "", u.path,
                     BFF_D_REDIRECT_URI, sc->redirect_uri, *base ? base : "/");
    }
}
