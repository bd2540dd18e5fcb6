/* time.h — wall and monotonic clocks, civil dates, RFC 3339.
 *
 * Wall time (aster_time_us, microseconds since the Unix epoch, UTC) is what
 * schedules and records use; monotonic time (aster_mono_us) is what timeouts
 * and leases measured inside one process use.  They are distinct types so
 * that one is not passed where the other is meant.
 *
 * Calendar arithmetic is proleptic Gregorian on "days since 1970-01-01" and
 * never touches the C library's time zone state (no gmtime, mktime, tzset):
 * every function here is pure and thread-safe. */
#ifndef ASTER_UTIL_TIME_H
#define ASTER_UTIL_TIME_H

#include <stdint.h>
#include <stddef.h>

#include "util/err.h"

typedef int64_t aster_time_us;
typedef int64_t aster_mono_us;

#define ASTER_US_PER_SEC INT64_C(1000000)
#define ASTER_US_PER_MS  INT64_C(1000)

aster_time_us aster_time_now(void);
aster_mono_us aster_mono_now(void);

/* Civil date <-> days since 1970-01-01.  month 1-12, day 1-31. */
int64_t aster_days_from_civil(int64_t year, int month, int day);
void aster_civil_from_days(int64_t days, int64_t *year, int *month, int *day);
/* 0 = Sunday ... 6 = Saturday. */
int aster_weekday_from_days(int64_t days);
int aster_days_in_month(int64_t year, int month);
int aster_is_leap_year(int64_t year);

/* Broken-down UTC (or local, when the caller adds an offset first). */
typedef struct aster_civil {
    int64_t year;
    int month, day, hour, min, sec; /* 1-12, 1-31, 0-23, 0-59, 0-59 */
    int usec;                       /* 0-999999 */
} aster_civil;

void aster_civil_from_sec(int64_t unix_sec, aster_civil *out);
int64_t aster_sec_from_civil(const aster_civil *c); /* ignores usec */

/* Parses an RFC 3339 instant: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM).
 * 't' and 'z' are accepted in lower case, and a space in place of 'T'.
 * Fractions beyond microseconds are truncated.  On failure returns
 * ASTER_EINVAL with `field` as the error's field; *out is untouched. */
ASTER_MUST_CHECK
int aster_time_parse_rfc3339(const char *s, const char *field, aster_time_us *out, aster_err *err);

/* "2026-11-22T18:00:00.000Z" (milliseconds).  buf needs 32 bytes. */
#define ASTER_TIME_BUFSZ 32
char *aster_time_format_ms(aster_time_us t, char *buf, size_t n);
/* "2026-11-22T18:00:00Z" (whole seconds, truncated toward -inf). */
char *aster_time_format_sec(int64_t unix_sec, char *buf, size_t n);

/* Parses a duration "90s", "5m", "1h30m", "2d", "250ms" into microseconds.
 * Units d h m s ms; at least one component; no sign.  Returns ASTER_EINVAL
 * naming `field` on failure. */
ASTER_MUST_CHECK
int aster_duration_parse(const char *s, const char *field, int64_t *out_us, aster_err *err);

#endif
