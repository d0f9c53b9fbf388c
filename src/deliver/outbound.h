/* Outbound HTTP, one set of rules for every target (webhook POSTs, S3 requests, the test
 * actions): curl defaults (user agent, no redirects, http and https only, no signals,
 * timeouts), the SSRF guard (at validation and again at every socket open, so a name that
 * resolves differently later is still refused), a bounded response body, and the answer's
 * Retry-After. Any thread; a struct outbound belongs to the thread running its transfer. */
#ifndef SLUICE_DELIVER_OUTBOUND_H
#define SLUICE_DELIVER_OUTBOUND_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/err.h"

/* True for loopback, private (RFC 1918, ULA), link-local (incl. 169.254.169.254 metadata),
 * CGNAT, unspecified, multicast and IPv4-mapped forms of those. */
bool outbound_address_blocked(const struct sockaddr *sa);
/* Checks an http(s) URL: scheme, host, and (unless allow_private) that no address the host
 * resolves to is blocked. On failure writes the reason to why. */
enum err outbound_check_url(const char *url, bool allow_private, char *why, size_t whylen);

/* One request's outbound state: the easy handle and what its answer left. */
struct outbound {
    CURL *easy;
    struct buf body;     /* the first `keep` bytes of the response body */
    size_t keep;         /* how much of the body to keep */
    int64_t retry_after; /* the answer's Retry-After in ms, -1: none */
    bool allow_private;  /* --allow-private-targets */
    /* Called with every response header line (S3 reads its ETag). May be NULL. */
    void (*on_header)(void *ud, const char *line, size_t n);
    void *header_ud;
};

/* How long a request may take: a webhook POST has a hard limit (timeout_ms); an upload
 * (stall_only) is given up only when it stops moving for timeout_ms, however large it is.
 * Connecting takes at most min(timeout_ms, 10 s) either way. */
struct outbound_limits {
    int64_t timeout_ms;
    bool stall_only;
};

/* Makes o->easy for a request to url with the defaults, the SSRF guard (unless
 * allow_private), limits, and the response kept up to keep bytes. o->on_header and
 * o->header_ud may be set before. The caller adds method, body and headers. */
void outbound_init(struct outbound *o, const char *url, bool allow_private, size_t keep,
                   const struct outbound_limits *limits);
/* Frees the easy handle and the kept body (o itself is the caller's). */
void outbound_cleanup(struct outbound *o);
/* After the transfer: the HTTP status, 0 when there was no answer (cc != CURLE_OK). */
long outbound_status(const struct outbound *o, CURLcode cc);
/* A failed transfer as text for attempts and alerts; a refused connection says that the
 * SSRF guard may be why when private targets are not allowed. Static text. */
const char *outbound_error(const struct outbound *o, CURLcode cc);
/* The answer of POST /v1/integrations/{id}/test, every documented member present:
 * {"ok", "status" (null without an answer), "latency_ms", "error" (null when ok),
 * "response_body" (null when empty)}. Caller decrefs; drivers may add their own. */
json_t *outbound_test_json(bool ok, long status, int64_t latency_ms, const char *error,
                           const char *response_body);

#endif
