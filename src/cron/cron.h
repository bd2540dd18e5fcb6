/* cron.h — schedule expressions and their next fire instant.
 *
 * Syntax (docs/schedules.md): 5 fields (minute hour day-of-month month
 * day-of-week) or 6 (second first); * ? values names ranges (wrapping when
 * start > end) lists steps; Quartz L, L-n, nL, n#k, nW, LW; the Vixie rule
 * (both day fields restricted: either matches); macros @yearly @annually
 * @monthly @weekly @daily @midnight @hourly, @every DURATION, @at RFC3339.
 *
 * A parsed schedule is immutable: any thread may evaluate it concurrently.
 * Evaluation is pure (no I/O, no clock, no libc time zone state). */
#ifndef ASTER_CRON_CRON_H
#define ASTER_CRON_CRON_H

#include <stdint.h>

#include "cron/tz.h"
#include "util/err.h"

/* Longest expression accepted, in bytes. */
#define ASTER_CRON_EXPR_MAX 1024

typedef struct aster_cron aster_cron; /* opaque */

/* Parses `expr` (copies what it keeps).  On failure returns ASTER_EINVAL with
 * err->field one of "second" "minute" "hour" "day-of-month" "month"
 * "day-of-week" "schedule" and a one-line reason; *out is untouched.  An
 * expression that can never fire ("0 0 30 2 *") is invalid.  On success the
 * caller frees *out with aster_cron_free(). */
ASTER_MUST_CHECK
int aster_cron_parse(const char *expr, aster_cron **out, aster_err *err);
void aster_cron_free(aster_cron *c); /* NULL is a no-op */

/* What a wall time in a spring-forward gap, or one shown twice by a fall-back
 * overlap, does.  AUTO is the default rule: an hour field written `*` or
 * `*` / n follows real time (gap: SKIP, overlap: BOTH); any other hour field
 * names wall-clock times (gap: SHIFT, overlap: FIRST).  SHIFT fires once at
 * the first instant after the gap, however many gap times matched. */
typedef enum { ASTER_DST_GAP_AUTO, ASTER_DST_GAP_SHIFT, ASTER_DST_GAP_SKIP } aster_dst_gap;
typedef enum {
    ASTER_DST_OVERLAP_AUTO,
    ASTER_DST_OVERLAP_FIRST,
    ASTER_DST_OVERLAP_LAST,
    ASTER_DST_OVERLAP_BOTH
} aster_dst_overlap;

typedef struct aster_dst_policy {
    aster_dst_gap gap;
    aster_dst_overlap overlap;
} aster_dst_policy;

/* "auto" "shift" "skip" / "auto" "first" "last" "both" (case-insensitive).
 * Errors name the field "dst_gap" / "dst_overlap". */
ASTER_MUST_CHECK
int aster_dst_gap_parse(const char *s, aster_dst_gap *out, aster_err *err);
ASTER_MUST_CHECK
int aster_dst_overlap_parse(const char *s, aster_dst_overlap *out, aster_err *err);
const char *aster_dst_gap_name(aster_dst_gap g);         /* static */
const char *aster_dst_overlap_name(aster_dst_overlap o); /* static */

/* The next fire strictly after `after_sec` (Unix seconds), reading the
 * schedule as wall-clock time in `tz` under `pol`.  `anchor_sec` is where an
 * @every schedule counts from (its fires are anchor + k * period, k >= 1);
 * other schedules ignore it.  Returns 1 and sets *out_sec, or 0 when nothing
 * fires any more (a past @at) or not within 400 years (nor after year 9999).
 * Bounded work whatever the expression. */
int aster_cron_next(const aster_cron *c, const aster_tz *tz, aster_dst_policy pol,
                    int64_t anchor_sec, int64_t after_sec, int64_t *out_sec);

/* 1 for @at (fires at most once), else 0. */
int aster_cron_is_oneoff(const aster_cron *c);

/* 1 when the hour field follows real time (`*` or `*` / n, @hourly, @every,
 * @at), 0 when it names wall-clock hours. */
int aster_cron_is_realtime(const aster_cron *c);

#endif
