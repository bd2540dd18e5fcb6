/* test_cron_prop.c — aster_cron_next() against a brute-force reference.
 *
 * Random expressions (a seeded PRNG, so every run checks the same cases) are
 * generated as item lists and rendered as text.  The reference never looks at
 * cron.c: it walks real instants one step at a time (a second, or a minute for
 * 5-field expressions: fires then fall on whole local minutes, and every
 * modern offset of the zones used is whole minutes), converts each to local
 * time with aster_tz_offset_at(), and matches the fields from the item lists
 * and the Quartz definitions directly.  The DST policy is applied from its
 * definition: an overlap instant is dropped under FIRST when its wall time
 * was shown earlier (LAST: will be shown later); under SHIFT, an instant where
 * the offset grows fires when any wall time the jump skipped matches.
 * Horizons are short and start near a transition in the DST zones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cron/cron.h"
#include "util/time.h"

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, NF };
enum { I_STAR, I_VAL, I_RANGE, I_ASTEP, I_L, I_W, I_LW, I_NL, I_NTH };

typedef struct item {
    int kind, a, b, step;
} item;

typedef struct rfield {
    item it[4];
    int n, star; /* star: the field is exactly `*` or `?` */
} rfield;

typedef struct rexpr {
    rfield f[NF];
    int six, realtime;
    char text[256];
} rexpr;

static const int LO[NF] = {0, 0, 0, 1, 1, 0}, HI[NF] = {59, 59, 23, 31, 12, 7};
static const char *const MON[] = {"JAN", "feb", "MAR", "Apr", "MAY", "JUN",
                                  "jul", "AUG", "SEP", "oct", "NOV", "DEC"};
static const char *const DOW[] = {"SUN", "mon", "Tue", "WED", "thu", "FRI", "sat"};

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17; /* xorshift64 */
    return (uint32_t)(rng % n);
}

static int rval(int f)
{
    return LO[f] + (int)rnd((uint32_t)(HI[f] - LO[f] + 1));
}

static void put_val(char **p, int f, int v)
{
    if (f == F_MON && rnd(3) == 0)
        *p += sprintf(*p, "%s", MON[v - 1]);
    else if (f == F_DOW && v < 7 && rnd(3) == 0) /* 7 has no name: SUN is 0 */
        *p += sprintf(*p, "%s", DOW[v]);
    else
        *p += sprintf(*p, "%d", v);
}

static void gen_item(int f, item *it, char **p)
{
    int r = (int)rnd(f == F_DOM || f == F_DOW ? 9 : 6);

    it->step = 1;
    if (f == F_DOM && r >= 6) {
        r = (int)rnd(3);
        if (r == 0) {
            it->kind = I_L, it->a = rnd(2) ? 0 : (int)rnd(31);
            *p += it->a ? sprintf(*p, "L-%d", it->a) : sprintf(*p, "L");
        } else if (r == 1) {
            it->kind = I_W, it->a = 1 + (int)rnd(31);
            *p += sprintf(*p, "%dW", it->a);
        } else {
            it->kind = I_LW;
            *p += sprintf(*p, "LW");
        }
        return;
    }
    if (f == F_DOW && r >= 6) {
        it->a = (int)rnd(8);
        put_val(p, f, it->a);
        if (rnd(2)) {
            it->kind = I_NL;
            *p += sprintf(*p, "L");
        } else {
            it->kind = I_NTH, it->b = 1 + (int)rnd(5);
            *p += sprintf(*p, "#%d", it->b);
        }
        return;
    }
    switch (r) {
    case 0:
        it->kind = I_STAR, it->step = 1 + (int)rnd(HI[f] + 10);
        *p += sprintf(*p, "*/%d", it->step);
        break;
    case 1:
    case 2:
        it->kind = I_VAL, it->a = rval(f);
        put_val(p, f, it->a);
        break;
    case 3:
    case 4:
        it->kind = I_RANGE, it->a = rval(f), it->b = rval(f);
        it->step = rnd(2) ? 1 : 1 + (int)rnd(6);
        put_val(p, f, it->a);
        *p += sprintf(*p, "-");
        put_val(p, f, it->b);
        if (it->step > 1)
            *p += sprintf(*p, "/%d", it->step);
        break;
    default:
        it->kind = I_ASTEP, it->a = rval(f), it->step = 1 + (int)rnd(HI[f]);
        *p += sprintf(*p, "%d/%d", it->a, it->step);
        break;
    }
}

static void gen_field(int f, rfield *rf, char **p)
{
    /* Mostly wide fields, so that short horizons see fires. */
    int star = f == F_MON || f == F_DOM || f == F_DOW ? 3 : 1;

    memset(rf, 0, sizeof(*rf));
    if ((int)rnd(5) < star || (f == F_SEC && rnd(2))) {
        rf->star = 1, rf->n = 1, rf->it[0] = (item){I_STAR, 0, 0, 1};
        *p += sprintf(*p, (f == F_DOM || f == F_DOW) && rnd(2) ? "?" : "*");
        return;
    }
    rf->n = 1 + (int)rnd(3);
    for (int i = 0; i < rf->n; i++) {
        if (i)
            *(*p)++ = ',';
        gen_item(f, &rf->it[i], p);
    }
}

static void gen_expr(rexpr *e, int six)
{
    char *p = e->text;

    e->six = six;
    for (int f = six ? F_SEC : F_MIN; f < NF; f++) {
        if (f == F_HOUR && rnd(2)) { /* real time: `*` or `*` / n */
            int n = rnd(2) ? 1 : 1 + (int)rnd(5);
            memset(&e->f[f], 0, sizeof(e->f[f]));
            e->f[f].n = 1, e->f[f].it[0] = (item){I_STAR, 0, 0, n};
            p += n == 1 ? sprintf(p, "*") : sprintf(p, "*/%d", n);
            e->realtime = 1;
        } else {
            gen_field(f, &e->f[f], &p);
            if (f == F_HOUR) /* `*` or `*` / n, however it came about */
                e->realtime = e->f[f].n == 1 && e->f[f].it[0].kind == I_STAR;
        }
        *p++ = ' ';
    }
    p[-1] = '\0';
    if (!six) {
        memset(&e->f[F_SEC], 0, sizeof(e->f[F_SEC]));
        e->f[F_SEC].n = 1, e->f[F_SEC].it[0] = (item){I_VAL, 0, 0, 1};
    }
}

/* ---- the reference ---------------------------------------------------- */

static int plain_match(int f, const item *it, int v)
{
    int lo = LO[f], hi = f == F_DOW ? 6 : HI[f], a = it->a, b = it->b;

    switch (it->kind) {
    case I_STAR:
        return v >= lo && v <= hi && (v - lo) % it->step == 0;
    case I_VAL:
        return f == F_DOW ? a % 7 == v : a == v;
    case I_ASTEP:
        if (f == F_DOW && a == 7)
            a = 0;
        return v >= a && v <= hi && (v - a) % it->step == 0;
    case I_RANGE:
        if (f == F_DOW) {
            if (a == 7)
                a = 0, b = b == 7 ? 0 : b;
            if (a <= b) { /* 7 stands for Sunday too */
                for (int x = v; x <= 7; x += 7)
                    if (x >= a && x <= b && (x - a) % it->step == 0)
                        return 1;
                return 0;
            }
        } else if (a <= b) {
            return v >= a && v <= b && (v - a) % it->step == 0;
        }
        {
            int width = hi - lo + 1, idx = v >= a ? v - a : v - a + width;
            return idx < (hi - a + 1) + (b - lo + 1) && idx % it->step == 0;
        }
    default:
        return 0;
    }
}

static int field_match(int f, const rfield *rf, int v)
{
    for (int i = 0; i < rf->n; i++)
        if (plain_match(f, &rf->it[i], v))
            return 1;
    return 0;
}

static int wd_of(int64_t y, int m, int d)
{
    return aster_weekday_from_days(aster_days_from_civil(y, m, d));
}

static int dom_match(const rfield *rf, int64_t y, int m, int d)
{
    int dim = aster_days_in_month(y, m);

    for (int i = 0; i < rf->n; i++) {
        const item *it = &rf->it[i];
        int t = -1;
        if (it->kind == I_L) {
            t = dim - it->a;
        } else if (it->kind == I_W && it->a <= dim) {
            int w = wd_of(y, m, it->a);
            t = w == 6   ? (it->a == 1 ? 3 : it->a - 1)
                : w == 0 ? (it->a == dim ? it->a - 2 : it->a + 1)
                         : it->a;
        } else if (it->kind == I_LW) {
            int w = wd_of(y, m, dim);
            t = w == 6 ? dim - 1 : w == 0 ? dim - 2 : dim;
        } else if (plain_match(F_DOM, it, d)) {
            return 1;
        }
        if (t == d)
            return 1;
    }
    return 0;
}

static int dow_match(const rfield *rf, int64_t y, int m, int d)
{
    int w = wd_of(y, m, d), dim = aster_days_in_month(y, m);

    for (int i = 0; i < rf->n; i++) {
        const item *it = &rf->it[i];
        if (it->kind == I_NL && w == it->a % 7 && d + 7 > dim)
            return 1;
        if (it->kind == I_NTH && w == it->a % 7 && (d - 1) / 7 + 1 == it->b)
            return 1;
        if (plain_match(F_DOW, it, w))
            return 1;
    }
    return 0;
}

static int wall_match(const rexpr *e, int64_t wall)
{
    aster_civil c;
    aster_civil_from_sec(wall, &c);
    if (!field_match(F_SEC, &e->f[F_SEC], c.sec) || !field_match(F_MIN, &e->f[F_MIN], c.min) ||
        !field_match(F_HOUR, &e->f[F_HOUR], c.hour) || !field_match(F_MON, &e->f[F_MON], c.month))
        return 0;
    int dr = !e->f[F_DOM].star, wr = !e->f[F_DOW].star;
    int dm = dom_match(&e->f[F_DOM], c.year, c.month, c.day);
    int wm = dow_match(&e->f[F_DOW], c.year, c.month, c.day);
    return dr && wr ? dm || wm : dr ? dm : wr ? wm : 1;
}

/* Is the wall time of `u` also shown within 3 h before (dir -1) or after? */
static int shown_again(const aster_tz *tz, int64_t u, int dir)
{
    int64_t wall = u + aster_tz_offset_at(tz, u);
    for (int k = 1; k <= 18; k++) {
        int32_t o = aster_tz_offset_at(tz, u + dir * k * 600);
        int64_t v = wall - o;
        if ((dir < 0 ? v < u : v > u) && aster_tz_offset_at(tz, v) == o)
            return 1;
    }
    return 0;
}

static int ref_fires(const rexpr *e, const aster_tz *tz, aster_dst_policy pol, int64_t from,
                     int64_t to, int64_t *out, int max)
{
    int step = e->six ? 1 : 60, n = 0;
    aster_dst_gap gap = pol.gap;
    aster_dst_overlap ov = pol.overlap;

    if (gap == ASTER_DST_GAP_AUTO)
        gap = e->realtime ? ASTER_DST_GAP_SKIP : ASTER_DST_GAP_SHIFT;
    if (ov == ASTER_DST_OVERLAP_AUTO)
        ov = e->realtime ? ASTER_DST_OVERLAP_BOTH : ASTER_DST_OVERLAP_FIRST;
    for (int64_t u = from + step - ((from % step) + step) % step; u <= to && n < max; u += step) {
        if (u <= from)
            continue;
        int32_t off = aster_tz_offset_at(tz, u), before = aster_tz_offset_at(tz, u - 1);
        int fire = 0;
        if (gap == ASTER_DST_GAP_SHIFT && off > before)
            for (int64_t w = u + before; w < u + off && !fire; w += step)
                fire = wall_match(e, w);
        if (!fire && wall_match(e, u + off)) {
            fire = 1;
            if (ov == ASTER_DST_OVERLAP_FIRST && shown_again(tz, u, -1))
                fire = 0;
            if (ov == ASTER_DST_OVERLAP_LAST && shown_again(tz, u, 1))
                fire = 0;
        }
        if (fire)
            out[n++] = u;
    }
    return n;
}

/* ---- the property ------------------------------------------------------- */

static void check(const rexpr *e, const aster_tz *tz, aster_dst_policy pol, int64_t from,
                  int64_t to)
{
    int64_t want[64], got, t = from;
    int n = ref_fires(e, tz, pol, from, to, want, 64);
    aster_cron *c = NULL;
    aster_err err = {0};
    char b1[ASTER_TIME_BUFSZ], b2[ASTER_TIME_BUFSZ], b3[ASTER_TIME_BUFSZ];

    if (aster_cron_parse(e->text, &c, &err)) {
        /* Only "never fires" may be refused, and then the reference agrees. */
        if (strcmp(err.field, "day-of-month") || !strstr(err.msg, "never fires"))
            fail_msg("'%s' refused: %s: %s", e->text, err.field, err.msg);
        assert_int_equal(n, 0);
        return;
    }
    for (int i = 0; i <= n && i < 64; i++) {
        int more = aster_cron_next(c, tz, pol, from, t, &got);
        if (i == n) {
            if (n < 64 && more && got <= to)
                fail_msg("'%s' %s gap=%s ov=%s from %s: extra fire %s", e->text, aster_tz_name(tz),
                         aster_dst_gap_name(pol.gap), aster_dst_overlap_name(pol.overlap),
                         aster_time_format_sec(from, b1, sizeof(b1)),
                         aster_time_format_sec(got, b2, sizeof(b2)));
            break;
        }
        if (!more || got != want[i])
            fail_msg("'%s' %s gap=%s ov=%s from %s: fire %d is %s, want %s", e->text,
                     aster_tz_name(tz), aster_dst_gap_name(pol.gap),
                     aster_dst_overlap_name(pol.overlap),
                     aster_time_format_sec(from, b1, sizeof(b1)), i,
                     more ? aster_time_format_sec(got, b2, sizeof(b2)) : "none",
                     aster_time_format_sec(want[i], b3, sizeof(b3)));
        t = got;
    }
    aster_cron_free(c);
}

static void run_zone(const char *zone, int cases)
{
    const aster_tz *tz;
    aster_tz_seg sg;

    assert_int_equal(aster_tz_get(zone, &tz, NULL), 0);
    for (int i = 0; i < cases; i++) {
        rexpr e;
        int six = rnd(4) == 0;
        aster_dst_policy pol = {(aster_dst_gap)rnd(3), (aster_dst_overlap)rnd(4)};
        /* a random instant in 1990-2060, moved to just before the next change */
        int64_t t = INT64_C(631152000) + (int64_t)rnd(70 * 365) * 86400 + rnd(86400);
        aster_tz_segment(tz, t, &sg);
        if (sg.end != INT64_MAX)
            t = sg.end - (six ? (int64_t)rnd(7200) : (int64_t)rnd(36 * 3600));
        memset(&e, 0, sizeof(e));
        gen_expr(&e, six);
        check(&e, tz, pol, t, t + (six ? 4 * 3600 : 3 * 86400));
    }
}

static void test_utc(void **state)
{
    (void)state;
    run_zone("UTC", 600);
}

static void test_fixed_offset(void **state)
{
    (void)state;
    run_zone("Asia/Kolkata", 300);
}

static void test_new_york(void **state)
{
    (void)state;
    run_zone("America/New_York", 600);
}

static void test_berlin(void **state)
{
    (void)state;
    run_zone("Europe/Berlin", 500);
}

static void test_lord_howe(void **state)
{
    (void)state;
    run_zone("Australia/Lord_Howe", 600);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utc),       cmocka_unit_test(test_fixed_offset),
        cmocka_unit_test(test_new_york),  cmocka_unit_test(test_berlin),
        cmocka_unit_test(test_lord_howe),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    aster_tz_cache_free();
    return rc;
}
