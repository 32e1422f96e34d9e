/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Core: the outcomes a request can end with, one vocabulary for every flow. Core services say
 * which one happened; the glue's table (mod_bff_respond.c) turns each into an HTTP status, a
 * JSON error code, a page and a log level.
 */
#ifndef BFF_OUTCOME_H
#define BFF_OUTCOME_H

typedef enum {
    BFF_OUTCOME_OK = 0,
    BFF_OUTCOME_NO_SESSION,       /* no cookie, or it names no live session */
    BFF_OUTCOME_SESSION_ENDED,    /* ended during this request (refresh refused, logout) */
    BFF_OUTCOME_CSRF,             /* the request failed the CSRF check */
    BFF_OUTCOME_FORBIDDEN,        /* signed in, but authorization (Require) refused */
    BFF_OUTCOME_BAD_REQUEST,      /* malformed or unacceptable input from the client */
    BFF_OUTCOME_STORE_DOWN,       /* the session store failed */
    BFF_OUTCOME_STORE_FULL,       /* the store holds only live entries; nothing evicted */
    BFF_OUTCOME_PROVIDER_DOWN,    /* the provider failed or refused a back-channel call */
    BFF_OUTCOME_PROVIDER_TIMEOUT, /* the provider did not answer in time */
    BFF_OUTCOME_PROVIDER_DENIED,  /* the provider ended the login with an error */
    BFF_OUTCOME_PROVIDER_INVALID, /* the provider's answer failed verification */
    BFF_OUTCOME_NOT_CONFIGURED,   /* a mod_bff location in a server without BFFProvider */
    BFF_OUTCOME_NOT_FOUND,        /* no such endpoint */
    BFF_OUTCOME_METHOD,           /* method not allowed for the endpoint */
    BFF_OUTCOME_INTERNAL,         /* our own failure (random bytes, encoding, sealing) */
    BFF_OUTCOME_COUNT
} bff_outcome_e;

/* Short stable name ("store_down"), for logs and tests. */
const char *bff_outcome_name(bff_outcome_e o);

#endif /* BFF_OUTCOME_H */
