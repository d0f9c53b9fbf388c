/* The fuzz harness shared by the libFuzzer targets of tests/fuzz (harness.c).
 *
 * Targets of pure functions (time, Retry-After, S3 XML, config, cursors) call them directly.
 * Targets of the HTTP surface run the real server in-process: store on SQLite in a temp dir,
 * the API, libmicrohttpd's thread pool on a loopback port, and no delivery engines (role
 * "api" only, so nothing leaves the machine). Each input becomes one request sent over a
 * fresh loopback connection from the fuzzer's thread; the answer is read whole and checked
 * (fz_check) so that a wrong answer — a 500, a problem that is not RFC 9457 JSON, a secret in
 * a response — aborts like a crash does and libFuzzer keeps the input.
 *
 * Threads: the fuzzer's main thread calls everything here; the server's own threads run
 * behind the socket. Invariant: the server and its fixtures exist from fz_server() on until
 * the process exits (an atexit handler stops it and removes the temp dir). */
#ifndef SLUICE_FUZZ_H
#define SLUICE_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The fixtures every HTTP target may name: ids of things that exist in tenant "fz". */
struct fz_fixtures {
    char key[128];   /* tenant fz, every permission */
    char other[128]; /* tenant other, every permission */
    char pub[128];   /* tenant fz, events:publish only */
    char integration[80], s3_integration[80];
    char channel[80], policy[80], issue[80], alert[80], task[80], event[80];
};

/* One answer as read from the socket. */
struct fz_resp {
    int status;
    char content_type[128];
    char retry_after[32];
    char *body; /* NUL-terminated, owned; free with fz_resp_free */
    size_t body_len;
};

/* Starts the server once (later calls return the same fixtures). */
const struct fz_fixtures *fz_server(void);

/* Sends raw bytes on a new connection, half-closes it and reads until EOF. Returns the whole
 * answer (malloc'd, NUL-terminated, *n bytes) or NULL when nothing came back. Aborts when
 * the server neither answers nor closes within 20 s (a hang is a finding). */
char *fz_raw(const void *data, size_t len, size_t *n);

/* Like fz_raw, for inputs that may end inside a request (the server rightly waits for the
 * rest) or keep the connection alive: waits for EOF or for expect whole answers (giving up
 * after 250 ms without bytes); expect 0 (no whole request) gives up after 5 quiet ms,
 * expect < 0 (answers that cannot be counted, after HEAD) after 100 ms without bytes. Then
 * resets the connection.
 * Returns whatever came back (malloc'd, NUL-terminated, possibly empty). */
char *fz_raw_bounded(const void *data, size_t len, int expect, size_t *n);

/* Sends one request (method, target = path with query) with an optional bearer token and
 * JSON body; parses the answer into *r. Returns false when the connection closed without a
 * complete answer. */
bool fz_request(const char *method, const char *target, const char *token, const void *body,
                size_t len, struct fz_resp *r);
void fz_resp_free(struct fz_resp *r);

/* Parses a raw HTTP/1.1 answer (status line, headers, Content-Length body) into *r;
 * returns the bytes it took, or 0 when it is not a complete answer. */
size_t fz_parse(const char *raw, size_t n, struct fz_resp *r);

/* The checks every answer of the API must pass; aborts with a message otherwise:
 *   - the status is a real one (100-599) and not 500; 5xx only when allow_5xx;
 *   - a JSON Content-Type comes with a body that parses as JSON;
 *   - an error status (>= 400) from the API is an RFC 9457 problem (application/problem+json
 *     with type, title, status equal to the status, detail);
 *   - no fixture secret (webhook api_key, S3 secret key, admin token) appears in the body. */
void fz_check(const struct fz_resp *r, bool allow_5xx, const char *what);

/* Replaces the placeholders $KEY $OTHER $PUB $ADMIN $INT $S3INT $CHN $POL $ISS $ALR $TSK
 * $EVT in s (n bytes) with the fixtures' values: a new malloc'd string (*out_len bytes). */
char *fz_expand(const char *s, size_t n, size_t *out_len);

/* One request shape of a body target: the fuzz input (placeholders expanded) is its body. */
struct fz_route {
    const char *method;
    const char *path; /* may hold placeholders ($INT...) */
    bool allow_5xx;   /* 503 is a right answer (an outbound test action may be refused) */
};

/* The whole of a body target: data[0] picks one of routes, the rest is the JSON body, sent
 * with the all-permission key of tenant fz; the answer must pass fz_check. */
int fz_body_target(const uint8_t *data, size_t size, const struct fz_route *routes, size_t nroutes);

/* The admin token the in-process server runs with. */
extern const char fz_admin_token[];

#endif
