/* The one error enum every fallible function returns. The HTTP layer maps each value to
 * a problem response in one table (src/http/problem.c). */
#ifndef SLUICE_CORE_ERR_H
#define SLUICE_CORE_ERR_H

enum err {
    ERR_OK = 0,
    ERR_DONE,      /* iteration finished (not a failure) */
    ERR_NOMEM,     /* never returned in practice: allocation failure aborts */
    ERR_INVALID,   /* input failed validation (422) */
    ERR_MALFORMED, /* input could not be parsed (400) */
    ERR_NOT_FOUND, /* no such thing, or it belongs to another tenant (404) */
    ERR_CONFLICT,  /* duplicate or state clash (409) */
    ERR_TOO_BIG,   /* a limit was exceeded (413) */
    ERR_STORAGE,   /* the database failed; nothing was accepted (503) */
    ERR_IO,        /* file or network I/O failed */
    ERR_AUTH,      /* missing or unknown credentials (401) */
    ERR_FORBIDDEN, /* permission missing (403) */
    ERR_SHUTDOWN,  /* the server is stopping (503) */
    ERR_INTERNAL,  /* a bug (500) */
};

/* A short lower-case name for logs, e.g. "storage". Static string. */
const char *err_name(enum err rc);

#endif
