/* err.h — error values: a code for the program, a sentence for the person.
 *
 * Every fallible function returns 0 or a negative ASTER_E* code and, when an
 * aster_err is passed, fills it.  The first error set wins (the root cause);
 * later calls to aster_err_set on the same struct are ignored.  API and CLI
 * render `field` and `msg` as they are; they never re-guess them. */
#ifndef ASTER_UTIL_ERR_H
#define ASTER_UTIL_ERR_H

#include <stdbool.h>
#include <stddef.h>

#define ASTER_OK        0
#define ASTER_EINVAL    (-1) /* bad input: field and msg say which and why */
#define ASTER_ENOENT    (-2) /* no such object */
#define ASTER_EEXIST    (-3) /* unique key taken (e.g. job name) */
#define ASTER_EIO       (-4) /* store or system I/O failed */
#define ASTER_EBUSY     (-5) /* resource held by someone else (locked file) */
#define ASTER_ECONFLICT (-6) /* state changed under us (version, lease, fence) */
#define ASTER_ELIMIT    (-7) /* a bound was exceeded */
#define ASTER_EUNAVAIL  (-8) /* dependency unreachable (store down) */
#define ASTER_EPERM     (-9) /* not allowed by configuration */

#if defined(__GNUC__)
#define ASTER_MUST_CHECK   __attribute__((warn_unused_result))
#define ASTER_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ASTER_MUST_CHECK
#define ASTER_PRINTF(a, b)
#endif

#define ASTER_NELEM(a) (sizeof(a) / sizeof((a)[0]))

typedef struct aster_err {
    int code;       /* ASTER_E* (negative), 0 = none */
    char field[64]; /* "day-of-month", "timeout_ms", "" */
    char msg[256];  /* one line, no newline */
} aster_err;

/* Resets `err` to "no error".  NULL is a no-op. */
void aster_err_clear(aster_err *err);

/* Sets the error unless one is already set.  Returns `code` so that callers
 * can write `return aster_err_set(err, ASTER_EINVAL, "minute", "...")`.
 * `err` may be NULL; `field` may be NULL (no field at fault). */
int aster_err_set(aster_err *err, int code, const char *field, const char *fmt, ...)
    ASTER_PRINTF(4, 5);

/* Replaces, in place, every byte of `s` that is not part of a valid UTF-8
 * sequence with '?', so that text quoting user input (a field name, a URL
 * cut at a buffer's end) can always go into JSON.  aster_err_set applies it
 * to field and msg. */
void aster_utf8_scrub(char *s);
/* Whether `s` is valid UTF-8 throughout (NULL: true). */
bool aster_utf8_valid(const char *s);

/* Short stable name of a code: "invalid", "not_found", ... (static). */
const char *aster_err_name(int code);

#endif
