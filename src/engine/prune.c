/* prune.c — the retention thread (see prune.h for what a run deletes).
 *
 * The thread sleeps on a condition variable (monotonic clock) for the
 * interval, so stop wakes it at once; between two batches it pauses
 * PRUNE_PAUSE_MS on the same variable.  run_mu serialises runs, so a test's
 * run_once and the thread never interleave their watermarks. */
#include "engine/prune.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "util/mem.h"

#define COMPONENT "prune"

#define DEFAULT_INTERVAL_MS 60000
#define DEFAULT_MAX_AGE_MS  (30LL * 86400 * 1000)
#define DEFAULT_PER_JOB     1000
/* Rows per transaction: a few milliseconds of writer time on SQLite, so a
 * tick's fires or a loop turn's results never wait long behind it. */
#define PRUNE_BATCH 500
/* Between batches the writer is left to others for a moment. */
#define PRUNE_PAUSE_MS 5
/* Jobs per page when visiting the jobs with new executions. */
#define JOB_PAGE 1000

struct aster_pruner {
    aster_pruner_opts o;
    pthread_t thread;
    bool started;

    pthread_mutex_t mu; /* guards stopping; cv waits on it */
    pthread_cond_t cv;
    bool stopping;

    pthread_mutex_t run_mu; /* one run at a time; guards the watermark */
    bool have_mark;
    char mark[ASTER_ID_LEN + 1]; /* executions up to this id were visited */
};

static void log_err(const aster_pruner *p, const char *what, const aster_err *err)
{
    const aster_kv kv[] = {ASTER_KV_STR("error", err->msg)};
    aster_log(p->o.log, ASTER_LOG_WARN, COMPONENT, what, kv, ASTER_NELEM(kv));
}

/* Waits `ms` or until stop; true when stopping. */
static bool nap(aster_pruner *p, int64_t ms)
{
    struct timespec ts;
    bool stop;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    while (!p->stopping && pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT)
        ;
    stop = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return stop;
}

static bool stopping(aster_pruner *p)
{
    bool stop;

    pthread_mutex_lock(&p->mu);
    stop = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return stop;
}

/* One kind of deletion, batch after batch until a short one. */
typedef int (*prune_fn)(aster_pruner *p, const void *arg, size_t *deleted, aster_err *err);

static int drain(aster_pruner *p, prune_fn fn, const void *arg, uint64_t *total, aster_err *err)
{
    for (;;) {
        size_t d = 0;
        int rc = fn(p, arg, &d, err);

        *total += d;
        if (rc)
            return rc;
        if (d < PRUNE_BATCH || nap(p, PRUNE_PAUSE_MS))
            return 0;
    }
}

static int alerts_before(aster_pruner *p, const void *arg, size_t *deleted, aster_err *err)
{
    return aster_store_prune_alerts_before(p->o.store, *(const aster_time_us *)arg, PRUNE_BATCH,
                                           deleted, err);
}

static int execs_before(aster_pruner *p, const void *arg, size_t *deleted, aster_err *err)
{
    return aster_store_prune_execs_before(p->o.store, *(const aster_time_us *)arg, PRUNE_BATCH,
                                          deleted, err);
}

static int execs_keep(aster_pruner *p, const void *arg, size_t *deleted, aster_err *err)
{
    return aster_store_prune_execs_keep(p->o.store, arg, p->o.per_job, PRUNE_BATCH, deleted, err);
}

/* Step 3 of prune.h: the jobs with executions newer than the watermark. */
static int per_job(aster_pruner *p, uint64_t *total, aster_err *err)
{
    char mark[ASTER_ID_LEN + 1], after[ASTER_ID_LEN + 1] = "";
    int rc = aster_store_exec_max_id(p->o.store, mark, err);

    /* Read before listing: what is created meanwhile is newer than the
     * mark, and visited next time. */
    if (rc)
        return rc;
    for (;;) {
        char *ids = NULL;
        size_t n = 0;

        rc = aster_store_exec_jobs_after(p->o.store, p->have_mark ? p->mark : NULL, after, JOB_PAGE,
                                         &ids, &n, err);
        for (size_t i = 0; !rc && i < n && !stopping(p); i++)
            rc = drain(p, execs_keep, ids + i * (ASTER_ID_LEN + 1), total, err);
        if (n)
            memcpy(after, ids + (n - 1) * (ASTER_ID_LEN + 1), sizeof(after));
        aster_free(ids);
        if (rc)
            return rc;
        if (n < JOB_PAGE || stopping(p))
            break;
    }
    if (!stopping(p)) {
        memcpy(p->mark, mark, sizeof(mark));
        p->have_mark = true;
    }
    return 0;
}

int aster_pruner_run_once(aster_pruner *p, uint64_t *pruned)
{
    aster_mono_us t0 = aster_mono_now();
    aster_time_us cutoff;
    uint64_t alerts = 0, execs = 0;
    aster_err err = {0};
    int rc;

    if (pruned)
        *pruned = 0;
    if (!p)
        return ASTER_EINVAL;
    pthread_mutex_lock(&p->run_mu);
    cutoff = aster_time_now() - p->o.max_age_ms * ASTER_US_PER_MS;
    rc = drain(p, alerts_before, &cutoff, &alerts, &err);
    if (!rc)
        rc = drain(p, execs_before, &cutoff, &execs, &err);
    if (!rc)
        rc = per_job(p, &execs, &err);
    pthread_mutex_unlock(&p->run_mu);
    if (rc)
        log_err(p, "cannot prune history", &err);
    aster_metrics_pruned(p->o.metrics, alerts + execs);
    if (alerts + execs) {
        const aster_kv kv[] = {ASTER_KV_INT("executions", execs), ASTER_KV_INT("alerts", alerts),
                               ASTER_KV_INT("ms", (aster_mono_now() - t0) / 1000)};
        aster_log(p->o.log, ASTER_LOG_INFO, COMPONENT, "history pruned", kv, ASTER_NELEM(kv));
    }
    if (pruned)
        *pruned = alerts + execs;
    return rc;
}

static void *run(void *arg)
{
    aster_pruner *p = arg;

    while (!nap(p, p->o.interval_ms))
        if (!p->o.active || p->o.active(p->o.active_arg))
            (void)aster_pruner_run_once(p, NULL); /* logged inside; next run tries again */
    return NULL;
}

static void pruner_free(aster_pruner *p)
{
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->run_mu);
    aster_free(p);
}

int aster_pruner_start(const aster_pruner_opts *o, aster_pruner **out, aster_err *err)
{
    pthread_condattr_t ca;
    aster_pruner *p;
    int rc;

    if (!o || !o->store || !out)
        return aster_err_set(err, ASTER_EINVAL, "pruner", "no store or handle given");
    if (o->interval_ms < 0 || o->max_age_ms < 0 || o->per_job < 0)
        return aster_err_set(err, ASTER_EINVAL, "pruner", "negative retention setting");
    p = aster_calloc(1, sizeof(*p));
    p->o = *o;
    if (p->o.interval_ms == 0)
        p->o.interval_ms = DEFAULT_INTERVAL_MS;
    if (p->o.max_age_ms == 0)
        p->o.max_age_ms = DEFAULT_MAX_AGE_MS;
    if (p->o.per_job == 0)
        p->o.per_job = DEFAULT_PER_JOB;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->run_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    if ((rc = pthread_create(&p->thread, NULL, run, p)) != 0) {
        pruner_free(p);
        return aster_err_set(err, ASTER_EIO, NULL, "cannot start the pruner thread: %s",
                             strerror(rc));
    }
    p->started = true;
    *out = p;
    return 0;
}

void aster_pruner_stop(aster_pruner *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->started)
        pthread_join(p->thread, NULL);
    pruner_free(p);
}
