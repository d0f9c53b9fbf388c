/* The SSRF guard: which addresses a webhook may reach without --allow-private-targets.
 * Pure functions plus a DNS check; any thread. */
#ifndef SLUICE_DELIVER_SSRF_H
#define SLUICE_DELIVER_SSRF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/err.h"

/* True for loopback, private (RFC 1918, ULA), link-local (incl. 169.254.169.254 metadata),
 * CGNAT, unspecified, multicast and IPv4-mapped forms of those. */
bool ssrf_address_blocked(const struct sockaddr *sa);
/* Checks an http(s) URL: scheme, host, and (unless allow_private) that no address the host
 * resolves to is blocked. On failure writes the reason to why. */
enum err ssrf_check_url(const char *url, bool allow_private, char *why, size_t whylen);

#endif
