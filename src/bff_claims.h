/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: a session's claims as the rest of httpd sees them: dotted-path lookup, matching for
 * Require bff-claim, and the text forms for environment variables and request headers.
 */
#ifndef BFF_CLAIMS_H
#define BFF_CLAIMS_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_tables.h>
#include <jansson.h>

/* Longest claim value passed on (env or header), longest dotted path (and
 * claim name turned into an env or header name), most steps in a path. */
#define BFF_CLAIMS_MAX_VALUE 4096
#define BFF_CLAIMS_MAX_PATH 256
#define BFF_CLAIMS_MAX_DEPTH 8

/* The claim at a dotted path ("email", "realm_access.roles") in the claims
 * object, or NULL: claims not an object, path empty or longer than
 * BFF_CLAIMS_MAX_PATH, or no claim there (absent, a step is not an object,
 * an empty segment, more than BFF_CLAIMS_MAX_DEPTH segments). A borrowed
 * reference. A top-level claim named by the whole path is tried first, so a
 * claim whose own name holds dots (or is a URL, as namespaced claims are:
 * "https://example.com/roles") is found whatever its segments look like. */
json_t *bff_claims_get(json_t *claims, const char *path);

/* Require bff-claim: 1 when v is a string equal to one of values, or an
 * array holding such a string; numbers and booleans (alone or in an array)
 * compare in their JSON text ("42", "true"); objects, null, nested arrays,
 * a NULL v and an empty values list never match. */
int bff_claims_match(const json_t *v, const apr_array_header_t *values /* const char * */);

/* The text of a claim for the rest of httpd, in p: a string as it is, a
 * number or boolean in its JSON text, an array of strings (numbers,
 * booleans) joined with "," (an empty array is ""), anything else (objects,
 * mixed arrays, and arrays of strings one of which holds a ",", which a
 * join would make look like two values) as compact JSON.
 * APR_EINVAL when the value cannot be passed safely: longer than
 * BFF_CLAIMS_MAX_VALUE bytes, or holding a control character (CR, LF, NUL,
 * any < 0x20 but HTAB, or 0x7F) or, for a header (for_header), anything but
 * visible ASCII, space and HTAB; null (or a NULL v) is APR_NOTFOUND. *out is
 * NULL on any failure. */
apr_status_t bff_claims_text(apr_pool_t *p, const json_t *v, int for_header, const char **out);

/* "BFF_CLAIM_" + the claim name upper-cased, every byte but [A-Za-z0-9]
 * turned into "_" ("realm_access.roles" -> "BFF_CLAIM_REALM_ACCESS_ROLES").
 * NULL for a NULL or empty name or one longer than BFF_CLAIMS_MAX_PATH.
 * Different names may give the same variable ("a.b", "a_b"). */
const char *bff_claims_env_name(apr_pool_t *p, const char *name);

/* "X-BFF-Claim-" + the claim name with the first letter of each [A-Za-z0-9]
 * run upper-cased (the rest kept) and every other byte turned into "-"
 * ("email" -> "X-BFF-Claim-Email", "realm_access.roles" ->
 * "X-BFF-Claim-Realm-Access-Roles"); always an HTTP token. NULL as for
 * bff_claims_env_name(). */
const char *bff_claims_header_name(apr_pool_t *p, const char *name);

/* The prefix every forged header starts with (compared case-insensitively). */
#define BFF_CLAIMS_HEADER_PREFIX "X-BFF-Claim-"

#endif /* BFF_CLAIMS_H */
