/* cron.c — `aster cron next`: the next fire instants of a schedule.
 *
 * Contract (tests/e2e/test_cron_cli.py): N lines YYYY-MM-DDTHH:MM:SSZ on
 * stdout, each strictly after --from, exit 0 (fewer lines, maybe none, when
 * the schedule runs out); on any bad input exit 2 with nothing on stdout and
 * exactly one line "error: FIELD: MSG" on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cron/cron.h"
#include "util/mem.h"
#include "util/time.h"

#define COUNT_DEFAULT 5
#define COUNT_MAX     1000

static const char usage[] =
    "usage: aster cron next [--tz ZONE] [--from TIME] [--count N]\n"
    "                       [--dst-gap auto|shift|skip] [--dst-overlap auto|first|last|both]\n"
    "                       EXPR\n"
    "\n"
    "Prints the next N (default 5, at most 1000) fire instants of EXPR strictly after\n"
    "TIME (RFC 3339, default now), one per line in UTC, reading EXPR as wall-clock\n"
    "time in ZONE (an IANA zone, default UTC).  See docs/schedules.md.\n";

typedef struct opts {
    const char *tz, *from, *count, *gap, *overlap;
    char expr[ASTER_CRON_EXPR_MAX + 2];
    size_t expr_len;
    int help;
} opts;

static int fail(const aster_err *e)
{
    fprintf(stderr, "error: %s: %s\n", e->field, e->msg);
    return 2;
}

/* Words that are not options are the expression, joined by spaces, so that
 * `aster cron next 0 9 * * MON-FRI` works like the quoted form. */
static int add_word(opts *o, const char *w, aster_err *err)
{
    size_t n = strlen(w);

    if (o->expr_len + n + 1 > ASTER_CRON_EXPR_MAX)
        return aster_err_set(err, ASTER_EINVAL, "schedule", "longer than %d bytes",
                             ASTER_CRON_EXPR_MAX);
    if (o->expr_len)
        o->expr[o->expr_len++] = ' ';
    memcpy(o->expr + o->expr_len, w, n + 1);
    o->expr_len += n;
    return 0;
}

static int parse_args(int argc, char **argv, opts *o, aster_err *err)
{
    static const char *const names[] = {"--tz", "--from", "--count", "--dst-gap", "--dst-overlap"};
    int only_words = 0;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *eq, *val;
        size_t k, n;

        if (only_words || strncmp(a, "--", 2) != 0 || !strcmp(a, "--")) {
            if (!only_words && !strcmp(a, "--")) {
                only_words = 1;
                continue;
            }
            if (!strcmp(a, "-h")) {
                o->help = 1;
                continue;
            }
            if (add_word(o, a, err))
                return ASTER_EINVAL;
            continue;
        }
        if (!strcmp(a, "--help")) {
            o->help = 1;
            continue;
        }
        eq = strchr(a, '=');
        n = eq ? (size_t)(eq - a) : strlen(a);
        for (k = 0; k < ASTER_NELEM(names); k++)
            if (strlen(names[k]) == n && !strncmp(a, names[k], n))
                break;
        if (k == ASTER_NELEM(names)) {
            char opt[64];
            snprintf(opt, sizeof(opt), "%.*s", (int)(n < sizeof(opt) ? n : sizeof(opt) - 1), a);
            return aster_err_set(err, ASTER_EINVAL, opt,
                                 "unknown option (expected --tz, --from, --count, --dst-gap, "
                                 "--dst-overlap or --help)");
        }
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            return aster_err_set(err, ASTER_EINVAL, names[k], "missing value");
        }
        const char **slot[] = {&o->tz, &o->from, &o->count, &o->gap, &o->overlap};
        *slot[k] = val;
    }
    return 0;
}

static int parse_count(const char *s, int *out, aster_err *err)
{
    long v = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9' && v <= COUNT_MAX; p++)
        v = v * 10 + (*p - '0');
    if (p == s || *p || v < 1 || v > COUNT_MAX)
        return aster_err_set(err, ASTER_EINVAL, "--count",
                             "'%.32s' is not a whole number from 1 to %d", s, COUNT_MAX);
    *out = (int)v;
    return 0;
}

static int run(opts *o, aster_err *err)
{
    const aster_tz *tz = NULL;
    aster_cron *c = NULL;
    aster_dst_policy pol = {ASTER_DST_GAP_AUTO, ASTER_DST_OVERLAP_AUTO};
    aster_time_us from_us = aster_time_now();
    int count = COUNT_DEFAULT, rc;
    char *outbuf = NULL;
    size_t len = 0;

    if ((o->count && (rc = parse_count(o->count, &count, err))) ||
        (o->from && (rc = aster_time_parse_rfc3339(o->from, "--from", &from_us, err))) ||
        (o->gap && (rc = aster_dst_gap_parse(o->gap, &pol.gap, err))) ||
        (o->overlap && (rc = aster_dst_overlap_parse(o->overlap, &pol.overlap, err))) ||
        (rc = aster_tz_get(o->tz ? o->tz : "UTC", &tz, err)))
        goto out;
    if (!o->expr_len) {
        rc = aster_err_set(err, ASTER_EINVAL, "schedule",
                           "missing expression (usage: aster cron next [options] EXPR)");
        goto out;
    }
    if ((rc = aster_cron_parse(o->expr, &c, err)))
        goto out;

    /* Seconds, rounded down: "strictly after" a fraction is the same as
     * strictly after its whole second, since fires fall on whole seconds. */
    int64_t from = from_us >= 0 ? from_us / ASTER_US_PER_SEC
                                : -((-from_us + ASTER_US_PER_SEC - 1) / ASTER_US_PER_SEC);
    int64_t t = from;
    outbuf = aster_malloc((size_t)count * ASTER_TIME_BUFSZ + 1);
    outbuf[0] = '\0';
    for (int i = 0; i < count && aster_cron_next(c, tz, pol, from, t, &t); i++) {
        aster_time_format_sec(t, outbuf + len, ASTER_TIME_BUFSZ);
        len += strlen(outbuf + len);
        outbuf[len++] = '\n';
        outbuf[len] = '\0';
    }
    fwrite(outbuf, 1, len, stdout);
out:
    aster_free(outbuf);
    aster_cron_free(c);
    return rc;
}

int aster_cli_cron(int argc, char **argv)
{
    opts o = {0};
    aster_err err = {0};
    int rc = 0;

    if (argc < 2 || strcmp(argv[1], "next") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            fputs(usage, stdout);
            return 0;
        }
        fprintf(stderr, "error: cron: expected 'next' (usage: aster cron next [options] EXPR)\n");
        return 2;
    }
    if (parse_args(argc - 2, argv + 2, &o, &err) == 0 && o.help) {
        fputs(usage, stdout);
    } else if (!err.code) {
        rc = run(&o, &err);
    }
    aster_tz_cache_free();
    if (err.code)
        return fail(&err);
    return rc ? 2 : 0;
}
