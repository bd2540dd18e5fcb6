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
    return code;
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
