/* tz.c — TZif reader and offset lookups (see tz.h).
 *
 * A loaded zone is one sorted table of the instants at which the UTC offset
 * changes.  Changes that only rename the zone or flip isdst are dropped: the
 * scheduler only cares about the offset.  When the file ends in a POSIX TZ
 * rule with DST, the rule's transitions are appended for 400 years past the
 * file's last one.  The Gregorian calendar repeats every 400 years to the
 * weekday, so later instants are looked up by shifting them back a whole
 * number of cycles: lookups are a binary search, and exact for any year. */
#include "cron/tz.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/mem.h"
#include "util/time.h"

#define CYCLE_SEC    (INT64_C(146097) * 86400) /* 400 Gregorian years */
#define RULE_YEARS   402                       /* one cycle plus a year each side */
#define TZIF_MAX     (1024 * 1024)             /* real files are < 4 KiB */
#define POSIX_HR_MAX 167                       /* RFC 8536 section 3.3.1 */

typedef struct rule_date {
    char kind;    /* 'J' (1-365, no Feb 29), 'N' (0-365), 'M' (month.week.day) */
    int a, b, c;  /* J/N: day; M: month, week 1-5, weekday 0-6 */
    int32_t time; /* seconds after local midnight, may be negative */
} rule_date;

typedef struct posix_rule {
    int32_t std_off, dst_off; /* seconds east of UTC */
    int has_dst;
    rule_date start, end;
} posix_rule;

struct aster_tz {
    struct aster_tz *next; /* cache list */
    char *name;
    int64_t *trans; /* ascending; each one changes the offset */
    int32_t *offs;  /* offs[i] is in effect from trans[i] on */
    size_t n;
    int32_t off0;  /* before trans[0], or always when n == 0 */
    int periodic;  /* instants >= limit repeat those CYCLE_SEC earlier */
    int64_t base;  /* start of the repeating cycle */
    int64_t limit; /* base + CYCLE_SEC */
};

/* ---- table building ---------------------------------------------------- */

typedef struct table {
    int64_t *t;
    int32_t *o;
    size_t n, cap;
    int32_t off0;
} table;

static void table_push(table *tb, int64_t t, int32_t off)
{
    int32_t cur = tb->n ? tb->o[tb->n - 1] : tb->off0;

    if (tb->n && t <= tb->t[tb->n - 1]) {
        /* Two changes at one instant: the later one wins. */
        tb->n--;
        cur = tb->n ? tb->o[tb->n - 1] : tb->off0;
    }
    if (off == cur)
        return;
    if (tb->n == tb->cap) {
        tb->cap = tb->cap ? tb->cap * 2 : 64;
        tb->t = aster_realloc(tb->t, tb->cap * sizeof(*tb->t));
        tb->o = aster_realloc(tb->o, tb->cap * sizeof(*tb->o));
    }
    tb->t[tb->n] = t;
    tb->o[tb->n] = off;
    tb->n++;
}

/* ---- POSIX TZ strings (RFC 8536 section 3.3) --------------------------- */

static const char *p_name(const char *p)
{
    const char *s = p;

    if (*p == '<') {
        while (*++p && *p != '>')
            ;
        return *p == '>' && p - s >= 4 ? p + 1 : NULL;
    }
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
        p++;
    return p - s >= 3 ? p : NULL;
}

static const char *p_num(const char *p, int max, int *out)
{
    int v = 0, n = 0;

    while (*p >= '0' && *p <= '9' && n < 4) {
        v = v * 10 + (*p++ - '0');
        n++;
    }
    if (!n || v > max)
        return NULL;
    *out = v;
    return p;
}

/* [+-]hh[:mm[:ss]] as signed seconds. */
static const char *p_hms(const char *p, int max_hours, int32_t *out)
{
    int sign = 1, h, m = 0, s = 0;

    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    if (!(p = p_num(p, max_hours, &h)))
        return NULL;
    if (*p == ':' && !(p = p_num(p + 1, 59, &m)))
        return NULL;
    if (*p == ':' && !(p = p_num(p + 1, 59, &s)))
        return NULL;
    *out = sign * (h * 3600 + m * 60 + s);
    return p;
}

static const char *p_date(const char *p, rule_date *d)
{
    d->time = 2 * 3600;
    if (*p == 'J') {
        d->kind = 'J';
        if (!(p = p_num(p + 1, 365, &d->a)) || d->a < 1)
            return NULL;
    } else if (*p == 'M') {
        d->kind = 'M';
        if (!(p = p_num(p + 1, 12, &d->a)) || d->a < 1 || *p != '.' ||
            !(p = p_num(p + 1, 5, &d->b)) || d->b < 1 || *p != '.' || !(p = p_num(p + 1, 6, &d->c)))
            return NULL;
    } else {
        d->kind = 'N';
        if (!(p = p_num(p, 365, &d->a)))
            return NULL;
    }
    if (*p == '/')
        p = p_hms(p + 1, POSIX_HR_MAX, &d->time);
    return p;
}

static int parse_posix(const char *s, posix_rule *r)
{
    const char *p = p_name(s);
    int32_t v;

    memset(r, 0, sizeof(*r));
    if (!p || !(p = p_hms(p, 24, &v)))
        return -1;
    r->std_off = -v;
    if (!*p)
        return 0;
    if (!(p = p_name(p)))
        return -1;
    r->has_dst = 1;
    r->dst_off = r->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = p_hms(p, 24, &v)))
            return -1;
        r->dst_off = -v;
    }
    if (!*p) { /* POSIX leaves the dates to the implementation: US rules */
        r->start = (rule_date){'M', 3, 2, 0, 7200};
        r->end = (rule_date){'M', 11, 1, 0, 7200};
        return 0;
    }
    if (*p != ',' || !(p = p_date(p + 1, &r->start)) || *p != ',' ||
        !(p = p_date(p + 1, &r->end)) || *p)
        return -1;
    return 0;
}

/* Local midnight of the rule's day in `year`, as days since the epoch. */
static int64_t rule_day(const rule_date *d, int64_t year)
{
    int64_t jan1 = aster_days_from_civil(year, 1, 1);

    if (d->kind == 'J')
        return jan1 + d->a - 1 + (aster_is_leap_year(year) && d->a >= 60);
    if (d->kind == 'N')
        return jan1 + d->a;
    int64_t first = aster_days_from_civil(year, d->a, 1);
    int64_t day = first + (d->c - aster_weekday_from_days(first) + 7) % 7 + (d->b - 1) * 7;
    int dim = aster_days_in_month(year, d->a);
    while (day >= first + dim)
        day -= 7;
    return day;
}

/* Appends the rule's changes of `year` in the order they happen. */
static void rule_year(const posix_rule *r, int64_t year, int64_t after, table *tb)
{
    /* DST starts while standard time is in effect and ends during DST. */
    int64_t s = rule_day(&r->start, year) * 86400 + r->start.time - r->std_off;
    int64_t e = rule_day(&r->end, year) * 86400 + r->end.time - r->dst_off;
    int64_t t1 = s, t2 = e;
    int32_t o1 = r->dst_off, o2 = r->std_off;

    if (e < s) {
        t1 = e, t2 = s;
        o1 = r->std_off, o2 = r->dst_off;
    }
    if (t1 > after)
        table_push(tb, t1, o1);
    if (t2 > after)
        table_push(tb, t2, o2);
}

/* ---- TZif (RFC 8536 section 3) ------------------------------------------ */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzif_hdr {
    uint32_t isut, isstd, leap, time, type, chars;
} tzif_hdr;

static int read_hdr(const unsigned char *p, size_t len, tzif_hdr *h)
{
    if (len < 44 || memcmp(p, "TZif", 4))
        return -1;
    h->isut = be32(p + 20);
    h->isstd = be32(p + 24);
    h->leap = be32(p + 28);
    h->time = be32(p + 32);
    h->type = be32(p + 36);
    h->chars = be32(p + 40);
    if (h->type == 0 || h->type > 256 || h->time > 100000 || h->leap > 100000 ||
        h->chars > 100000 || h->isut > 256 || h->isstd > 256)
        return -1;
    return 0;
}

static size_t data_len(const tzif_hdr *h, size_t tsz)
{
    return h->time * tsz + h->time + h->type * 6 + h->chars + h->leap * (tsz + 4) + h->isstd +
           h->isut;
}

static int parse_tzif(const unsigned char *buf, size_t len, aster_tz *tz)
{
    tzif_hdr h;
    size_t tsz = 4, off;
    const unsigned char *d;
    posix_rule rule = {0};
    int have_rule = 0;
    table tb = {0};

    if (read_hdr(buf, len, &h))
        return -1;
    off = 44;
    if (buf[4] >= '2') { /* skip the 32-bit block for the 64-bit one */
        off += data_len(&h, 4);
        if (off > len || read_hdr(buf + off, len - off, &h))
            return -1;
        off += 44;
        tsz = 8;
    }
    if (off + data_len(&h, tsz) > len)
        return -1;
    d = buf + off;
    const unsigned char *idx = d + h.time * tsz, *types = idx + h.time;
    for (uint32_t i = 0; i < h.time; i++)
        if (idx[i] >= h.type)
            return -1;
    if (tsz == 8) { /* footer: "\nTZ\n" */
        const unsigned char *f = d + data_len(&h, 8), *end = buf + len;
        if (f < end && *f == '\n') {
            const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
            char s[128];
            size_t n = nl ? (size_t)(nl - f - 1) : 0;
            if (nl && n > 0 && n < sizeof(s)) {
                memcpy(s, f + 1, n);
                s[n] = '\0';
                have_rule = parse_posix(s, &rule) == 0;
            }
        }
    }

    tb.off0 = (int32_t)be32(types);
    int64_t last = INT64_MIN;
    for (uint32_t i = 0; i < h.time; i++) {
        int64_t t = tsz == 8 ? be64(d + i * 8) : (int64_t)(int32_t)be32(d + i * 4);
        if (t <= last && i > 0) {
            aster_free(tb.t);
            aster_free(tb.o);
            return -1;
        }
        last = t;
        table_push(&tb, t, (int32_t)be32(types + idx[i] * 6));
    }
    if (have_rule && rule.has_dst) {
        aster_civil c;
        aster_civil_from_sec(h.time ? last : 0, &c);
        int64_t y0 = c.year + 1;
        for (int64_t y = y0 - 1; y <= y0 + RULE_YEARS - 1; y++)
            rule_year(&rule, y, h.time ? last : INT64_MIN, &tb);
        tz->periodic = 1;
        tz->base = aster_days_from_civil(y0, 1, 1) * 86400;
        tz->limit = tz->base + CYCLE_SEC;
    } else if (have_rule && h.time == 0) {
        tb.off0 = rule.std_off;
    }
    tz->trans = tb.t;
    tz->offs = tb.o;
    tz->n = tb.n;
    tz->off0 = tb.off0;
    return 0;
}

/* ---- lookups ------------------------------------------------------------ */

void aster_tz_segment(const aster_tz *tz, int64_t t, aster_tz_seg *out)
{
    int64_t shift = 0;
    size_t lo = 0, hi = tz->n;

    if (tz->periodic && t >= tz->limit) {
        /* Clamp first: year 9999 is far below, and t - base must not wrap. */
        if (t > INT64_C(1) << 60)
            t = INT64_C(1) << 60;
        shift = (t - tz->base) / CYCLE_SEC * CYCLE_SEC;
        t -= shift;
    }
    while (lo < hi) { /* first transition > t */
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) {
        out->start = INT64_MIN;
        out->off = out->prev_off = tz->off0;
    } else {
        out->start = tz->trans[lo - 1] + shift;
        out->off = tz->offs[lo - 1];
        out->prev_off = lo >= 2 ? tz->offs[lo - 2] : tz->off0;
    }
    if (lo < tz->n) {
        out->end = tz->trans[lo] + shift;
        out->next_off = tz->offs[lo];
    } else {
        out->end = INT64_MAX;
        out->next_off = out->off;
    }
}

int32_t aster_tz_offset_at(const aster_tz *tz, int64_t t)
{
    aster_tz_seg s;
    aster_tz_segment(tz, t, &s);
    return s.off;
}

const char *aster_tz_name(const aster_tz *tz)
{
    return tz->name;
}

int aster_tz_resolve(const aster_tz *tz, int64_t local, int64_t out[2], int64_t *gap_end)
{
    /* Offsets lie within +-26 h, so every instant showing `local` does too. */
    const int64_t span = 26 * 3600;
    int64_t t = local - span, gap = INT64_MAX;
    int n = 0;
    aster_tz_seg s;

    for (;;) {
        aster_tz_segment(tz, t, &s);
        int64_t u = local - s.off;
        if (u >= s.start && u < s.end && n < 2)
            out[n++] = u;
        /* A gap: the wall clock jumps over `local` as this segment starts. */
        if (s.start != INT64_MIN && s.start + s.prev_off <= local && local < s.start + s.off)
            gap = s.start;
        if (s.end == INT64_MAX || s.end > local + span)
            break;
        t = s.end;
    }
    if (!n && gap_end)
        *gap_end = gap;
    return n;
}

/* ---- cache -------------------------------------------------------------- */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static aster_tz *cache;

static int valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > ASTER_TZ_NAME_MAX || s[0] == '/' || strstr(s, ".."))
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '/' || *p == '_' || *p == '+' || *p == '-'))
            return 0;
    return 1;
}

static unsigned char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    unsigned char *buf = NULL;
    size_t got = 0;

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > TZIF_MAX)
        goto out;
    buf = aster_malloc((size_t)st.st_size);
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got != (size_t)st.st_size) {
        aster_free(buf);
        buf = NULL;
    }
    *len = got;
out:
    close(fd);
    return buf;
}

static aster_tz *load(const char *name)
{
    aster_tz *tz = aster_calloc(1, sizeof(*tz));
    const char *dir = getenv("TZDIR");
    char path[PATH_MAX];
    unsigned char *buf = NULL;
    size_t len = 0;

    tz->name = aster_strdup(name);
    if (!strcmp(name, "UTC")) /* built in: no file needed, offset 0 forever */
        return tz;
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        !(buf = read_file(path, &len)) || parse_tzif(buf, len, tz)) {
        aster_free(buf);
        aster_free(tz->name);
        aster_free(tz);
        return NULL;
    }
    aster_free(buf);
    return tz;
}

int aster_tz_get(const char *name, const aster_tz **out, aster_err *err)
{
    aster_tz *tz;

    if (!name || !*name)
        return aster_err_set(err, ASTER_EINVAL, "timezone", "time zone name is empty");
    if (!valid_name(name))
        return aster_err_set(err, ASTER_EINVAL, "timezone", "unknown time zone '%.*s'",
                             ASTER_TZ_NAME_MAX, name);
    pthread_mutex_lock(&cache_lock);
    for (tz = cache; tz; tz = tz->next)
        if (!strcmp(tz->name, name))
            break;
    if (!tz && (tz = load(name))) {
        tz->next = cache;
        cache = tz;
    }
    pthread_mutex_unlock(&cache_lock);
    if (!tz)
        return aster_err_set(err, ASTER_EINVAL, "timezone", "unknown time zone '%s'", name);
    *out = tz;
    return 0;
}

void aster_tz_cache_free(void)
{
    pthread_mutex_lock(&cache_lock);
    while (cache) {
        aster_tz *tz = cache;
        cache = tz->next;
        aster_free(tz->trans);
        aster_free(tz->offs);
        aster_free(tz->name);
        aster_free(tz);
    }
    pthread_mutex_unlock(&cache_lock);
}
