/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the module's version and the run-time versions of its libraries.
 */
/* bff_config.h is included here only: httpd's ap_config_auto.h defines the
 * same PACKAGE_* names, so glue code asks these functions instead. */
#ifdef HAVE_CONFIG_H
#include "bff_config.h"
#endif

#include <apr_strings.h>
#include <apr_version.h>
#include <apu_version.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "bff_version.h"

/* Builds outside configure (build/fuzz.sh compiles src/ directly) have no
 * bff_config.h; they never send a request or log a start-up line. */
#ifndef PACKAGE_VERSION
#define PACKAGE_NAME "mod_bff"
#define PACKAGE_VERSION "unconfigured"
#endif

const char *bff_version(void)
{
    return PACKAGE_VERSION;
}

const char *bff_version_user_agent(void)
{
    return PACKAGE_NAME "/" PACKAGE_VERSION;
}

/* jansson_version_str() exists since jansson 2.13; older ones only tell the
 * version built against. */
static const char *jansson_version(void)
{
#if defined(JANSSON_VERSION_HEX) && JANSSON_VERSION_HEX >= 0x020d00
    return jansson_version_str();
#else
    return JANSSON_VERSION;
#endif
}

const char *bff_version_libs(apr_pool_t *p)
{
    const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);

    return apr_psprintf(p, "%s, libcurl %s, jansson %s, APR %s, APR-util %s",
                        OpenSSL_version(OPENSSL_VERSION), curl ? curl->version : "?",
                        jansson_version(), apr_version_string(), apu_version_string());
}
