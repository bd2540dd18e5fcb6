/* tz.h — IANA time zones read from TZif files (RFC 8536), without libc.
 *
 * A zone maps a UTC instant to its offset, and a local wall time back to the
 * 0, 1 or 2 instants that show it.  Zones come from $TZDIR or
 * /usr/share/zoneinfo (v1, v2 and v3 files; the POSIX TZ footer covers
 * instants after the last transition); "UTC" is built in.  Nothing here
 * touches the C library's zone state (no TZ, tzset, localtime, mktime), so a
 * different zone per job on any thread is safe.
 *
 * Zones are loaded once and shared: aster_tz_get() returns a borrowed,
 * immutable zone valid until aster_tz_cache_free().  Any thread may call
 * everything here; aster_tz_cache_free() only once no zone is in use. */
#ifndef ASTER_CRON_TZ_H
#define ASTER_CRON_TZ_H

#include <stdint.h>

#include "util/err.h"

typedef struct aster_tz aster_tz;

/* Longest zone name accepted ("America/Argentina/ComodRivadavia" is 32). */
#define ASTER_TZ_NAME_MAX 128

/* Looks `name` up, loading it on first use.  Names that are empty, absolute,
 * contain "..", or characters outside [A-Za-z0-9/_+-] are refused without
 * touching the file system.  Unknown zone: ASTER_EINVAL, field "timezone".
 * *out is borrowed (see above) and untouched on failure. */
ASTER_MUST_CHECK
int aster_tz_get(const char *name, const aster_tz **out, aster_err *err);

/* Frees every loaded zone.  At exit, once no thread uses a zone. */
void aster_tz_cache_free(void);

/* The name it was looked up by (borrowed from the zone). */
const char *aster_tz_name(const aster_tz *tz);

/* Seconds east of UTC in effect at `utc_sec`. */
int32_t aster_tz_offset_at(const aster_tz *tz, int64_t utc_sec);

/* The stretch of time with one offset that contains an instant.
 * [start, end) in UTC seconds; start is INT64_MIN when nothing changes before,
 * end INT64_MAX when nothing changes after.  prev_off is the offset just
 * before `start` and next_off the one from `end` on (equal to off when there
 * is no such change).  A boundary may keep the offset (off == prev_off). */
typedef struct aster_tz_seg {
    int64_t start, end;
    int32_t off, prev_off, next_off;
} aster_tz_seg;

void aster_tz_segment(const aster_tz *tz, int64_t utc_sec, aster_tz_seg *out);

/* Resolves a local wall time (seconds since 1970-01-01T00:00 local) to the
 * instants that show it, earliest first: returns 1 (normal), 2 (a fall-back
 * overlap) or 0 (a spring-forward gap; then *gap_end, when not NULL, is the
 * first instant after the gap). */
int aster_tz_resolve(const aster_tz *tz, int64_t local_sec, int64_t out[2], int64_t *gap_end);

#endif
