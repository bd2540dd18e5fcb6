/* test_cron.c — hand-checked next-fire cases and the error of each kind of
 * invalid input.  Every expectation below was worked out by hand from the
 * calendar and the zone's rules (comments give the local times). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cron/cron.h"
#include "util/time.h"

#define MAXF 6

typedef struct fire_case {
    const char *tz, *from, *expr, *gap, *overlap;
    const char *want[MAXF]; /* all fires expected, in order; fewer = the rest is "none" */
} fire_case;

/* NY 2026: EST->EDT 03-08 07:00Z (02:00 -> 03:00), EDT->EST 11-01 06:00Z (02:00 -> 01:00).
 * Berlin 2026: CET->CEST 03-29 01:00Z (02:00 -> 03:00), back 10-25 01:00Z (03:00 -> 02:00).
 * Lord Howe 2026: +11 -> +10:30 04-04 15:00Z (02:00 -> 01:30),
 *                 +10:30 -> +11 10-03 15:30Z (02:00 -> 02:30). */
static const fire_case fires[] = {
    /* --- America/New_York, spring forward --- */
    /* fixed hour: 02:30 does not exist; fires once at 03:00 EDT */
    {"America/New_York",
     "2026-03-08T00:00:00Z",
     "30 2 * * *",
     NULL,
     NULL,
     {"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
    {"America/New_York",
     "2026-03-08T00:00:00Z",
     "30 2 * * *",
     "skip",
     NULL,
     {"2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"}},
    /* all 60 gap minutes land on 03:00 EDT: one fire */
    {"America/New_York",
     "2026-03-08T00:00:00Z",
     "* 2 * * *",
     NULL,
     NULL,
     {"2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "2026-03-09T06:01:00Z"}},
    /* hour *: real time, 02:15 never happens */
    {"America/New_York",
     "2026-03-08T06:00:00Z",
     "15 * * * *",
     NULL,
     NULL,
     {"2026-03-08T06:15:00Z", "2026-03-08T07:15:00Z"}},
    {"America/New_York",
     "2026-03-08T06:00:00Z",
     "15 * * * *",
     "shift",
     NULL,
     {"2026-03-08T06:15:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:15:00Z"}},
    {"America/New_York",
     "2026-03-08T06:00:00Z",
     "*/30 * * * *",
     NULL,
     NULL,
     {"2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"}},
    /* --- America/New_York, fall back --- */
    {"America/New_York",
     "2026-11-01T00:00:00Z",
     "30 1 * * *",
     NULL,
     NULL,
     {"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
    {"America/New_York",
     "2026-11-01T00:00:00Z",
     "30 1 * * *",
     NULL,
     "first",
     {"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
    {"America/New_York",
     "2026-11-01T00:00:00Z",
     "30 1 * * *",
     NULL,
     "last",
     {"2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"}},
    {"America/New_York",
     "2026-11-01T00:00:00Z",
     "30 1 * * *",
     NULL,
     "both",
     {"2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"}},
    /* hour *: 01:00 and 01:30 each happen twice */
    {"America/New_York",
     "2026-11-01T05:00:00Z",
     "0,30 * * * *",
     NULL,
     NULL,
     {"2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z",
      "2026-11-01T07:00:00Z"}},
    {"America/New_York",
     "2026-11-01T05:00:00Z",
     "0,30 * * * *",
     NULL,
     "first",
     {"2026-11-01T05:30:00Z", "2026-11-01T07:00:00Z", "2026-11-01T07:30:00Z"}},
    {"America/New_York",
     "2026-11-01T04:00:00Z",
     "0,30 * * * *",
     NULL,
     "last",
     {"2026-11-01T04:30:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z",
      "2026-11-01T07:00:00Z"}},
    /* a fixed range of hours is fixed: 01:xx fires at its first occurrence */
    {"America/New_York",
     "2026-11-01T05:00:00Z",
     "0,30 0-3 * * *",
     NULL,
     NULL,
     {"2026-11-01T05:30:00Z", "2026-11-01T07:00:00Z", "2026-11-01T07:30:00Z"}},
    /* the POSIX rule beyond the table: 2100 EDT in July, EST in December */
    {"America/New_York",
     "2100-07-01T00:00:00Z",
     "0 12 * * *",
     NULL,
     NULL,
     {"2100-07-01T16:00:00Z"}},
    {"America/New_York",
     "2100-12-01T00:00:00Z",
     "0 12 * * *",
     NULL,
     NULL,
     {"2100-12-01T17:00:00Z"}},
    /* --- Europe/Berlin --- */
    {"Europe/Berlin",
     "2026-03-29T00:00:00Z",
     "30 2 * * *",
     NULL,
     NULL,
     {"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
    {"Europe/Berlin", "2026-03-29T00:00:00Z", "30 2 * * *", "skip", NULL, {"2026-03-30T00:30:00Z"}},
    {"Europe/Berlin",
     "2026-03-29T00:00:00Z",
     "30 * * * *",
     NULL,
     NULL,
     {"2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z"}},
    {"Europe/Berlin",
     "2026-10-25T00:00:00Z",
     "30 2 * * *",
     NULL,
     NULL,
     {"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
    {"Europe/Berlin",
     "2026-10-25T00:00:00Z",
     "30 2 * * *",
     NULL,
     "last",
     {"2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"}},
    {"Europe/Berlin",
     "2026-10-24T23:30:00Z",
     "0 * * * *",
     NULL,
     NULL,
     {"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"}},
    {"Europe/Berlin",
     "2026-10-24T23:30:00Z",
     "0 */1 * * *",
     NULL,
     "first",
     {"2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"}},
    /* --- Australia/Lord_Howe: 30-minute shifts --- */
    {"Australia/Lord_Howe",
     "2026-10-03T00:00:00Z",
     "15 2 * * *",
     NULL,
     NULL,
     {"2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"}},
    {"Australia/Lord_Howe",
     "2026-10-03T00:00:00Z",
     "15 2 * * *",
     "skip",
     NULL,
     {"2026-10-04T15:15:00Z", "2026-10-05T15:15:00Z"}},
    /* 01:00 +10:30, then 02:00 is skipped, 03:00 +11 */
    {"Australia/Lord_Howe",
     "2026-10-03T14:00:00Z",
     "0 * * * *",
     NULL,
     NULL,
     {"2026-10-03T14:30:00Z", "2026-10-03T16:00:00Z"}},
    {"Australia/Lord_Howe",
     "2026-10-03T14:00:00Z",
     "0 * * * *",
     "shift",
     NULL,
     {"2026-10-03T14:30:00Z", "2026-10-03T15:30:00Z", "2026-10-03T16:00:00Z"}},
    /* 01:45 happens at 14:45Z (+11) and 15:15Z (+10:30) */
    {"Australia/Lord_Howe",
     "2026-04-04T14:00:00Z",
     "45 1 * * *",
     NULL,
     NULL,
     {"2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"}},
    {"Australia/Lord_Howe",
     "2026-04-04T14:00:00Z",
     "45 1 * * *",
     NULL,
     "last",
     {"2026-04-04T15:15:00Z", "2026-04-05T15:15:00Z"}},
    {"Australia/Lord_Howe",
     "2026-04-04T14:00:00Z",
     "45 1 * * *",
     NULL,
     "both",
     {"2026-04-04T14:45:00Z", "2026-04-04T15:15:00Z", "2026-04-05T15:15:00Z"}},
    {"Australia/Lord_Howe",
     "2026-04-04T14:40:00Z",
     "*/15 * * * *",
     NULL,
     NULL,
     {"2026-04-04T14:45:00Z", "2026-04-04T15:00:00Z", "2026-04-04T15:15:00Z",
      "2026-04-04T15:30:00Z"}},
    {"Australia/Lord_Howe",
     "2026-04-04T14:40:00Z",
     "*/15 * * * *",
     NULL,
     "first",
     {"2026-04-04T14:45:00Z", "2026-04-04T15:30:00Z", "2026-04-04T15:45:00Z"}},
    /* --- leap years, month ends, year ends (UTC) --- */
    {"UTC",
     "2025-01-01T00:00:00Z",
     "0 0 29 2 *",
     NULL,
     NULL,
     {"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
    {"UTC", "2096-03-01T00:00:00Z", "0 0 29 2 *", NULL, NULL, {"2104-02-29T00:00:00Z"}},
    {"UTC",
     "2100-01-01T00:00:00Z",
     "0 0 L 2 *",
     NULL,
     NULL,
     {"2100-02-28T00:00:00Z", "2101-02-28T00:00:00Z"}},
    {"UTC", "2025-12-31T23:59:00Z", "59 23 31 12 *", NULL, NULL, {"2026-12-31T23:59:00Z"}},
    {"UTC", "2025-12-31T23:59:59Z", "0 0 1 1 *", NULL, NULL, {"2026-01-01T00:00:00Z"}},
    {"UTC",
     "2026-01-31T00:00:00Z",
     "0 0 31 * *",
     NULL,
     NULL,
     {"2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z",
      "2026-08-31T00:00:00Z"}},
    {"UTC",
     "2025-12-31T23:59:58Z",
     "* * * * * *",
     NULL,
     NULL,
     {"2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"}},
    /* --- L, L-n, W, LW, nL, # --- */
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 L * *",
     NULL,
     NULL,
     {"2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 L-2 * *",
     NULL,
     NULL,
     {"2024-01-29T00:00:00Z", "2024-02-27T00:00:00Z"}},
    /* L-30 is day 1 of 31-day months only */
    {"UTC",
     "2026-01-01T00:00:00Z",
     "0 0 L-30 * *",
     NULL,
     NULL,
     {"2026-03-01T00:00:00Z", "2026-05-01T00:00:00Z", "2026-07-01T00:00:00Z"}},
    /* 2022-10-01 is a Saturday: 1W is Monday the 3rd, never September */
    {"UTC",
     "2022-09-30T00:00:00Z",
     "0 0 1W * *",
     NULL,
     NULL,
     {"2022-10-03T00:00:00Z", "2022-11-01T00:00:00Z"}},
    /* 2023-01-01 is a Sunday: Monday the 2nd */
    {"UTC", "2022-12-31T00:00:00Z", "0 0 1w * *", NULL, NULL, {"2023-01-02T00:00:00Z"}},
    /* 2023-12-31 is a Sunday at month end: Friday the 29th */
    {"UTC",
     "2023-12-01T00:00:00Z",
     "0 0 31W * *",
     NULL,
     NULL,
     {"2023-12-29T00:00:00Z", "2024-01-31T00:00:00Z"}},
    /* 2024-06-15 is a Saturday: Friday the 14th */
    {"UTC", "2024-06-01T00:00:00Z", "0 0 15W * *", NULL, NULL, {"2024-06-14T00:00:00Z"}},
    /* 31W skips 30-day months (2024-04, -06) */
    {"UTC", "2024-03-31T00:00:00Z", "0 0 31W * *", NULL, NULL, {"2024-05-31T00:00:00Z"}},
    {"UTC",
     "2024-03-01T00:00:00Z",
     "0 0 LW * *",
     NULL,
     NULL,
     {"2024-03-29T00:00:00Z", "2024-04-30T00:00:00Z", "2024-05-31T00:00:00Z",
      "2024-06-28T00:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 * * 5L",
     NULL,
     NULL,
     {"2024-01-26T00:00:00Z", "2024-02-23T00:00:00Z", "2024-03-29T00:00:00Z"}},
    {"UTC", "2024-01-01T00:00:00Z", "0 0 ? * friL", NULL, NULL, {"2024-01-26T00:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 * * MON#1",
     NULL,
     NULL,
     {"2024-02-05T00:00:00Z", "2024-03-04T00:00:00Z", "2024-04-01T00:00:00Z"}},
    {"UTC",
     "2026-01-01T00:00:00Z",
     "0 0 * * 5#5",
     NULL,
     NULL,
     {"2026-01-30T00:00:00Z", "2026-05-29T00:00:00Z", "2026-07-31T00:00:00Z",
      "2026-10-30T00:00:00Z"}},
    /* a fifth Friday in February: leap year with Feb 1 a Friday */
    {"UTC", "2026-01-01T00:00:00Z", "0 0 ? FEB FRI#5", NULL, NULL, {"2036-02-29T00:00:00Z"}},
    /* lists mixing forms */
    {"UTC",
     "2024-02-01T00:00:00Z",
     "0 0 1,15W,L * *",
     NULL,
     NULL,
     {"2024-02-15T00:00:00Z", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z",
      "2024-03-15T00:00:00Z", "2024-03-31T00:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 ? * MON#1,FRIL,wed#2",
     NULL,
     NULL,
     {"2024-01-10T00:00:00Z", "2024-01-26T00:00:00Z", "2024-02-05T00:00:00Z"}},
    /* --- names, wrap ranges, steps, Sunday 0/7 --- */
    {"UTC",
     "2026-01-15T00:00:00Z",
     "0 0 1 NOV-FEB *",
     NULL,
     NULL,
     {"2026-02-01T00:00:00Z", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z",
      "2027-01-01T00:00:00Z"}},
    {"UTC",
     "2026-01-01T00:00:00Z",
     "0 0 1 jan,Jul *",
     NULL,
     NULL,
     {"2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 22-2 * * *",
     NULL,
     NULL,
     {"2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z", "2024-01-01T22:00:00Z",
      "2024-01-01T23:00:00Z", "2024-01-02T00:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 22-4/3 * * *",
     NULL,
     NULL,
     {"2024-01-01T01:00:00Z", "2024-01-01T04:00:00Z", "2024-01-01T22:00:00Z",
      "2024-01-02T01:00:00Z"}},
    /* 2024-01-05 is a Friday */
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 * * FRI-MON",
     NULL,
     NULL,
     {"2024-01-05T00:00:00Z", "2024-01-06T00:00:00Z", "2024-01-07T00:00:00Z",
      "2024-01-08T00:00:00Z", "2024-01-12T00:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "*/90 * * * *",
     NULL,
     NULL,
     {"2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "10/20 * * * *",
     NULL,
     NULL,
     {"2024-01-01T00:10:00Z", "2024-01-01T00:30:00Z", "2024-01-01T00:50:00Z",
      "2024-01-01T01:10:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 1-10/3 * * *",
     NULL,
     NULL,
     {"2024-01-01T01:00:00Z", "2024-01-01T04:00:00Z", "2024-01-01T07:00:00Z",
      "2024-01-01T10:00:00Z", "2024-01-02T01:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 * * 7",
     NULL,
     NULL,
     {"2024-01-07T00:00:00Z", "2024-01-14T00:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 * * 5-7",
     NULL,
     NULL,
     {"2024-01-05T00:00:00Z", "2024-01-06T00:00:00Z", "2024-01-07T00:00:00Z",
      "2024-01-12T00:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 * * 0-7",
     NULL,
     NULL,
     {"2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"}},
    /* steps over 0-6: Sunday, Tuesday, Thursday, Saturday */
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 * * */2",
     NULL,
     NULL,
     {"2024-01-02T00:00:00Z", "2024-01-04T00:00:00Z", "2024-01-06T00:00:00Z",
      "2024-01-07T00:00:00Z", "2024-01-09T00:00:00Z"}},
    /* --- Vixie OR: the 13th or any Friday; dom-only; dow-only --- */
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 13 * FRI",
     NULL,
     NULL,
     {"2024-01-05T00:00:00Z", "2024-01-12T00:00:00Z", "2024-01-13T00:00:00Z",
      "2024-01-19T00:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 */10 * MON",
     NULL,
     NULL,
     {"2024-01-08T00:00:00Z", "2024-01-11T00:00:00Z", "2024-01-15T00:00:00Z",
      "2024-01-21T00:00:00Z", "2024-01-22T00:00:00Z", "2024-01-29T00:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 13 * *",
     NULL,
     NULL,
     {"2024-01-13T00:00:00Z", "2024-02-13T00:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "0 0 ? * FRI",
     NULL,
     NULL,
     {"2024-01-05T00:00:00Z", "2024-01-12T00:00:00Z"}},
    /* --- 6 fields, macros, @every, @at --- */
    {"UTC",
     "2024-01-01T00:00:00Z",
     "*/20 * * * * *",
     NULL,
     NULL,
     {"2024-01-01T00:00:20Z", "2024-01-01T00:00:40Z", "2024-01-01T00:01:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "@hourly",
     NULL,
     NULL,
     {"2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"}},
    {"UTC", "2024-01-01T00:00:00Z", "@DAILY", NULL, NULL, {"2024-01-02T00:00:00Z"}},
    {"UTC", "2024-01-01T00:00:00Z", "@midnight", NULL, NULL, {"2024-01-02T00:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "@weekly",
     NULL,
     NULL,
     {"2024-01-07T00:00:00Z", "2024-01-14T00:00:00Z"}},
    {"UTC", "2024-01-01T00:00:00Z", "@monthly", NULL, NULL, {"2024-02-01T00:00:00Z"}},
    {"UTC", "2024-01-01T00:00:00Z", "@yearly", NULL, NULL, {"2025-01-01T00:00:00Z"}},
    {"UTC", "2024-01-01T00:00:00Z", "@annually", NULL, NULL, {"2025-01-01T00:00:00Z"}},
    {"America/New_York",
     "2026-03-08T00:00:00Z",
     "@daily",
     NULL,
     NULL,
     {"2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "@every 90s",
     NULL,
     NULL,
     {"2024-01-01T00:01:30Z", "2024-01-01T00:03:00Z", "2024-01-01T00:04:30Z"}},
    /* @every is real time: DST does not matter */
    {"America/New_York",
     "2026-03-08T06:00:00Z",
     "@every 1h30m",
     NULL,
     NULL,
     {"2026-03-08T07:30:00Z", "2026-03-08T09:00:00Z"}},
    {"UTC",
     "2024-01-01T00:00:00Z",
     "@every 2D",
     NULL,
     NULL,
     {"2024-01-03T00:00:00Z", "2024-01-05T00:00:00Z"}},
    {"Europe/Berlin",
     "2024-01-01T00:00:00Z",
     "@at 2024-06-01T12:00:00+02:00",
     NULL,
     NULL,
     {"2024-06-01T10:00:00Z"}},
    {"UTC", "2024-01-01T00:00:00Z", "@at 2023-06-01T12:00:00Z", NULL, NULL, {NULL}},
    {"UTC", "2024-01-01T00:00:00Z", "  0   0  *  *  *  ", NULL, NULL, {"2024-01-02T00:00:00Z"}},
};

static int64_t sec(const char *s)
{
    aster_time_us us = 0;
    assert_int_equal(aster_time_parse_rfc3339(s, "t", &us, NULL), 0);
    return us / ASTER_US_PER_SEC;
}

static void test_fires(void **state)
{
    (void)state;
    for (size_t i = 0; i < ASTER_NELEM(fires); i++) {
        const fire_case *fc = &fires[i];
        const aster_tz *tz;
        aster_cron *c = NULL;
        aster_err err = {0};
        aster_dst_policy pol = {ASTER_DST_GAP_AUTO, ASTER_DST_OVERLAP_AUTO};
        int64_t from = sec(fc->from), t = from, got;
        char buf[ASTER_TIME_BUFSZ];

        assert_int_equal(aster_tz_get(fc->tz, &tz, &err), 0);
        if (aster_cron_parse(fc->expr, &c, &err))
            fail_msg("case %zu '%s': %s: %s", i, fc->expr, err.field, err.msg);
        if (fc->gap)
            assert_int_equal(aster_dst_gap_parse(fc->gap, &pol.gap, &err), 0);
        if (fc->overlap)
            assert_int_equal(aster_dst_overlap_parse(fc->overlap, &pol.overlap, &err), 0);
        for (int k = 0; k < MAXF; k++) {
            int more = aster_cron_next(c, tz, pol, from, t, &got);
            if (!fc->want[k]) {
                /* a short list ends the check, except for a past @at */
                if (aster_cron_is_oneoff(c) && more)
                    fail_msg("case %zu '%s': unexpected fire", i, fc->expr);
                break;
            }
            if (!more)
                fail_msg("case %zu '%s' (%s): fire %d missing, want %s", i, fc->expr, fc->tz, k,
                         fc->want[k]);
            if (got != sec(fc->want[k]))
                fail_msg("case %zu '%s' (%s gap=%s overlap=%s): fire %d is %s, want %s", i,
                         fc->expr, fc->tz, fc->gap ? fc->gap : "auto",
                         fc->overlap ? fc->overlap : "auto", k,
                         aster_time_format_sec(got, buf, sizeof(buf)), fc->want[k]);
            t = got;
        }
        aster_cron_free(c);
    }
}

typedef struct bad_case {
    const char *expr, *field, *msg;
} bad_case;

static const bad_case bads[] = {
    {"0 0 32 * *", "day-of-month", "32 is out of range 1-31"},
    {"60 * * * *", "minute", "60 is out of range 0-59"},
    {"60 * * * * *", "second", "60 is out of range 0-59"},
    {"0 24 * * *", "hour", "24 is out of range 0-23"},
    {"0 0 0 * *", "day-of-month", "0 is out of range 1-31"},
    {"0 0 * 13 *", "month", "13 is out of range 1-12"},
    {"0 0 * * 8", "day-of-week", "8 is out of range 0-7"},
    {"*/0 * * * *", "minute", "step 0 in '*/0' is invalid (must be at least 1)"},
    {"*/x * * * *", "minute", "invalid step in '*/x' (expected a number of at least 1)"},
    {"5/ * * * *", "minute", "invalid step in '5/' (expected a number of at least 1)"},
    {"5- * * * *", "minute", "incomplete range '5-'"},
    {"-5 * * * *", "minute", "invalid value '-5' (expected a number 0-59)"},
    {"1,,2 * * * *", "minute", "empty item in list '1,,2'"},
    {"1, * * * *", "minute", "empty item in list '1,'"},
    {"a * * * *", "minute", "invalid value 'a' (expected a number 0-59)"},
    {"0 0 * JANUARY *", "month", "invalid value 'JANUARY' (expected 1-12 or JAN-DEC)"},
    {"0 0 * * MONDAY", "day-of-week", "invalid value 'MONDAY' (expected 0-7 or SUN-SAT)"},
    {"0 0 MON * *", "day-of-month", "invalid value 'MON' (expected a number 1-31)"},
    {"0 0 * * JAN", "day-of-week", "invalid value 'JAN' (expected 0-7 or SUN-SAT)"},
    {"0 L * * *", "hour", "'L' is only valid in day-of-month and day-of-week"},
    {"0 0 * L *", "month", "'L' is only valid in day-of-month and day-of-week"},
    {"0 0 * * L", "day-of-week", "'L' alone is not valid in day-of-week (write e.g. 5L or FRIL)"},
    {"0 0 * * 5W", "day-of-week", "'W' is only valid in day-of-month (in '5W')"},
    {"0 0 5#2 * *", "day-of-month", "'#' is only valid in day-of-week (in '5#2')"},
    {"0 0 L-31 * *", "day-of-month", "'L-31': the offset from L is out of range 0-30"},
    {"0 0 L-x * *", "day-of-month", "invalid value 'L-x' (expected L-n with n 0-30)"},
    {"0 0 L/2 * *", "day-of-month", "'L' cannot take a step"},
    {"0 0 32W * *", "day-of-month", "32 is out of range 1-31"},
    {"99999999999 * * * *", "minute", "99999999999 is out of range 0-59"},
    {"0 0 * * MON#6", "day-of-week", "'MON#6': the occurrence is out of range 1-5"},
    {"0 0 * * MON#0", "day-of-week", "'MON#0': the occurrence is out of range 1-5"},
    {"0 0 * * 8L", "day-of-week", "8 is out of range 0-7"},
    {"0 0 * * #2", "day-of-week", "invalid value '#2' (expected 0-7 or SUN-SAT)"},
    {"0 ? * * *", "hour", "'?' is only valid in day-of-month and day-of-week"},
    {"0 1? * * *", "hour", "'?' is only valid alone, in day-of-month and day-of-week (in '1?')"},
    {"0 0 * JULY *", "month", "invalid value 'JULY' (expected 1-12 or JAN-DEC)"},
    {"0 0 ?/2 * *", "day-of-month", "'?' cannot take a step"},
    {"0 0 30 2 *", "day-of-month", "30 never occurs in month 2, so the schedule never fires"},
    {"0 0 31 4 *", "day-of-month", "31 never occurs in month 4, so the schedule never fires"},
    {"0 0 31 2,4,6,9,11 *", "day-of-month",
     "31 never occurs in month 2,4,6,9,11, so the schedule never fires"},
    {"0 0 30W FEB *", "day-of-month", "30W never occurs in month FEB, so the schedule never fires"},
    {"0 0 L-29 2 *", "day-of-month", "L-29 never occurs in month 2, so the schedule never fires"},
    {"", "schedule", "empty schedule"},
    {"   ", "schedule", "empty schedule"},
    {"* * * *", "schedule",
     "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), got 4"},
    {"* * * * * * *", "schedule",
     "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), got 7"},
    {"@foo", "schedule",
     "unknown macro '@foo' (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, "
     "@hourly, @every or @at)"},
    {"@daily 5", "schedule", "@daily takes no argument"},
    {"@every", "schedule", "@every takes one argument (e.g. @every 5m)"},
    {"@every 0s", "schedule", "@every 0s: the period must be at least 1s"},
    {"@every 500ms", "schedule",
     "@every '500ms' is not a duration (units d h m s, e.g. 90s, 5m, 1h30m, 2d)"},
    {"@every 5x", "schedule",
     "@every '5x' is not a duration (units d h m s, e.g. 90s, 5m, 1h30m, 2d)"},
    {"@at", "schedule", "@at takes one argument (e.g. @at 2026-03-08T06:30:00Z)"},
    {"@at tomorrow", "schedule", "'tomorrow' is not an RFC 3339 time (e.g. 2026-03-08T06:30:00Z)"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ASTER_NELEM(bads); i++) {
        aster_cron *c = NULL;
        aster_err err = {0};
        int rc = aster_cron_parse(bads[i].expr, &c, &err);
        if (rc != ASTER_EINVAL)
            fail_msg("'%s' parsed", bads[i].expr);
        if (strcmp(err.field, bads[i].field) || strcmp(err.msg, bads[i].msg))
            fail_msg("'%s': got '%s: %s', want '%s: %s'", bads[i].expr, err.field, err.msg,
                     bads[i].field, bads[i].msg);
        assert_null(c);
    }
}

static void test_too_long(void **state)
{
    char buf[ASTER_CRON_EXPR_MAX + 16];
    aster_cron *c = NULL;
    aster_err err = {0};

    (void)state;
    memset(buf, ' ', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    memcpy(buf, "0 0 * * *", 9);
    assert_int_equal(aster_cron_parse(buf, &c, &err), ASTER_EINVAL);
    assert_string_equal(err.field, "schedule");
    assert_string_equal(err.msg, "longer than 1024 bytes");
}

static void test_policies(void **state)
{
    aster_dst_gap g;
    aster_dst_overlap o;
    aster_err err = {0};

    (void)state;
    assert_int_equal(aster_dst_gap_parse("SHIFT", &g, &err), 0);
    assert_int_equal(g, ASTER_DST_GAP_SHIFT);
    assert_string_equal(aster_dst_gap_name(g), "shift");
    assert_int_equal(aster_dst_overlap_parse("both", &o, &err), 0);
    assert_string_equal(aster_dst_overlap_name(o), "both");
    assert_int_equal(aster_dst_gap_parse("first", &g, &err), ASTER_EINVAL);
    assert_string_equal(err.field, "dst_gap");
    aster_err_clear(&err);
    assert_int_equal(aster_dst_overlap_parse("", &o, &err), ASTER_EINVAL);
    assert_string_equal(err.field, "dst_overlap");
}

/* Schedules that rarely or never fire in range still answer, quickly. */
static void test_bounded(void **state)
{
    static const char *const rare[] = {"0 0 29 2 MON", "0 0 ? 2 FRI#5", "0 0 L-30 FEB,MAR *",
                                       "59 59 23 31 12 *", "0 0 29 2 ?"};
    const aster_tz *tz;
    aster_dst_policy pol = {0, 0};
    int64_t out;

    (void)state;
    assert_int_equal(aster_tz_get("America/New_York", &tz, NULL), 0);
    for (size_t i = 0; i < ASTER_NELEM(rare); i++) {
        aster_cron *c = NULL;
        assert_int_equal(aster_cron_parse(rare[i], &c, NULL), 0);
        for (int64_t t = -INT64_C(2208988800); t < INT64_C(253402300799);
             t += INT64_C(7) * 365 * 86400)
            if (aster_cron_next(c, tz, pol, t, t, &out))
                assert_true(out > t);
        assert_int_equal(aster_cron_next(c, tz, pol, 0, INT64_C(253402300799), &out), 0);
        aster_cron_free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fires),    cmocka_unit_test(test_errors),
        cmocka_unit_test(test_too_long), cmocka_unit_test(test_policies),
        cmocka_unit_test(test_bounded),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    aster_tz_cache_free();
    return rc;
}
