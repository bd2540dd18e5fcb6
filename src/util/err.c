#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void aster_err_clear(aster_err *err)
{
    if (!err)
        return;
    err->code = 0;
    err->field[0] = '\0';
    err->msg[0] = '\0';
}

int aster_err_set(aster_err *err, int code, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (!err || err->code != 0)
        return code;
    err->code = code;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    /* A message is one line: a newline would break logs and CLI output. */
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    aster_utf8_scrub(err->field);
    aster_utf8_scrub(err->msg);
    return code;
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 when it is not one. */
static int utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (p[0] >= 0xe0 && p[0] <= 0xef) {
        unsigned char lo = p[0] == 0xe0 ? 0xa0 : 0x80, hi = p[0] == 0xed ? 0x9f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        unsigned char lo = p[0] == 0xf0 ? 0x90 : 0x80, hi = p[0] == 0xf4 ? 0x8f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4 : 0;
    }
    return 0;
}

void aster_utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (p && *p) {
        int n = utf8_len(p);
        if (n == 0) {
            *p++ = '?';
        } else {
            p += n;
        }
    }
}

bool aster_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (p && *p) {
        int n = utf8_len(p);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

const char *aster_err_name(int code)
{
    switch (code) {
    case ASTER_OK:
        return "ok";
    case ASTER_EINVAL:
        return "invalid";
    case ASTER_ENOENT:
        return "not_found";
    case ASTER_EEXIST:
        return "conflict";
    case ASTER_EIO:
        return "io_error";
    case ASTER_EBUSY:
        return "busy";
    case ASTER_ECONFLICT:
        return "conflict";
    case ASTER_ELIMIT:
        return "limit";
    case ASTER_EUNAVAIL:
        return "unavailable";
    case ASTER_EPERM:
        return "forbidden";
    default:
        return "error";
    }
}
