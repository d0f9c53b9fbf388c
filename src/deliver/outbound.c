/* Outbound HTTP: the SSRF guard, curl defaults, bounded bodies, Retry-After. Any thread;
 * nothing here is shared between transfers. */
#include "deliver/outbound.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "core/timeutil.h"
#include "deliver/retry.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

static bool v4_blocked(uint32_t a)
{
    uint8_t b0 = (uint8_t)(a >> 24), b1 = (uint8_t)(a >> 16);
    return b0 == 0 || b0 == 10 || b0 == 127 || (b0 == 169 && b1 == 254) ||
           (b0 == 172 && (b1 & 0xf0) == 16) || (b0 == 192 && b1 == 168) ||
           (b0 == 100 && (b1 & 0xc0) == 64) || b0 >= 224;
}

bool outbound_address_blocked(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return v4_blocked(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        const uint8_t *b = in6->sin6_addr.s6_addr;
        uint32_t a = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
        static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b}; /* 64:ff9b::/96 */
        /* IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), and NAT64's
         * well-known prefix, which a NAT64 network routes to the IPv4 address. */
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) || IN6_IS_ADDR_V4COMPAT(&in6->sin6_addr) ||
            !memcmp(b, nat64, sizeof nat64))
            return v4_blocked(a);
        if (b[0] == 0x20 && b[1] == 0x02) /* 6to4 2002:a.b.c.d::/48 */
            return v4_blocked((uint32_t)b[2] << 24 | (uint32_t)b[3] << 16 | (uint32_t)b[4] << 8 |
                              b[5]);
        if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1)
            return true; /* 64:ff9b:1::/48, NAT64 for local use */
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) ||
               IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr) || IN6_IS_ADDR_SITELOCAL(&in6->sin6_addr) ||
               IN6_IS_ADDR_MULTICAST(&in6->sin6_addr) ||
               (b[0] & 0xfe) == 0xfc; /* fc00::/7 unique local */
    }
    return true;
}

enum err outbound_check_url(const char *url, bool allow_private, char *why, size_t whylen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    enum err rc = ERR_INVALID;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(why, whylen, "must be an http or https URL");
        goto out;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        snprintf(why, whylen, "must be an http or https URL");
        goto out;
    }
    if (allow_private) {
        rc = ERR_OK;
        goto out;
    }
    char h[256];
    snprintf(h, sizeof h, "%s", host);
    size_t n = strlen(h);
    if (h[0] == '[' && n > 2 && h[n - 1] == ']') { /* IPv6 literal */
        memmove(h, h + 1, n - 2);
        h[n - 2] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(h, NULL, &hints, &res);
    if (g != 0) {
        snprintf(why, whylen, "host \"%s\" does not resolve: %s", h, gai_strerror(g));
        goto out;
    }
    rc = ERR_OK;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (outbound_address_blocked(a->ai_addr)) {
            snprintf(why, whylen,
                     "resolves to a loopback, private or link-local address, which is refused "
                     "(the server runs without --allow-private-targets)");
            rc = ERR_INVALID;
            break;
        }
    freeaddrinfo(res);
out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

/* --- requests ------------------------------------------------------------------------ */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct outbound *o = ud;
    size_t n = size * nmemb;
    if (o->body.len < o->keep)
        buf_append(&o->body, ptr, o->body.len + n > o->keep ? o->keep - o->body.len : n);
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct outbound *o = ud;
    size_t n = size * nmemb;
    int64_t v = retry_after_header(ptr, n, time_now_ms());
    if (v != -2)
        o->retry_after = v;
    if (o->on_header)
        o->on_header(o->header_ud, ptr, n);
    return n;
}

/* The SSRF guard at connect time: every address curl is about to connect to. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    (void)purpose;
    const struct outbound *o = clientp;
    if (!o->allow_private && outbound_address_blocked(&addr->addr))
        return CURL_SOCKET_BAD;
    return socket(addr->family, addr->socktype, addr->protocol);
}

void outbound_init(struct outbound *o, const char *url, bool allow_private, size_t keep,
                   const struct outbound_limits *limits)
{
    o->easy = curl_easy_init();
    buf_init(&o->body);
    o->keep = keep;
    o->retry_after = -1;
    o->allow_private = allow_private;
    CURL *e = o->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sluice/" SLUICE_VERSION);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    int64_t t = limits->timeout_ms;
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(t < 10000 ? t : 10000));
    if (limits->stall_only) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)((t + 999) / 1000));
    } else {
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, o);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, o);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, o);
}

void outbound_cleanup(struct outbound *o)
{
    if (o->easy)
        curl_easy_cleanup(o->easy);
    o->easy = NULL;
    buf_cleanup(&o->body);
}

long outbound_status(const struct outbound *o, CURLcode cc)
{
    long status = 0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(o->easy, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

const char *outbound_error(const struct outbound *o, CURLcode cc)
{
    if (cc == CURLE_COULDNT_CONNECT && !o->allow_private)
        return "could not connect (or the address is private and refused by the SSRF guard)";
    return curl_easy_strerror(cc);
}

json_t *outbound_test_json(bool ok, long status, int64_t latency_ms, const char *error,
                           const char *response_body)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(ok));
    json_object_set_new(o, "status", status ? json_integer(status) : json_null());
    json_object_set_new(o, "latency_ms", json_integer(latency_ms));
    json_set_str(o, "error", ok ? NULL : error);
    json_set_str(o, "response_body", response_body && *response_body ? response_body : NULL);
    return o;
}
