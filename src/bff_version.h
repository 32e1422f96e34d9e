/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the module's version (one source: configure.ac's AC_INIT) and the
 * versions of the libraries it runs with.
 */
#ifndef BFF_VERSION_H
#define BFF_VERSION_H

#include <apr_pools.h>

/* "0.1.0": AC_INIT's version, through the generated build/bff_config.h. */
const char *bff_version(void);

/* "mod_bff/0.1.0": the User-Agent of the back channel. */
const char *bff_version_user_agent(void);

/* "OpenSSL 3.0.x ..., libcurl 7.88.1, jansson 2.14, APR 1.7.2, APR-util 1.6.3":
 * the versions loaded at run time, which can differ from those built against. */
const char *bff_version_libs(apr_pool_t *p);

#endif
