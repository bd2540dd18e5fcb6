/* cron.c — parsing schedules and finding their next fire (see cron.h).
 *
 * A parsed schedule is a set of bitmasks, one per field, plus the Quartz day
 * rules.  The next fire is found in two layers:
 *
 *   next_wall()  the first matching local wall time at or after a given one,
 *                on a calendar without DST: it jumps field by field (month,
 *                day, hour, minute, second) with the masks.
 *   aster_cron_next()  walks the zone's constant-offset segments from the
 *                start instant; inside a segment wall time runs with real time,
 *                so the first match there is one next_wall() call.  The DST
 *                policy only changes where a segment's search starts or ends
 *                (overlaps) and whether a segment's start is itself a fire
 *                (a gap with matching wall times under SHIFT).
 *
 * Work is bounded: at most two segments a year for 400 years, and next_wall()
 * is memoised across segments, so a rare schedule costs one calendar walk. */
#include "cron/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "util/mem.h"
#include "util/time.h"

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, NFIELDS };
enum { K_CRON, K_EVERY, K_AT };

static const struct fdesc {
    const char *name;
    int lo, hi;
    const char *expect; /* what a value may be, for messages */
} fdesc[NFIELDS] = {
    {"second", 0, 59, "a number 0-59"},  {"minute", 0, 59, "a number 0-59"},
    {"hour", 0, 23, "a number 0-23"},    {"day-of-month", 1, 31, "a number 1-31"},
    {"month", 1, 12, "1-12 or JAN-DEC"}, {"day-of-week", 0, 7, "0-7 or SUN-SAT"},
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

/* The latest instant printed as a 4-digit year: 9999-12-31T23:59:59Z. */
#define MAX_SEC     INT64_C(253402300799)
#define HORIZON_SEC (INT64_C(146097) * 86400) /* 400 years */

struct aster_cron {
    int kind;
    int realtime;           /* hour field is `*` or `*` / n */
    int dom_r;              /* day-of-month restricted (not exactly `*` or `?`) */
    int dow_r;              /* day-of-week restricted */
    uint64_t bits[NFIELDS]; /* plain values; day-of-week bits 0-6 */
    uint32_t dom_l;         /* bit n: L-n */
    uint32_t dom_w;         /* bit n: nW */
    int dom_lw;             /* LW */
    uint8_t dow_l;          /* bit w: wL (last weekday w) */
    uint8_t dow_nth[7];     /* bit k: w#k */
    uint32_t dow_pat[7];    /* plain day-of-week bits as days 1-31 of a month
                               whose 1st is weekday i */
    int64_t every;          /* @every period, seconds */
    int64_t at;             /* @at instant */
};

/* ---- parsing ------------------------------------------------------------ */

/* A macro keeps the format a literal that the compiler checks. */
#define bad(err, f, fmt, s) aster_err_set(err, ASTER_EINVAL, fdesc[f].name, fmt, s)

/* Decimal digits only; values beyond 1e6 saturate so that messages stay sane. */
static int parse_uint(const char *s, long *out)
{
    long v = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        v = v > 1000000 ? v : v * 10 + (*s - '0');
    }
    *out = v;
    return 0;
}

static int name_value(int f, const char *s)
{
    const char *const *names = f == F_MON ? month_names : f == F_DOW ? day_names : NULL;
    int n = f == F_MON ? 12 : 7;

    if (!names || strlen(s) != 3)
        return -1;
    for (int i = 0; i < n; i++)
        if (!strcasecmp(s, names[i]))
            return f == F_MON ? i + 1 : i;
    return -1;
}

/* Says why `s` is not a value of field f: a Quartz letter in the wrong
 * field gets its own message. */
static int bad_value(int f, const char *s, aster_err *err)
{
    const char *why = NULL;
    size_t n = strlen(s);

    /* A word ("JULY") is a misspelt name, not a misplaced letter. */
    if (n > 1 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == n)
        why = NULL;
    else if (strchr(s, '#') && f != F_DOW)
        why = "'#' is only valid in day-of-week";
    else if (strpbrk(s, "wW") && f != F_DOM)
        why = "'W' is only valid in day-of-month";
    else if (strpbrk(s, "lL") && f != F_DOM && f != F_DOW)
        why = "'L' is only valid in day-of-month and day-of-week";
    else if (strchr(s, '?'))
        why = "'?' is only valid alone, in day-of-month and day-of-week";
    if (why && n == 1)
        return aster_err_set(err, ASTER_EINVAL, fdesc[f].name, "%s", why);
    if (why)
        return aster_err_set(err, ASTER_EINVAL, fdesc[f].name, "%s (in '%s')", why, s);
    if (f == F_DOW && !strcasecmp(s, "L"))
        return bad(err, f, "'%s' alone is not valid in day-of-week (write e.g. 5L or FRIL)", s);
    return aster_err_set(err, ASTER_EINVAL, fdesc[f].name, "invalid value '%s' (expected %s)", s,
                         fdesc[f].expect);
}

static int parse_value(int f, const char *s, int *out, aster_err *err)
{
    long v;
    int n;

    if (parse_uint(s, &v) == 0) {
        if (v < fdesc[f].lo || v > fdesc[f].hi)
            return aster_err_set(err, ASTER_EINVAL, fdesc[f].name, "%.32s is out of range %d-%d", s,
                                 fdesc[f].lo, fdesc[f].hi);
        *out = (int)v;
        return 0;
    }
    if ((n = name_value(f, s)) >= 0) {
        *out = n;
        return 0;
    }
    return bad_value(f, s, err);
}

/* Sets a..b by step; a > b wraps around the field (day-of-week over 0-6). */
static void add_range(aster_cron *c, int f, int a, int b, int step)
{
    int lo = fdesc[f].lo, hi = f == F_DOW ? 6 : fdesc[f].hi;
    int width = hi - lo + 1, len;

    if (f == F_DOW && a == 7) { /* Sunday as 7 starts a range at 0 */
        a = 0;
        if (b == 7)
            b = 0;
    }
    if (a <= b)
        len = b - a + 1;
    else
        len = hi - a + 1 + b - lo + 1;
    for (int i = 0; i < len; i += step) {
        int v = a + i;
        if (v > (f == F_DOW ? 7 : hi))
            v -= width;
        c->bits[f] |= UINT64_C(1) << (f == F_DOW ? v % 7 : v);
    }
}

/* Day-of-month L, L-n, LW, nW.  Returns 1 if handled, 0 if not special,
 * or an error. */
static int parse_dom_special(aster_cron *c, const char *s, int step, aster_err *err)
{
    size_t n = strlen(s);
    long v;
    char num[16];

    if (toupper((unsigned char)s[0]) == 'L') {
        if (step)
            return bad(err, F_DOM, "'%s' cannot take a step", s);
        if (n == 1) {
            c->dom_l |= 1;
            return 1;
        }
        if (n == 2 && toupper((unsigned char)s[1]) == 'W') {
            c->dom_lw = 1;
            return 1;
        }
        if (s[1] == '-') {
            if (parse_uint(s + 2, &v))
                return bad(err, F_DOM, "invalid value '%s' (expected L-n with n 0-30)", s);
            if (v > 30)
                return bad(err, F_DOM, "'%s': the offset from L is out of range 0-30", s);
            c->dom_l |= UINT32_C(1) << v;
            return 1;
        }
        return bad_value(F_DOM, s, err);
    }
    if (n >= 2 && n < sizeof(num) && toupper((unsigned char)s[n - 1]) == 'W' &&
        isdigit((unsigned char)s[0])) {
        int d;
        memcpy(num, s, n - 1);
        num[n - 1] = '\0';
        if (step)
            return bad(err, F_DOM, "'%s' cannot take a step", s);
        if (parse_value(F_DOM, num, &d, err))
            return ASTER_EINVAL;
        c->dom_w |= UINT32_C(1) << d;
        return 1;
    }
    return 0;
}

/* Day-of-week nL and n#k, n a number or a name. */
static int parse_dow_special(aster_cron *c, const char *s, int step, aster_err *err)
{
    size_t n = strlen(s);
    const char *hash = strchr(s, '#');
    char num[16];
    int d;
    long k;

    if (hash) {
        if ((size_t)(hash - s) >= sizeof(num) || hash == s)
            return bad_value(F_DOW, s, err);
        memcpy(num, s, (size_t)(hash - s));
        num[hash - s] = '\0';
        if (step)
            return bad(err, F_DOW, "'%s' cannot take a step", s);
        if (parse_value(F_DOW, num, &d, err))
            return ASTER_EINVAL;
        if (parse_uint(hash + 1, &k))
            return bad(err, F_DOW, "invalid value '%s' (expected n#k with k 1-5)", s);
        if (k < 1 || k > 5)
            return bad(err, F_DOW, "'%s': the occurrence is out of range 1-5", s);
        c->dow_nth[d % 7] |= (uint8_t)(1u << k);
        return 1;
    }
    if (n >= 2 && n < sizeof(num) && toupper((unsigned char)s[n - 1]) == 'L') {
        memcpy(num, s, n - 1);
        num[n - 1] = '\0';
        if (step)
            return bad(err, F_DOW, "'%s' cannot take a step", s);
        if (parse_value(F_DOW, num, &d, err))
            return ASTER_EINVAL;
        c->dow_l |= (uint8_t)(1u << (d % 7));
        return 1;
    }
    return 0;
}

static int parse_item(aster_cron *c, int f, char *s, aster_err *err)
{
    char *slash = strchr(s, '/'), *dash;
    long step = 0;
    int a, b, rc;

    if (slash) {
        *slash = '\0';
        if (parse_uint(slash + 1, &step)) {
            *slash = '/';
            return bad(err, f, "invalid step in '%s' (expected a number of at least 1)", s);
        }
        if (step == 0) {
            *slash = '/';
            return bad(err, f, "step 0 in '%s' is invalid (must be at least 1)", s);
        }
    }
    if (!strcmp(s, "*")) {
        add_range(c, f, fdesc[f].lo, f == F_DOW ? 6 : fdesc[f].hi, step ? (int)step : 1);
        return 0;
    }
    if (!strcmp(s, "?")) {
        if (f != F_DOM && f != F_DOW)
            return bad(err, f, "'%s' is only valid in day-of-month and day-of-week", s);
        if (slash)
            return bad(err, f, "'%s' cannot take a step", s);
        add_range(c, f, fdesc[f].lo, f == F_DOW ? 6 : fdesc[f].hi, 1);
        return 0;
    }
    if (f == F_DOM && (rc = parse_dom_special(c, s, slash != NULL, err)))
        return rc < 0 ? rc : 0;
    if (f == F_DOW && (rc = parse_dow_special(c, s, slash != NULL, err)))
        return rc < 0 ? rc : 0;
    dash = strchr(s, '-');
    if (dash && dash != s) {
        *dash = '\0';
        if (!dash[1]) {
            *dash = '-';
            return bad(err, f, "incomplete range '%s'", s);
        }
        if (parse_value(f, s, &a, err) || parse_value(f, dash + 1, &b, err))
            return ASTER_EINVAL;
    } else {
        if (parse_value(f, s, &a, err))
            return ASTER_EINVAL;
        /* a/n runs to the end of the field */
        b = slash ? (f == F_DOW ? 6 : fdesc[f].hi) : a;
    }
    add_range(c, f, a, b, step ? (int)step : 1);
    return 0;
}

static int parse_field(aster_cron *c, int f, const char *text, aster_err *err)
{
    char buf[ASTER_CRON_EXPR_MAX + 1];
    char *p = buf;

    snprintf(buf, sizeof(buf), "%s", text);
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (!*p)
            return aster_err_set(err, ASTER_EINVAL, fdesc[f].name, "empty item in list '%s'", text);
        if (parse_item(c, f, p, err))
            return ASTER_EINVAL;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* The day-of-month bits of (year, month), days 1-31. */
static uint32_t day_mask(const aster_cron *c, int64_t y, int m)
{
    int dim = aster_days_in_month(y, m);
    uint32_t full = (UINT32_C(2) << dim) - 2, dom = 0, dow = 0;

    if (!c->dom_r && !c->dow_r)
        return full;
    int64_t first = aster_days_from_civil(y, m, 1);
    int wd1 = aster_weekday_from_days(first);
    if (c->dom_r) {
        dom = (uint32_t)c->bits[F_DOM] & full;
        for (uint32_t l = c->dom_l; l; l &= l - 1) {
            int d = dim - __builtin_ctz(l);
            if (d >= 1)
                dom |= UINT32_C(1) << d;
        }
        for (uint32_t w = c->dom_w & full; w; w &= w - 1) {
            int d = __builtin_ctz(w), wd = (wd1 + d - 1) % 7;
            if (wd == 6) /* Saturday: Friday, or Monday the 3rd for the 1st */
                d = d == 1 ? 3 : d - 1;
            else if (wd == 0) /* Sunday: Monday, or Friday at month end */
                d = d == dim ? d - 2 : d + 1;
            dom |= UINT32_C(1) << d;
        }
        if (c->dom_lw) {
            int wd = (wd1 + dim - 1) % 7;
            dom |= UINT32_C(1) << (wd == 6 ? dim - 1 : wd == 0 ? dim - 2 : dim);
        }
    }
    if (c->dow_r) {
        dow = c->dow_pat[wd1] & full;
        int wdl = (wd1 + dim - 1) % 7;
        for (int w = 0; w < 7; w++) {
            if (c->dow_l >> w & 1)
                dow |= UINT32_C(1) << (dim - (wdl - w + 7) % 7);
            int d1 = 1 + (w - wd1 + 7) % 7;
            for (unsigned k = c->dow_nth[w]; k; k &= k - 1) {
                int d = d1 + 7 * (__builtin_ctz(k) - 1);
                if (d <= dim)
                    dow |= UINT32_C(1) << d;
            }
        }
    }
    if (c->dom_r && c->dow_r)
        return dom | dow; /* Vixie: either day field matches */
    return c->dom_r ? dom : dow;
}

/* Some month of the month field must have a matching day in some year.
 * 2000-2027 is a whole 28-year cycle with a leap century: every kind of year. */
static int can_fire(const aster_cron *c)
{
    for (int64_t y = 2000; y < 2028; y++)
        for (int m = 1; m <= 12; m++)
            if ((c->bits[F_MON] >> m & 1) && day_mask(c, y, m))
                return 1;
    return 0;
}

static int is_star(const char *s)
{
    return !strcmp(s, "*") || !strcmp(s, "?");
}

/* `*` or `*` / n: the hour field follows real time. */
static int is_realtime_hour(const char *s)
{
    long n;
    return !strcmp(s, "*") || (s[0] == '*' && s[1] == '/' && parse_uint(s + 2, &n) == 0);
}

static int parse_fields(aster_cron *c, const char *const *w, int n, aster_err *err)
{
    const char *f[NFIELDS] = {"0"};

    if (n != 5 && n != 6)
        return aster_err_set(err, ASTER_EINVAL, "schedule",
                             "expected 5 fields (minute hour day-of-month month day-of-week) "
                             "or 6 (second first), got %d",
                             n);
    for (int i = 0; i < n; i++)
        f[NFIELDS - n + i] = w[i];
    for (int i = 0; i < NFIELDS; i++)
        if (parse_field(c, i, f[i], err))
            return ASTER_EINVAL;
    c->realtime = is_realtime_hour(f[F_HOUR]);
    c->dom_r = !is_star(f[F_DOM]);
    c->dow_r = !is_star(f[F_DOW]);
    for (int wd = 0; wd < 7; wd++)
        for (int d = 1; d <= 31; d++)
            if (c->bits[F_DOW] >> ((wd + d - 1) % 7) & 1)
                c->dow_pat[wd] |= UINT32_C(1) << d;
    if (!can_fire(c))
        return aster_err_set(err, ASTER_EINVAL, "day-of-month",
                             "%s never occurs in month %s, so the schedule never fires", f[F_DOM],
                             f[F_MON]);
    return 0;
}

static int parse_every(aster_cron *c, const char *s, aster_err *err)
{
    char low[64];
    int64_t us;
    size_t n = strlen(s);

    /* util/time also takes "ms"; a schedule counts whole seconds. */
    if (n >= sizeof(low) || strspn(s, "0123456789dhmsDHMS") != n)
        goto bad;
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)tolower((unsigned char)s[i]);
    if (strstr(low, "ms"))
        goto bad;
    if (aster_duration_parse(low, "schedule", &us, err))
        return ASTER_EINVAL;
    if (us < ASTER_US_PER_SEC)
        return aster_err_set(err, ASTER_EINVAL, "schedule",
                             "@every %s: the period must be at least 1s", s);
    c->every = us / ASTER_US_PER_SEC;
    c->kind = K_EVERY;
    c->realtime = 1;
    return 0;
bad:
    return aster_err_set(err, ASTER_EINVAL, "schedule",
                         "@every '%s' is not a duration (units d h m s, e.g. 90s, 5m, 1h30m, 2d)",
                         s);
}

static int parse_macro(aster_cron *c, char **w, int n, aster_err *err)
{
    static const struct {
        const char *name, *f[5];
    } macros[] = {
        {"@yearly", {"0", "0", "1", "1", "*"}},  {"@annually", {"0", "0", "1", "1", "*"}},
        {"@monthly", {"0", "0", "1", "*", "*"}}, {"@weekly", {"0", "0", "*", "*", "0"}},
        {"@daily", {"0", "0", "*", "*", "*"}},   {"@midnight", {"0", "0", "*", "*", "*"}},
        {"@hourly", {"0", "*", "*", "*", "*"}},
    };

    if (!strcasecmp(w[0], "@every") || !strcasecmp(w[0], "@at")) {
        int every = !strcasecmp(w[0], "@every");
        if (n != 2)
            return aster_err_set(err, ASTER_EINVAL, "schedule", "%s takes one argument (%s)",
                                 every ? "@every" : "@at",
                                 every ? "e.g. @every 5m" : "e.g. @at 2026-03-08T06:30:00Z");
        if (every)
            return parse_every(c, w[1], err);
        aster_time_us t;
        if (aster_time_parse_rfc3339(w[1], "schedule", &t, err))
            return ASTER_EINVAL;
        c->at = t >= 0 ? t / ASTER_US_PER_SEC : -((-t + ASTER_US_PER_SEC - 1) / ASTER_US_PER_SEC);
        c->kind = K_AT;
        c->realtime = 1;
        return 0;
    }
    for (size_t i = 0; i < ASTER_NELEM(macros); i++) {
        if (strcasecmp(w[0], macros[i].name))
            continue;
        if (n != 1)
            return aster_err_set(err, ASTER_EINVAL, "schedule", "%s takes no argument",
                                 macros[i].name);
        return parse_fields(c, macros[i].f, 5, err);
    }
    return aster_err_set(err, ASTER_EINVAL, "schedule",
                         "unknown macro '%.32s' (expected @yearly, @annually, @monthly, "
                         "@weekly, @daily, @midnight, @hourly, @every or @at)",
                         w[0]);
}

int aster_cron_parse(const char *expr, aster_cron **out, aster_err *err)
{
    char buf[ASTER_CRON_EXPR_MAX + 1], *w[8];
    int n = 0, rc;
    aster_cron *c;

    if (!expr)
        expr = "";
    if (strnlen(expr, ASTER_CRON_EXPR_MAX + 1) > ASTER_CRON_EXPR_MAX)
        return aster_err_set(err, ASTER_EINVAL, "schedule", "longer than %d bytes",
                             ASTER_CRON_EXPR_MAX);
    memcpy(buf, expr, strlen(expr) + 1);
    for (char *p = buf; *p;) {
        while (isspace((unsigned char)*p))
            *p++ = '\0';
        if (!*p)
            break;
        if (n < (int)ASTER_NELEM(w))
            w[n] = p;
        n++;
        while (*p && !isspace((unsigned char)*p))
            p++;
    }
    if (n == 0)
        return aster_err_set(err, ASTER_EINVAL, "schedule", "empty schedule");
    c = aster_calloc(1, sizeof(*c));
    if (w[0][0] == '@')
        rc = parse_macro(c, w, n, err);
    else
        rc = parse_fields(c, (const char *const *)w, n, err);
    if (rc) {
        aster_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void aster_cron_free(aster_cron *c)
{
    aster_free(c);
}

int aster_cron_is_oneoff(const aster_cron *c)
{
    return c->kind == K_AT;
}

int aster_cron_is_realtime(const aster_cron *c)
{
    return c->realtime;
}

/* ---- policies ----------------------------------------------------------- */

static const char *const gap_names[] = {"auto", "shift", "skip"};
static const char *const overlap_names[] = {"auto", "first", "last", "both"};

int aster_dst_gap_parse(const char *s, aster_dst_gap *out, aster_err *err)
{
    for (int i = 0; s && i < 3; i++)
        if (!strcasecmp(s, gap_names[i])) {
            *out = (aster_dst_gap)i;
            return 0;
        }
    return aster_err_set(err, ASTER_EINVAL, "dst_gap",
                         "'%.64s' is not a gap policy (expected auto, shift or skip)", s ? s : "");
}

int aster_dst_overlap_parse(const char *s, aster_dst_overlap *out, aster_err *err)
{
    for (int i = 0; s && i < 4; i++)
        if (!strcasecmp(s, overlap_names[i])) {
            *out = (aster_dst_overlap)i;
            return 0;
        }
    return aster_err_set(err, ASTER_EINVAL, "dst_overlap",
                         "'%.64s' is not an overlap policy (expected auto, first, last or both)",
                         s ? s : "");
}

const char *aster_dst_gap_name(aster_dst_gap g)
{
    return (unsigned)g < 3 ? gap_names[g] : "?";
}

const char *aster_dst_overlap_name(aster_dst_overlap o)
{
    return (unsigned)o < 4 ? overlap_names[o] : "?";
}

/* ---- evaluation --------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The first matching wall time >= w, or INT64_MAX past year ymax. */
static int64_t next_wall(const aster_cron *c, int64_t w, int64_t ymax)
{
    int64_t days = floor_div(w, 86400), rem = w - days * 86400, y, key = INT64_MIN;
    int mo, d, h = (int)(rem / 3600), mi = (int)(rem / 60 % 60), s = (int)(rem % 60);
    uint64_t dmask = 0;

    aster_civil_from_days(days, &y, &mo, &d);
    for (;;) {
        if (y > ymax)
            return INT64_MAX;
        if (!(c->bits[F_MON] >> mo & 1)) {
            uint64_t later = c->bits[F_MON] >> (mo + 1) << (mo + 1);
            if (later) {
                mo = __builtin_ctzll(later);
            } else {
                y++;
                mo = __builtin_ctzll(c->bits[F_MON]);
            }
            d = 1, h = mi = s = 0;
            continue;
        }
        if (key != y * 16 + mo) {
            key = y * 16 + mo;
            dmask = day_mask(c, y, mo);
        }
        uint64_t dm = dmask >> d << d;
        if (!dm) {
            if (++mo > 12)
                mo = 1, y++;
            d = 1, h = mi = s = 0;
            continue;
        }
        if (__builtin_ctzll(dm) != d)
            d = __builtin_ctzll(dm), h = mi = s = 0;
        uint64_t hm = c->bits[F_HOUR] >> h << h;
        if (!hm) {
            d++, h = mi = s = 0;
            continue;
        }
        if (__builtin_ctzll(hm) != h)
            h = __builtin_ctzll(hm), mi = s = 0;
        uint64_t mm = c->bits[F_MIN] >> mi << mi;
        if (!mm) {
            h++, mi = s = 0;
            continue;
        }
        if (__builtin_ctzll(mm) != mi)
            mi = __builtin_ctzll(mm), s = 0;
        uint64_t sm = c->bits[F_SEC] >> s << s;
        if (!sm) {
            mi++, s = 0;
            continue;
        }
        s = __builtin_ctzll(sm);
        return aster_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    }
}

/* next_wall() remembering its last answer: no match lies in [q, r). */
typedef struct wall_memo {
    int64_t q, r, ymax;
} wall_memo;

static int64_t next_wall_memo(const aster_cron *c, wall_memo *m, int64_t w)
{
    if (w < m->q || w > m->r) {
        m->q = w;
        m->r = next_wall(c, w, m->ymax);
    }
    return m->r;
}

static int next_every(const aster_cron *c, int64_t anchor, int64_t after, int64_t *out)
{
    int64_t k = after < anchor ? 1 : (after - anchor) / c->every + 1;

    if (anchor > MAX_SEC || k > (MAX_SEC - anchor) / c->every)
        return 0;
    *out = anchor + k * c->every;
    return 1;
}

int aster_cron_next(const aster_cron *c, const aster_tz *tz, aster_dst_policy pol,
                    int64_t anchor_sec, int64_t after_sec, int64_t *out_sec)
{
    aster_dst_gap gap = pol.gap;
    aster_dst_overlap ov = pol.overlap;
    aster_tz_seg sg;
    wall_memo memo = {INT64_MAX, INT64_MIN, 0};
    aster_civil lc;

    if (after_sec >= MAX_SEC)
        return 0;
    if (c->kind == K_AT) {
        if (c->at <= after_sec || c->at > MAX_SEC)
            return 0;
        *out_sec = c->at;
        return 1;
    }
    if (c->kind == K_EVERY)
        return next_every(c, anchor_sec, after_sec, out_sec);
    if (gap == ASTER_DST_GAP_AUTO)
        gap = c->realtime ? ASTER_DST_GAP_SKIP : ASTER_DST_GAP_SHIFT;
    if (ov == ASTER_DST_OVERLAP_AUTO)
        ov = c->realtime ? ASTER_DST_OVERLAP_BOTH : ASTER_DST_OVERLAP_FIRST;

    int64_t limit = after_sec < MAX_SEC - HORIZON_SEC ? after_sec + HORIZON_SEC : MAX_SEC;
    aster_civil_from_sec(limit, &lc);
    memo.ymax = lc.year + 1;
    for (int64_t t = after_sec + 1; t <= limit;) {
        aster_tz_segment(tz, t, &sg);
        /* A gap opens as this segment starts: under SHIFT, its matching wall
         * times (however many) fire once, at the first instant after it. */
        if (sg.start == t && gap == ASTER_DST_GAP_SHIFT && sg.off > sg.prev_off &&
            next_wall_memo(c, &memo, t + sg.prev_off) < t + sg.off) {
            *out_sec = t;
            return 1;
        }
        int64_t lo = t, hi = sg.end;
        /* After a fall-back the first `delta` seconds repeat earlier wall
         * times; before one, the last `delta` seconds are repeated later. */
        if (ov == ASTER_DST_OVERLAP_FIRST && sg.start != INT64_MIN && sg.off < sg.prev_off &&
            lo < sg.start + (sg.prev_off - sg.off))
            lo = sg.start + (sg.prev_off - sg.off);
        if (ov == ASTER_DST_OVERLAP_LAST && sg.end != INT64_MAX && sg.next_off < sg.off)
            hi = sg.end - (sg.off - sg.next_off);
        if (lo < hi) {
            int64_t w = next_wall_memo(c, &memo, lo + sg.off);
            if (w != INT64_MAX && w - sg.off < hi) {
                if (w - sg.off > limit)
                    return 0;
                *out_sec = w - sg.off;
                return 1;
            }
        }
        if (sg.end == INT64_MAX)
            return 0;
        t = sg.end;
    }
    return 0;
}
