/* bench_cron.c — next-fire computations per second, one thread.
 *
 * The same mix as croner.mjs (keep them in step): every expression in every
 * zone, each stepped from 2026-01-01T00:00:00Z through ITER successive fires,
 * over and over until the time budget (argv[1] seconds, default 2) is spent.
 * Parsing and zone loading happen before the clock starts, as croner's
 * pattern parsing does in croner.mjs.  Prints "aster: N/s". */
#include <stdio.h>
#include <stdlib.h>

#include "cron/cron.h"
#include "util/time.h"

#define ITER 200

/* Chosen to mean the same thing to both libraries: 5 or 6 fields, no wrap
 * ranges or L-n (croner lacks them), Vixie OR (croner's default). */
static const char *const exprs[] = {
    "*/5 * * * *",  "0 9 * * MON-FRI", "30 2 * * *",
    "0 0 1 * *",    "15 10 L * *",     "0 12 * * FRI#2",
    "0 0 13 * FRI", "*/15 9-17 * * *", "0 0,6,12,18 * * SAT,SUN",
    "0 0 29 2 *",   "*/30 * * * * *",
};
static const char *const zones[] = {"UTC", "America/New_York", "Europe/Berlin",
                                    "Australia/Lord_Howe"};

#define NE ASTER_NELEM(exprs)
#define NZ ASTER_NELEM(zones)

int main(int argc, char **argv)
{
    double budget = argc > 1 ? atof(argv[1]) : 2.0;
    aster_cron *c[NE];
    const aster_tz *tz[NZ];
    aster_dst_policy pol = {ASTER_DST_GAP_AUTO, ASTER_DST_OVERLAP_AUTO};
    aster_err err = {0};
    const int64_t t0 = INT64_C(1767225600); /* 2026-01-01T00:00:00Z */
    int64_t sink = 0, n = 0;

    for (size_t i = 0; i < NE; i++)
        if (aster_cron_parse(exprs[i], &c[i], &err)) {
            fprintf(stderr, "error: %s: %s: %s\n", exprs[i], err.field, err.msg);
            return 1;
        }
    for (size_t z = 0; z < NZ; z++)
        if (aster_tz_get(zones[z], &tz[z], &err)) {
            fprintf(stderr, "error: %s: %s\n", err.field, err.msg);
            return 1;
        }
    aster_mono_us start = aster_mono_now(), now = start;
    while (now - start < (aster_mono_us)(budget * 1e6)) {
        for (size_t z = 0; z < NZ; z++)
            for (size_t i = 0; i < NE; i++) {
                int64_t t = t0;
                for (int k = 0; k < ITER && aster_cron_next(c[i], tz[z], pol, t0, t, &t); k++)
                    n++;
                sink += t;
            }
        now = aster_mono_now();
    }
    double secs = (double)(now - start) / 1e6;
    printf("aster: %.0f/s  (%lld computations in %.2f s, %zu expressions x %zu zones, "
           "checksum %lld)\n",
           (double)n / secs, (long long)n, secs, NE, NZ, (long long)(sink % 1000));
    for (size_t i = 0; i < NE; i++)
        aster_cron_free(c[i]);
    aster_tz_cache_free();
    return 0;
}
