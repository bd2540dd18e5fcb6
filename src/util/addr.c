#include "util/addr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int aster_addr_parse(const char *s, const char *field, aster_addr *out, aster_err *err)
{
    char host[256];
    const char *colon, *port_s;
    struct addrinfo hints, *res = NULL;
    char *end;
    long port;
    int rc;

    if (!s || !*s)
        return aster_err_set(err, ASTER_EINVAL, field, "must be HOST:PORT");
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
            return aster_err_set(err, ASTER_EINVAL, field, "'%s' is not [IPV6]:PORT", s);
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        port_s = close + 2;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host))
            return aster_err_set(err, ASTER_EINVAL, field, "'%s' is not HOST:PORT", s);
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port_s = colon + 1;
    }
    port = strtol(port_s, &end, 10);
    if (!*port_s || *end || port < 0 || port > 65535)
        return aster_err_set(err, ASTER_EINVAL, field, "port '%s' is not 0-65535", port_s);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc || !res) {
        hints.ai_flags = 0; /* loopback-only hosts have no "configured" address */
        rc = getaddrinfo(host, NULL, &hints, &res);
    }
    if (rc || !res)
        return aster_err_set(err, ASTER_EINVAL, field, "cannot resolve host '%s': %s", host,
                             gai_strerror(rc));
    memset(out, 0, sizeof(*out));
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    if (out->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&out->ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&out->ss)->sin6_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

bool aster_addr_is_loopback(const aster_addr *a)
{
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

char *aster_addr_format(const aster_addr *a, int port, char *buf, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(buf, n, "%s:%d", ip, port >= 0 ? port : ntohs(in->sin_port));
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, n, "[%s]:%d", ip, port >= 0 ? port : ntohs(in6->sin6_port));
    }
    return buf;
}
