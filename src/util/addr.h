/* addr.h — "HOST:PORT" listen addresses. */
#ifndef ASTER_UTIL_ADDR_H
#define ASTER_UTIL_ADDR_H

#include <stdbool.h>
#include <sys/socket.h>

#include "util/err.h"

typedef struct aster_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} aster_addr;

/* Parses "127.0.0.1:8080", "[::1]:8080", "localhost:8080", "0.0.0.0:0"
 * (numeric addresses, or a host name resolved once).  Errors name `field`. */
ASTER_MUST_CHECK
int aster_addr_parse(const char *s, const char *field, aster_addr *out, aster_err *err);
bool aster_addr_is_loopback(const aster_addr *a);
/* "127.0.0.1:8080" / "[::1]:8080" into buf; port overrides the stored one
 * when >= 0 (for port 0 resolved after bind). */
char *aster_addr_format(const aster_addr *a, int port, char *buf, size_t n);

#endif
