/* Address classification and URL checks for outbound webhooks. Any thread. */
#include "deliver/ssrf.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static bool v4_blocked(uint32_t a)
{
    uint8_t b0 = (uint8_t)(a >> 24), b1 = (uint8_t)(a >> 16);
    return b0 == 0 || b0 == 10 || b0 == 127 || (b0 == 169 && b1 == 254) ||
           (b0 == 172 && (b1 & 0xf0) == 16) || (b0 == 192 && b1 == 168) ||
           (b0 == 100 && (b1 & 0xc0) == 64) || b0 >= 224;
}

bool ssrf_address_blocked(const struct sockaddr *sa)
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

enum err ssrf_check_url(const char *url, bool allow_private, char *why, size_t whylen)
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
        if (ssrf_address_blocked(a->ai_addr)) {
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
