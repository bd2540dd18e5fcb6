#include "util/time.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

aster_time_us aster_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (aster_time_us)ts.tv_sec * ASTER_US_PER_SEC + ts.tv_nsec / 1000;
}

aster_mono_us aster_mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (aster_mono_us)ts.tv_sec * ASTER_US_PER_SEC + ts.tv_nsec / 1000;
}

/* Howard Hinnant's days_from_civil / civil_from_days: exact for every
 * proleptic Gregorian date representable in int64 days. */
int64_t aster_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void aster_civil_from_days(int64_t z, int64_t *year, int *month, int *day)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = y + (m <= 2);
    *month = m;
    *day = d;
}

int aster_weekday_from_days(int64_t z)
{
    return (int)(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6);
}

int aster_is_leap_year(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int aster_days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && aster_is_leap_year(y) ? 29 : dim[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

void aster_civil_from_sec(int64_t t, aster_civil *out)
{
    int64_t days = floor_div(t, 86400);
    int64_t rem = t - days * 86400;
    aster_civil_from_days(days, &out->year, &out->month, &out->day);
    out->hour = (int)(rem / 3600);
    out->min = (int)(rem / 60 % 60);
    out->sec = (int)(rem % 60);
    out->usec = 0;
}

int64_t aster_sec_from_civil(const aster_civil *c)
{
    return aster_days_from_civil(c->year, c->month, c->day) * 86400 + c->hour * 3600 + c->min * 60 +
           c->sec;
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int aster_time_parse_rfc3339(const char *s, const char *field, aster_time_us *out, aster_err *err)
{
    const char *p = s;
    aster_civil c = {0};
    int y, off = 0, usec = 0;

    if (!s || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &c.month) || *p++ != '-' ||
        digits(&p, 2, &c.day))
        goto bad;
    if (*p != 'T' && *p != 't' && *p != ' ')
        goto bad;
    p++;
    if (digits(&p, 2, &c.hour) || *p++ != ':' || digits(&p, 2, &c.min) || *p++ != ':' ||
        digits(&p, 2, &c.sec))
        goto bad;
    c.year = y;
    if (*p == '.') {
        int n = 0;
        p++;
        if (!isdigit((unsigned char)*p))
            goto bad;
        for (; isdigit((unsigned char)*p); p++, n++)
            if (n < 6)
                usec = usec * 10 + (*p - '0');
        for (; n < 6; n++)
            usec *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
            goto bad;
        off = sign * (oh * 3600 + om * 60);
    } else {
        goto bad;
    }
    if (*p != '\0')
        goto bad;
    /* RFC 3339 allows second 60 (a leap second); POSIX time has none, so it
     * is read as the first instant of the next minute. */
    if (c.month < 1 || c.month > 12 || c.day < 1 || c.day > aster_days_in_month(c.year, c.month) ||
        c.hour > 23 || c.min > 59 || c.sec > 60)
        return aster_err_set(err, ASTER_EINVAL, field, "%s is not a valid date and time", s);
    *out = (aster_sec_from_civil(&c) - off) * ASTER_US_PER_SEC + usec;
    return 0;
bad:
    return aster_err_set(err, ASTER_EINVAL, field,
                         "'%s' is not an RFC 3339 time (e.g. 2026-03-08T06:30:00Z)", s ? s : "");
}

static char *put_digits(char *p, int v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + width;
}

char *aster_time_format_ms(aster_time_us t, char *buf, size_t n)
{
    int64_t sec = floor_div(t, ASTER_US_PER_SEC);
    int ms = (int)((t - sec * ASTER_US_PER_SEC) / 1000);
    aster_civil c;
    aster_civil_from_sec(sec, &c);
    /* A job answer holds three of these: by hand rather than through
     * snprintf, which was a fifth of a GET's time in user space. */
    if (c.year >= 0 && c.year <= 9999 && n >= sizeof("2026-11-22T18:00:00.000Z")) {
        char *p = put_digits(buf, (int)c.year, 4);
        *p++ = '-';
        p = put_digits(p, c.month, 2);
        *p++ = '-';
        p = put_digits(p, c.day, 2);
        *p++ = 'T';
        p = put_digits(p, c.hour, 2);
        *p++ = ':';
        p = put_digits(p, c.min, 2);
        *p++ = ':';
        p = put_digits(p, c.sec, 2);
        *p++ = '.';
        p = put_digits(p, ms, 3);
        *p++ = 'Z';
        *p = '\0';
        return buf;
    }
    snprintf(buf, n, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)c.year, c.month, c.day,
             c.hour, c.min, c.sec, ms);
    return buf;
}

char *aster_time_format_sec(int64_t sec, char *buf, size_t n)
{
    aster_civil c;
    aster_civil_from_sec(sec, &c);
    snprintf(buf, n, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)c.year, c.month, c.day, c.hour,
             c.min, c.sec);
    return buf;
}

int aster_duration_parse(const char *s, const char *field, int64_t *out_us, aster_err *err)
{
    const char *p = s;
    int64_t total = 0;
    int parts = 0;

    if (!s || !*s)
        goto bad;
    while (*p) {
        int64_t v = 0, unit;
        if (!isdigit((unsigned char)*p))
            goto bad;
        for (; isdigit((unsigned char)*p); p++) {
            if (v > INT64_C(1000000000))
                goto big;
            v = v * 10 + (*p - '0');
        }
        if (p[0] == 'm' && p[1] == 's') {
            unit = ASTER_US_PER_MS;
            p += 2;
        } else {
            switch (tolower((unsigned char)*p)) {
            case 'd':
                unit = 86400 * ASTER_US_PER_SEC;
                break;
            case 'h':
                unit = 3600 * ASTER_US_PER_SEC;
                break;
            case 'm':
                unit = 60 * ASTER_US_PER_SEC;
                break;
            case 's':
                unit = ASTER_US_PER_SEC;
                break;
            default:
                goto bad;
            }
            p++;
        }
        if (v > INT64_MAX / unit || total > INT64_MAX - v * unit)
            goto big;
        total += v * unit;
        parts++;
    }
    *out_us = total;
    return 0;
big:
    return aster_err_set(err, ASTER_EINVAL, field, "duration '%s' is too large", s);
bad:
    return aster_err_set(err, ASTER_EINVAL, field,
                         "'%s' is not a duration (e.g. 90s, 5m, 1h30m, 2d)", s ? s : "");
}
