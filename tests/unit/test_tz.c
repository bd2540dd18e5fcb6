/* test_tz.c — TZif reading: offsets around transitions, the POSIX footer far
 * in the future, Lord Howe's 30-minute DST, local-time resolution, names that
 * are refused, and the shared cache under threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "cron/tz.h"
#include "util/time.h"

static int64_t sec(const char *s)
{
    aster_time_us us = 0;
    assert_int_equal(aster_time_parse_rfc3339(s, "t", &us, NULL), 0);
    return us / ASTER_US_PER_SEC;
}

static const aster_tz *zone(const char *name)
{
    const aster_tz *tz = NULL;
    aster_err err = {0};
    if (aster_tz_get(name, &tz, &err))
        fail_msg("%s: %s: %s", name, err.field, err.msg);
    return tz;
}

static const struct {
    const char *zone, *at;
    int32_t off;
} offsets[] = {
    {"UTC", "2026-03-08T07:00:00Z", 0},
    /* New York 2026: 07:00Z spring forward, 06:00Z fall back */
    {"America/New_York", "2026-03-08T06:59:59Z", -5 * 3600},
    {"America/New_York", "2026-03-08T07:00:00Z", -4 * 3600},
    {"America/New_York", "2026-11-01T05:59:59Z", -4 * 3600},
    {"America/New_York", "2026-11-01T06:00:00Z", -5 * 3600},
    /* before the US rules changed in 2007: last Sunday of October */
    {"America/New_York", "1999-10-31T05:59:59Z", -4 * 3600},
    {"America/New_York", "1999-10-31T06:00:00Z", -5 * 3600},
    /* local mean time before 1883 */
    {"America/New_York", "1850-01-01T00:00:00Z", -17762},
    /* the POSIX footer: 2100 (second Sunday of March is the 14th) */
    {"America/New_York", "2100-03-14T06:59:59Z", -5 * 3600},
    {"America/New_York", "2100-03-14T07:00:00Z", -4 * 3600},
    {"America/New_York", "2100-07-01T00:00:00Z", -4 * 3600},
    {"America/New_York", "2100-11-07T05:59:59Z", -4 * 3600},
    {"America/New_York", "2100-11-07T06:00:00Z", -5 * 3600},
    /* beyond the 400-year table: 2950-03-08 is the second Sunday */
    {"America/New_York", "2950-03-08T06:59:59Z", -5 * 3600},
    {"America/New_York", "2950-03-08T07:00:00Z", -4 * 3600},
    {"America/New_York", "9999-07-01T00:00:00Z", -4 * 3600},
    /* Berlin: last Sunday of March / October at 01:00Z */
    {"Europe/Berlin", "2026-03-29T00:59:59Z", 3600},
    {"Europe/Berlin", "2026-03-29T01:00:00Z", 7200},
    {"Europe/Berlin", "2026-10-25T00:59:59Z", 7200},
    {"Europe/Berlin", "2026-10-25T01:00:00Z", 3600},
    {"Europe/Berlin", "2200-07-01T00:00:00Z", 7200},
    /* Lord Howe: +10:30 standard, +11 summer, 30-minute shifts */
    {"Australia/Lord_Howe", "2026-04-04T14:59:59Z", 11 * 3600},
    {"Australia/Lord_Howe", "2026-04-04T15:00:00Z", 37800},
    {"Australia/Lord_Howe", "2026-10-03T15:29:59Z", 37800},
    {"Australia/Lord_Howe", "2026-10-03T15:30:00Z", 11 * 3600},
    {"Australia/Lord_Howe", "2100-01-01T00:00:00Z", 11 * 3600},
    {"Australia/Lord_Howe", "2100-06-01T00:00:00Z", 37800},
    /* no DST at all */
    {"Asia/Kolkata", "2026-06-01T00:00:00Z", 19800},
    {"Etc/GMT+5", "2026-06-01T00:00:00Z", -5 * 3600},
};

static void test_offsets(void **state)
{
    (void)state;
    for (size_t i = 0; i < ASTER_NELEM(offsets); i++) {
        int32_t got = aster_tz_offset_at(zone(offsets[i].zone), sec(offsets[i].at));
        if (got != offsets[i].off)
            fail_msg("%s at %s: %d, want %d", offsets[i].zone, offsets[i].at, got, offsets[i].off);
    }
    assert_string_equal(aster_tz_name(zone("Europe/Berlin")), "Europe/Berlin");
}

static void test_segment(void **state)
{
    aster_tz_seg s;

    (void)state;
    aster_tz_segment(zone("America/New_York"), sec("2026-06-01T00:00:00Z"), &s);
    assert_int_equal(s.start, sec("2026-03-08T07:00:00Z"));
    assert_int_equal(s.end, sec("2026-11-01T06:00:00Z"));
    assert_int_equal(s.off, -4 * 3600);
    assert_int_equal(s.prev_off, -5 * 3600);
    assert_int_equal(s.next_off, -5 * 3600);
    /* far past the table the same rule repeats */
    aster_tz_segment(zone("America/New_York"), sec("3026-06-01T00:00:00Z"), &s);
    assert_int_equal(s.off, -4 * 3600);
    assert_true(s.start < sec("3026-06-01T00:00:00Z") && s.end > sec("3026-06-01T00:00:00Z"));
    aster_tz_segment(zone("UTC"), 0, &s);
    assert_true(s.start == INT64_MIN && s.end == INT64_MAX && s.off == 0);
}

static int64_t local(const char *s) /* a wall time written as if UTC */
{
    return sec(s);
}

static void test_resolve(void **state)
{
    const aster_tz *ny = zone("America/New_York"), *lh = zone("Australia/Lord_Howe");
    int64_t u[2], gap = 0;

    (void)state;
    assert_int_equal(aster_tz_resolve(ny, local("2026-06-01T12:00:00Z"), u, &gap), 1);
    assert_int_equal(u[0], sec("2026-06-01T16:00:00Z"));
    /* 02:30 on the spring-forward day does not exist */
    assert_int_equal(aster_tz_resolve(ny, local("2026-03-08T02:30:00Z"), u, &gap), 0);
    assert_int_equal(gap, sec("2026-03-08T07:00:00Z"));
    /* 01:30 on the fall-back day happens twice */
    assert_int_equal(aster_tz_resolve(ny, local("2026-11-01T01:30:00Z"), u, &gap), 2);
    assert_int_equal(u[0], sec("2026-11-01T05:30:00Z"));
    assert_int_equal(u[1], sec("2026-11-01T06:30:00Z"));
    /* Lord Howe: 02:00-02:29 missing, 01:30-01:59 twice */
    assert_int_equal(aster_tz_resolve(lh, local("2026-10-04T02:15:00Z"), u, &gap), 0);
    assert_int_equal(gap, sec("2026-10-03T15:30:00Z"));
    assert_int_equal(aster_tz_resolve(lh, local("2026-10-04T02:30:00Z"), u, &gap), 1);
    assert_int_equal(aster_tz_resolve(lh, local("2026-04-05T01:45:00Z"), u, &gap), 2);
    assert_int_equal(u[0], sec("2026-04-04T14:45:00Z"));
    assert_int_equal(u[1], sec("2026-04-04T15:15:00Z"));
    assert_int_equal(aster_tz_resolve(lh, local("2026-04-05T02:00:00Z"), u, &gap), 1);
}

static void test_bad_names(void **state)
{
    static const char *const bad[] = {
        "Mars/Base",       "/etc/passwd", "../zoneinfo/UTC", "America/../UTC",   "Europe/Berlin ",
        "Europe/Berlin\n", "America",     "zone.tab",        "America/New York", "utc%"};
    const aster_tz *tz = NULL;
    aster_err err = {0};

    (void)state;
    for (size_t i = 0; i < ASTER_NELEM(bad); i++) {
        aster_err_clear(&err);
        if (aster_tz_get(bad[i], &tz, &err) != ASTER_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_string_equal(err.field, "timezone");
    }
    aster_err_clear(&err);
    assert_int_equal(aster_tz_get("Mars/Base", &tz, &err), ASTER_EINVAL);
    assert_string_equal(err.msg, "unknown time zone 'Mars/Base'");
    aster_err_clear(&err);
    assert_int_equal(aster_tz_get("", &tz, &err), ASTER_EINVAL);
    assert_string_equal(err.msg, "time zone name is empty");
}

/* TZDIR is honoured, unknown zones are not cached, and UTC needs no file. */
static void test_tzdir(void **state)
{
    const aster_tz *tz = NULL;

    (void)state;
    setenv("TZDIR", "/nonexistent-zoneinfo", 1);
    assert_int_equal(aster_tz_get("Europe/Paris", &tz, NULL), ASTER_EINVAL);
    assert_int_equal(aster_tz_get("UTC", &tz, NULL), 0);
    assert_int_equal(aster_tz_offset_at(tz, 1700000000), 0);
    unsetenv("TZDIR");
    assert_int_equal(aster_tz_get("Europe/Paris", &tz, NULL), 0);
    assert_int_equal(aster_tz_offset_at(tz, sec("2026-07-01T00:00:00Z")), 7200);
}

static void *worker(void *arg)
{
    static const char *const names[] = {"Asia/Tokyo", "America/Chicago", "Europe/London",
                                        "Australia/Sydney"};
    long bad = 0;

    (void)arg;
    for (int i = 0; i < 2000; i++) {
        const aster_tz *tz = NULL;
        if (aster_tz_get(names[i % 4], &tz, NULL) || !tz)
            bad++;
        else if (strcmp(aster_tz_name(tz), names[i % 4]))
            bad++;
    }
    return (void *)bad;
}

static void test_threads(void **state)
{
    pthread_t th[4];

    (void)state;
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_int_equal((long)r, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offsets), cmocka_unit_test(test_segment),
        cmocka_unit_test(test_resolve), cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_tzdir),   cmocka_unit_test(test_threads),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    aster_tz_cache_free();
    return rc;
}
