/* engine.c — scheduler (timer heap, misfire, overlap) and dispatcher
 * (claim, run, retry, record).
 *
 * Who runs where: everything below runs on the engine's loop thread, except
 * aster_engine_start/stop (the starting thread), aster_engine_job_changed
 * (any thread: it only appends to the inbox under `inbox_lock` and wakes the
 * loop), aster_engine_in_flight (an atomic read) and flush_work (a thread of
 * libuv's pool: it reads the results it was handed, calls the store and
 * hands back what it claimed).
 *
 * Writes are batched: the fires of one tick go to the store in one
 * transaction; results and claims, each in their own, are written on
 * libuv's thread pool while the loop goes on (see flush_req), so the fsync
 * count grows with writes, not with executions.  Everything else stays on
 * the loop thread: the write owns its list of results until flush_after
 * takes it back. */
#include "engine/engine.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <uthash.h>
#include <uv.h>

#include "core/job_json.h"
#include "cron/cron.h"
#include "engine/alert.h"
#include "engine/run.h"
#include "util/mem.h"
#include "util/uuid.h"

/* Work bounds per step, so that one job with a long outage behind it can
 * neither stall the loop nor write without limit (issue: misfire). */
#define MISSED_RECORDS_MAX 1000    /* missed rows per job per outage */
#define RUN_ALL_MAX        100     /* catch-up runs for misfire=run_all */
#define ENUM_FIRES_MAX     2000000 /* fires counted when passing over */
#define FIRES_PER_TICK_MAX 1000    /* in-grace fires of one job per tick */
#define CLAIM_BATCH        1000
#define SAFETY_POLL_MS     1000  /* catches what no event announced */
#define STORE_RETRY_MS     1000  /* after a failed write, try again */
#define RESYNC_MS          60000 /* an elected leader reads every job again */

/* The scheduler's view of one active job. */
typedef struct sjob {
    char id[ASTER_ID_LEN + 1];
    aster_job job;
    aster_cron *cron;
    const aster_tz *tz;
    int64_t next;    /* next fire, Unix seconds; 0 = none */
    size_t heap_idx; /* SIZE_MAX when not in the heap */
    UT_hash_handle hh;
} sjob;

/* One attempt in flight. */
typedef struct inflight {
    char exec_id[ASTER_ID_LEN + 1];
    aster_exec ex; /* as claimed */
    aster_job job; /* the job's settings at claim time */
    uint64_t handle;
    struct aster_engine *e;
    UT_hash_handle hh;
} inflight;

/* Attempts in flight here, per job id: kept apart from sjob, which comes
 * and goes with pause, resume and delete while attempts run on (overlap). */
typedef struct runcount {
    char job_id[ASTER_ID_LEN + 1];
    int n;
    UT_hash_handle hh;
} runcount;

/* A job's settings as a worker last read them, for the attempts it starts
 * of jobs this process does not schedule.  Dropped when the job is
 * announced changed, and all at once when the cache is full. */
typedef struct cjob {
    char id[ASTER_ID_LEN + 1];
    aster_job job;
    UT_hash_handle hh;
} cjob;
#define JOB_CACHE_MAX 10000

/* A job taken out of the scheduler (paused or deleted), remembered for a
 * while so that a late notification of an older version cannot put it
 * back: notifications from two API threads may arrive out of order. */
typedef struct tomb {
    char id[ASTER_ID_LEN + 1];
    int64_t version; /* INT64_MAX: deleted */
    aster_mono_us at;
    UT_hash_handle hh;
} tomb;
#define TOMB_KEEP_US (60 * ASTER_US_PER_SEC)

/* A finished attempt waiting for the next flush. */
typedef struct result {
    aster_exec ex;
    aster_attempt at;
    struct result *next;
} result;

typedef struct inbox_item {
    char id[ASTER_ID_LEN + 1];
    bool has_job;
    aster_job job; /* when has_job: the job as stored */
    struct inbox_item *next;
} inbox_item;

struct aster_engine {
    aster_engine_opts o;
    char owner[96];
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;  /* next fire */
    uv_timer_t due;   /* next retry (not_before) */
    uv_timer_t poll;  /* safety net and lease extension */
    uv_check_t flush; /* batched result writes */
    uv_idle_t nudge;  /* keeps the loop from blocking while results wait */
    uv_timer_t grace; /* shutdown deadline */
    aster_runner *runner;
    pthread_t thread;

    sjob *jobs;   /* hash by id */
    cjob *jcache; /* hash by id: jobs read for attempts (workers) */
    sjob **heap;
    size_t heap_len, heap_cap;
    inflight *flying;  /* hash by exec id */
    runcount *running; /* hash by job id */
    tomb *tombs;       /* hash by job id */
    atomic_size_t n_flying;
    result *results, **results_tail;
    bool flushing;     /* a write (results, claim) is out on the thread pool */
    bool want_claim;   /* claim at the next write */
    size_t claim_out;  /* slots the claim out may fill; 0: none out */
    bool last_claimed; /* the last write was a claim */
    aster_mono_us last_extend;

    /* Coordination with other processes (shared stores). */
    bool shared;               /* the store is shared: count overlap there */
    atomic_int leading;        /* scheduling now (see aster_engine_is_leader) */
    int64_t token;             /* the term's fencing token, while leading */
    aster_mono_us lead_until;  /* the lease as far as we know it, locally */
    aster_mono_us last_renew;  /* last successful take or renewal */
    aster_mono_us last_hb;     /* last heartbeat written */
    aster_mono_us up_since;    /* the store has answered every poll since; 0: it failed */
    aster_store_listener *lis; /* NULL while down */
    uv_poll_t *lis_poll;       /* on lis's descriptor; freed on close */
    int64_t poll_ms;           /* the safety poll's period */
    bool need_resync;          /* the last read of the jobs failed: again at the next poll */
    aster_mono_us last_resync; /* the last read of every job */

    pthread_mutex_t inbox_lock;
    inbox_item *inbox, **inbox_tail; /* FIFO: changes apply in order */
    atomic_int stop_requested;
    int64_t grace_ms;
    int stopping; /* loop-side: no new work */
    int closing;  /* handles are being closed */
    int runner_done;
};

static void lg(aster_engine *e, aster_log_level lv, const char *msg, const aster_kv *kv, size_t n)
{
    aster_log(e->o.log, lv, "engine", msg, kv, n);
}

static void log_err(aster_engine *e, const char *what, const aster_err *err)
{
    const aster_kv kv[] = {ASTER_KV_STR("error", err->msg), ASTER_KV_STR("field", err->field)};
    lg(e, ASTER_LOG_ERROR, what, kv, ASTER_NELEM(kv));
}

/* How late `at` is for `scheduled`, in ms: an execution's drift. */
static int64_t lateness_ms(aster_time_us at, aster_time_us scheduled)
{
    return at > scheduled ? (at - scheduled) / ASTER_US_PER_MS : 0;
}

static int64_t floor_sec(aster_time_us t)
{
    return t / ASTER_US_PER_SEC - (t % ASTER_US_PER_SEC < 0);
}

static int running_get(aster_engine *e, const char *job_id)
{
    runcount *rc = NULL;
    HASH_FIND_STR(e->running, job_id, rc);
    return rc ? rc->n : 0;
}

static void running_add(aster_engine *e, const char *job_id, int d)
{
    runcount *rc = NULL;
    HASH_FIND_STR(e->running, job_id, rc);
    if (!rc) {
        if (d <= 0)
            return;
        rc = aster_calloc(1, sizeof(*rc));
        snprintf(rc->job_id, sizeof(rc->job_id), "%s", job_id);
        HASH_ADD_STR(e->running, job_id, rc);
    }
    rc->n += d;
    if (rc->n <= 0) {
        HASH_DEL(e->running, rc);
        aster_free(rc);
    }
}

static void tomb_set(aster_engine *e, const char *id, int64_t version)
{
    tomb *t = NULL;
    HASH_FIND_STR(e->tombs, id, t);
    if (!t) {
        t = aster_calloc(1, sizeof(*t));
        snprintf(t->id, sizeof(t->id), "%s", id);
        HASH_ADD_STR(e->tombs, id, t);
    }
    if (version > t->version)
        t->version = version;
    t->at = aster_mono_now();
}

static void tombs_expire(aster_engine *e, bool all)
{
    aster_mono_us now = aster_mono_now();
    for (tomb *t = e->tombs, *next; t; t = next) {
        next = t->hh.next;
        if (all || now - t->at > TOMB_KEEP_US) {
            HASH_DEL(e->tombs, t);
            aster_free(t);
        }
    }
}

/* Drops job `id` from the cache, or the whole cache when `id` is NULL. */
static void jcache_drop(aster_engine *e, const char *id)
{
    cjob *c = NULL;
    if (id)
        HASH_FIND_STR(e->jcache, id, c);
    for (cjob *x = id ? c : e->jcache, *next; x; x = next) {
        next = id ? NULL : x->hh.next;
        HASH_DEL(e->jcache, x);
        aster_job_fini(&x->job);
        aster_free(x);
    }
}

/* The settings of job `id` for an attempt: the scheduler's copy, else the
 * cache, else the store (then cached).  Fills *out (init'ed). */
static int job_for_attempt(aster_engine *e, const char *id, aster_job *out, aster_err *err)
{
    sjob *j = NULL;
    cjob *c = NULL;
    int rc;

    HASH_FIND_STR(e->jobs, id, j);
    if (!j)
        HASH_FIND_STR(e->jcache, id, c);
    if (j || c) {
        aster_job_copy(out, j ? &j->job : &c->job);
        return 0;
    }
    if ((rc = aster_store_job_get(e->o.store, id, out, err)))
        return rc;
    if (HASH_COUNT(e->jcache) >= JOB_CACHE_MAX)
        jcache_drop(e, NULL);
    c = aster_calloc(1, sizeof(*c));
    memcpy(c->id, out->id, sizeof(c->id));
    aster_job_init(&c->job);
    aster_job_copy(&c->job, out);
    HASH_ADD_STR(e->jcache, id, c);
    return 0;
}

/* ---- heap of next fires --------------------------------------------------- */

static int before(const sjob *a, const sjob *b)
{
    return a->next < b->next || (a->next == b->next && strcmp(a->id, b->id) < 0);
}

static void heap_swap(aster_engine *e, size_t i, size_t j)
{
    sjob *t = e->heap[i];
    e->heap[i] = e->heap[j];
    e->heap[j] = t;
    e->heap[i]->heap_idx = i;
    e->heap[j]->heap_idx = j;
}

static void heap_up(aster_engine *e, size_t i)
{
    while (i > 0 && before(e->heap[i], e->heap[(i - 1) / 2])) {
        heap_swap(e, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(aster_engine *e, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->heap_len && before(e->heap[l], e->heap[m]))
            m = l;
        if (r < e->heap_len && before(e->heap[r], e->heap[m]))
            m = r;
        if (m == i)
            return;
        heap_swap(e, i, m);
        i = m;
    }
}

static void heap_remove(aster_engine *e, sjob *j)
{
    size_t i = j->heap_idx;
    if (i == SIZE_MAX)
        return;
    e->heap_len--;
    if (i != e->heap_len) {
        e->heap[i] = e->heap[e->heap_len];
        e->heap[i]->heap_idx = i;
        heap_down(e, i);
        heap_up(e, i);
    }
    j->heap_idx = SIZE_MAX;
}

/* Puts `j` in the heap at j->next (or takes it out when there is none). */
static void heap_set(aster_engine *e, sjob *j)
{
    heap_remove(e, j);
    if (!j->next)
        return;
    if (e->heap_len == e->heap_cap) {
        e->heap_cap = e->heap_cap ? e->heap_cap * 2 : 64;
        e->heap = aster_realloc(e->heap, e->heap_cap * sizeof(*e->heap));
    }
    j->heap_idx = e->heap_len;
    e->heap[e->heap_len++] = j;
    heap_up(e, j->heap_idx);
}

/* ---- jobs ----------------------------------------------------------------- */

static void sjob_free(aster_engine *e, sjob *j)
{
    heap_remove(e, j);
    HASH_DEL(e->jobs, j);
    aster_cron_free(j->cron);
    aster_job_fini(&j->job);
    aster_free(j);
}

static int64_t cron_next(const sjob *j, int64_t after)
{
    aster_dst_policy pol = {(aster_dst_gap)j->job.dst_gap, (aster_dst_overlap)j->job.dst_overlap};
    int64_t next = 0;
    if (aster_cron_next(j->cron, j->tz, pol, floor_sec(j->job.created_at), after, &next) != 1)
        return 0;
    return next;
}

/* Cancels the attempts of `job_id` running here whose fire is older than
 * `before` (INT64_MAX: all of them). */
static void cancel_job_attempts(aster_engine *e, const char *job_id, aster_time_us before)
{
    /* Cancel never calls back from inside (run.h), so the table stays
     * as it is while we walk it. */
    for (inflight *f = e->flying; f; f = f->hh.next)
        if (!strcmp(f->ex.job_id, job_id) && f->ex.scheduled_at < before)
            aster_runner_cancel(e->runner, f->handle);
}

/* Takes `job` (the job as stored; the engine takes its strings) into the
 * scheduler, or out of it when paused.  `newest`: read from the store just
 * now, so no version check. */
static void job_apply(aster_engine *e, aster_job *job, bool newest)
{
    aster_err err = {0};
    sjob *j = NULL;

    if (!atomic_load(&e->leading))
        goto out; /* not scheduling here (a worker, or a standby) */
    HASH_FIND_STR(e->jobs, job->id, j);
    /* Notifications from two API threads may arrive out of order: never
     * go back to an older version of a job, scheduled or taken out. */
    if (!newest) {
        tomb *t = NULL;
        HASH_FIND_STR(e->tombs, job->id, t);
        if ((j && job->version < j->job.version) || (!j && t && job->version <= t->version))
            goto out;
    }
    if (job->paused) {
        tomb_set(e, job->id, job->version);
        if (j)
            sjob_free(e, j);
        goto out;
    }
    if (!j) {
        j = aster_calloc(1, sizeof(*j));
        memcpy(j->id, job->id, sizeof(j->id));
        j->heap_idx = SIZE_MAX;
        aster_job_init(&j->job);
        HASH_ADD_STR(e->jobs, id, j);
    }
    aster_cron_free(j->cron);
    j->cron = NULL;
    aster_job_fini(&j->job);
    j->job = *job;
    aster_job_init(job);
    if (aster_cron_parse(j->job.schedule, &j->cron, &err) ||
        aster_tz_get(j->job.timezone, &j->tz, &err)) {
        log_err(e, "job has an invalid schedule", &err);
        sjob_free(e, j);
        goto out;
    }
    /* The stored next_fire_at is authoritative: it is where the schedule
     * stood when this job was last written, so fires missed while Aster was
     * down are found from it (misfire handling). */
    j->next = j->job.next_fire_at ? floor_sec(j->job.next_fire_at)
                                  : cron_next(j, floor_sec(aster_time_now()));
    heap_set(e, j);
out:
    aster_job_fini(job);
}

/* Loads (or reloads) job `id` from the store into the scheduler. */
static void job_load(aster_engine *e, const char *id)
{
    aster_job job;
    aster_err err = {0};
    sjob *j = NULL;
    int rc;

    aster_job_init(&job);
    rc = aster_store_job_get(e->o.store, id, &job, &err);
    if (rc == ASTER_ENOENT) {
        /* Deleted: stop what runs (its rows are gone with it). */
        HASH_FIND_STR(e->jobs, id, j);
        cancel_job_attempts(e, id, INT64_MAX);
        tomb_set(e, id, INT64_MAX);
        if (j)
            sjob_free(e, j);
    } else if (rc) {
        log_err(e, "cannot load job", &err);
    } else {
        job_apply(e, &job, true);
    }
    aster_job_fini(&job);
}

/* ---- fires ---------------------------------------------------------------- */

typedef struct fire_batch {
    aster_exec *v;
    bool *written; /* per row of v, from the insert */
    size_t n, cap;
    struct {
        sjob *j;
        int64_t next;
        int64_t missed; /* rows recorded missed, for the alert */
        bool gone;      /* the job was deleted meanwhile */
        aster_time_us first_missed, last_missed;
    } * moves;
    size_t nmoves, capmoves;
    int64_t token;       /* fencing token, when elected */
    bool cancels_needed; /* overlap=replace of work running in other processes */
} fire_batch;

static aster_exec *fb_add(fire_batch *b, const sjob *j, int64_t at, aster_trigger trig,
                          aster_exec_status st, aster_time_us now)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->v = aster_realloc(b->v, b->cap * sizeof(*b->v));
        b->written = aster_realloc(b->written, b->cap * sizeof(*b->written));
    }
    aster_exec *ex = &b->v[b->n++];
    aster_exec_init(ex);
    aster_uuid7(ex->id);
    memcpy(ex->job_id, j->id, sizeof(ex->job_id));
    ex->scheduled_at = at * ASTER_US_PER_SEC;
    ex->trigger = trig;
    ex->status = st;
    ex->not_before = ex->scheduled_at;
    ex->created_at = now;
    if (st != ASTER_EXEC_PENDING)
        ex->finished_at = now;
    return ex;
}

/* Records where `j` moves to, and the fires it missed (for the alert). */
static void fb_move(fire_batch *b, sjob *j, int64_t next, int64_t missed, int64_t first_missed,
                    int64_t last_missed)
{
    if (b->nmoves == b->capmoves) {
        b->capmoves = b->capmoves ? b->capmoves * 2 : 64;
        b->moves = aster_realloc(b->moves, b->capmoves * sizeof(*b->moves));
    }
    b->moves[b->nmoves].j = j;
    b->moves[b->nmoves].next = next;
    b->moves[b->nmoves].gone = false;
    b->moves[b->nmoves].missed = missed;
    b->moves[b->nmoves].first_missed = first_missed * ASTER_US_PER_SEC;
    b->moves[b->nmoves].last_missed = last_missed * ASTER_US_PER_SEC;
    b->nmoves++;
}

static void fb_free(fire_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        aster_exec_fini(&b->v[i]);
    aster_free(b->v);
    aster_free(b->written);
    aster_free(b->moves);
}

/* A fire that is to run: the overlap policy decides. */
static void fire_run(aster_engine *e, fire_batch *b, sjob *j, int64_t at, aster_trigger trig,
                     aster_time_us now)
{
    int64_t running = running_get(e, j->id);
    if (e->shared && j->job.overlap != ASTER_OVERLAP_ALLOW) {
        /* Other processes run work too: ask the store.  When it cannot
         * answer, the fire runs (at least once beats a lost fire). */
        aster_err err = {0};
        if (aster_store_job_busy(e->o.store, j->id, &running, &err))
            log_err(e, "cannot count the job's running executions", &err);
    }
    if (running > 0 && j->job.overlap == ASTER_OVERLAP_FORBID) {
        aster_exec *ex = fb_add(b, j, at, trig, ASTER_EXEC_SKIPPED, now);
        ex->error = aster_strdup("skipped: the previous execution is still running "
                                 "(overlap=forbid)");
        return;
    }
    if (running > 0 && j->job.overlap == ASTER_OVERLAP_REPLACE) {
        cancel_job_attempts(e, j->id, INT64_MAX);
        if (e->shared)
            b->cancels_needed = true; /* the others' attempts: see write_fires */
    }
    fb_add(b, j, at, trig, ASTER_EXEC_PENDING, now);
}

/* Handles every fire of `j` due by `now`: in-grace fires run; fires beyond
 * the grace period are misfires, handled by the job's misfire policy. */
static void job_due(aster_engine *e, fire_batch *b, sjob *j, aster_time_us now)
{
    int64_t now_sec = floor_sec(now);
    int64_t t = j->next, last_missed = 0, prev_missed = 0, summary_at = 0;
    int64_t first_missed = 0;
    int64_t n_missed = 0, n_recorded = 0, n_catchup = 0;

    /* Misfires first, in order: they are older than any in-grace fire. */
    while (t && t <= now_sec && (now_sec - t) * 1000 > j->job.misfire_grace_ms &&
           n_missed < ENUM_FIRES_MAX) {
        if (!n_missed++)
            first_missed = t;
        if (j->job.misfire == ASTER_MISFIRE_RUN_ALL && n_catchup < RUN_ALL_MAX) {
            fire_run(e, b, j, t, ASTER_TRIGGER_CATCHUP, now);
            n_catchup++;
        } else if (n_recorded < MISSED_RECORDS_MAX) {
            /* For run_once the latest missed fire is replaced below. */
            aster_exec *ex = fb_add(b, j, t, ASTER_TRIGGER_SCHEDULE, ASTER_EXEC_MISSED, now);
            ex->error = aster_strdup("missed: later than the misfire grace period");
            n_recorded++;
        }
        prev_missed = last_missed;
        last_missed = t;
        t = cron_next(j, t);
    }
    if (n_missed >= ENUM_FIRES_MAX && t && (now_sec - t) * 1000 > j->job.misfire_grace_ms) {
        /* Counted enough: jump over the rest of the outage to the fires of
         * the last hour before the grace period, so that the latest missed
         * fire (run_once's catch-up) and the first in-grace one are found
         * without walking every fire in between. */
        int64_t lim = now_sec - j->job.misfire_grace_ms / 1000;
        int64_t s = cron_next(j, (lim - 3600 > t ? lim - 3600 : t) - 1);
        for (int k = 0; s && (now_sec - s) * 1000 > j->job.misfire_grace_ms && k < 4000; k++) {
            prev_missed = last_missed;
            last_missed = s;
            s = cron_next(j, s);
        }
        t = s && (now_sec - s) * 1000 <= j->job.misfire_grace_ms ? s : cron_next(j, lim - 1);
    }
    /* Then the in-grace fires: late, but on time enough to run. */
    for (int k = 0; t && t <= now_sec && k < FIRES_PER_TICK_MAX; k++) {
        fire_run(e, b, j, t, ASTER_TRIGGER_SCHEDULE, now);
        t = cron_next(j, t);
    }
    if (n_missed) {
        int64_t over = n_missed - n_recorded - n_catchup;
        /* run_once: the latest missed fire runs as a catch-up (even when
         * an in-grace fire runs too: the catch-up stands for the outage). */
        if (j->job.misfire == ASTER_MISFIRE_RUN_ONCE) {
            aster_exec *lastex = NULL;
            for (size_t i = b->n; i-- > 0;)
                if (!strcmp(b->v[i].job_id, j->id) && b->v[i].status == ASTER_EXEC_MISSED) {
                    lastex = &b->v[i];
                    break;
                }
            if (lastex && lastex->scheduled_at == last_missed * ASTER_US_PER_SEC) {
                aster_free(lastex->error);
                lastex->error = NULL;
                lastex->status = ASTER_EXEC_PENDING;
                lastex->trigger = ASTER_TRIGGER_CATCHUP;
                lastex->finished_at = 0;
            } else {
                /* The latest was past the record cap: run it, count it. */
                fire_run(e, b, j, last_missed, ASTER_TRIGGER_CATCHUP, now);
                over--;
                summary_at = prev_missed;
            }
        }
        if (over > 0) {
            char msg[160];
            /* One summary row for all fires passed over without a record.
             * Unrecorded fires are the newest ones, so it sits at the last
             * of them that has no row: the last missed fire, or the one
             * before it when run_once turned the last into a catch-up. */
            int64_t at = summary_at ? summary_at : last_missed;
            aster_exec *ex = fb_add(b, j, at, ASTER_TRIGGER_SCHEDULE, ASTER_EXEC_MISSED, now);
            snprintf(msg, sizeof(msg), "missed: %" PRId64 " fires passed over%s without a record",
                     over, n_missed >= ENUM_FIRES_MAX ? " (at least)" : "");
            ex->error = aster_strdup(msg);
        }
        const aster_kv kv[] = {ASTER_KV_STR("job_id", j->id), ASTER_KV_INT("missed", n_missed),
                               ASTER_KV_STR("misfire", aster_misfire_name(j->job.misfire))};
        lg(e, ASTER_LOG_WARN, "fires missed", kv, ASTER_NELEM(kv));
    }
    /* The alert counts fires missed, not rows: after a long outage most
     * missed fires have no row of their own. */
    fb_move(b, j, t, n_missed - n_catchup - (j->job.misfire == ASTER_MISFIRE_RUN_ONCE && n_missed),
            first_missed, last_missed);
}

static size_t free_slots(const aster_engine *e);

/* Fires this process can start at once are written claimed (running,
 * leased to it, started now), and start when the write commits: no claim
 * and no second write before they run.  The rest wait, pending, for a
 * claim as slots free. */
static void claim_fresh(aster_engine *e, fire_batch *b, aster_time_us now)
{
    size_t slots = free_slots(e);

    for (size_t i = 0; i < b->n && slots; i++) {
        aster_exec *ex = &b->v[i];
        if (ex->status != ASTER_EXEC_PENDING)
            continue;
        ex->status = ASTER_EXEC_RUNNING;
        ex->claimed_by = aster_strdup(e->owner);
        ex->lease_until = now + e->o.lease_ms * 1000;
        ex->started_at = now;
        ex->drift_ms = lateness_ms(now, ex->scheduled_at);
        slots--;
    }
}

static int write_fires(aster_store *st, void *arg, aster_err *err)
{
    fire_batch *b = arg;
    int rc = 0;
    if (b->token && (rc = aster_store_leader_fence(st, b->token, err)))
        return rc;
    if (b->n)
        rc = aster_store_exec_insert(st, b->v, b->n, b->written, err);
    if (rc == ASTER_ENOENT) {
        /* A job was deleted between its notification and this tick: the
         * failed call changed nothing (it ran in a savepoint); write row by
         * row and leave the deleted job's fires out. */
        aster_err_clear(err);
        rc = 0;
        for (size_t i = 0; !rc && i < b->n; i++) {
            rc = aster_store_exec_insert(st, &b->v[i], 1, &b->written[i], err);
            if (rc == ASTER_ENOENT) { /* not written: written[i] says so */
                aster_err_clear(err);
                rc = 0;
            }
        }
    }
    /* Workers elsewhere stop the replaced attempts when this commits: of
     * each replace job, those older than its first new fire. */
    for (size_t k = 0; !rc && b->cancels_needed && k < b->nmoves; k++) {
        const sjob *j = b->moves[k].j;
        aster_time_us first = INT64_MAX;
        if (j->job.overlap != ASTER_OVERLAP_REPLACE)
            continue;
        for (size_t i = 0; i < b->n; i++) /* fires that run: pending, or claimed here */
            if (b->written[i] && !aster_exec_status_is_final(b->v[i].status) &&
                b->v[i].scheduled_at < first && !strcmp(b->v[i].job_id, j->id))
                first = b->v[i].scheduled_at;
        if (first != INT64_MAX)
            rc = aster_store_announce_cancel(st, j->id, first, err);
    }
    for (size_t i = 0; !rc && i < b->nmoves; i++) {
        rc = aster_store_job_set_next(st, b->moves[i].j->id, b->moves[i].next * ASTER_US_PER_SEC,
                                      err);
        if (rc == ASTER_ENOENT) { /* deleted meanwhile */
            aster_err_clear(err);
            rc = 0;
            b->moves[i].gone = true;
        }
    }
    return rc;
}

static void dispatch(aster_engine *e);
static void start_claimed(aster_engine *e, aster_exec *execs, size_t n);
static void arm_tick(aster_engine *e);
static void lead_lose(aster_engine *e, const char *why);

static void on_tick(uv_timer_t *t)
{
    aster_engine *e = t->data;
    aster_time_us now = aster_time_now();
    int64_t now_sec = floor_sec(now);
    fire_batch b = {0};
    aster_err err = {0};

    if (e->stopping || !atomic_load(&e->leading))
        return;
    if (e->o.elect && aster_mono_now() >= e->lead_until) {
        /* The lease may have passed to another node: write nothing until
         * the next renewal says (the fence would refuse it anyway). */
        uv_timer_start(&e->tick, on_tick, STORE_RETRY_MS, 0);
        return;
    }
    b.token = e->o.elect ? e->token : 0;
    while (e->heap_len && e->heap[0]->next <= now_sec) {
        sjob *j = e->heap[0];
        heap_remove(e, j); /* re-added below, after the write */
        job_due(e, &b, j, now);
    }
    claim_fresh(e, &b, now);
    if (b.nmoves && aster_store_batch(e->o.store, write_fires, &b, &err)) {
        if (err.code == ASTER_ECONFLICT && e->o.elect) {
            fb_free(&b);
            lead_lose(e, "fenced: another node holds the leadership");
            return;
        }
        log_err(e, "cannot write fires; retrying", &err);
        /* Nothing was written: put the jobs back where they were. */
        for (size_t i = 0; i < b.nmoves; i++)
            heap_set(e, b.moves[i].j);
        fb_free(&b);
        uv_timer_start(&e->tick, on_tick, STORE_RETRY_MS, 0);
        return;
    }
    for (size_t i = 0; i < b.nmoves; i++) {
        if (b.moves[i].gone) {
            sjob_free(e, b.moves[i].j);
            continue;
        }
        b.moves[i].j->next = b.moves[i].next;
        heap_set(e, b.moves[i].j);
        if (b.moves[i].missed && e->o.alerter)
            aster_alerter_on_missed(e->o.alerter, &b.moves[i].j->job, b.moves[i].missed,
                                    b.moves[i].first_missed, b.moves[i].last_missed);
    }
    for (size_t i = 0; i < b.n; i++) {
        if (!b.written[i])
            continue; /* its job is gone, or the fire was written before */
        if (b.v[i].status == ASTER_EXEC_RUNNING)
            start_claimed(e, &b.v[i], 1);
        else if (aster_exec_status_is_final(b.v[i].status))
            aster_metrics_exec_final(e->o.metrics, b.v[i].status, -1, -1);
    }
    fb_free(&b);
    arm_tick(e);
    dispatch(e);
}

static void arm_tick(aster_engine *e)
{
    if (e->stopping || !atomic_load(&e->leading))
        return;
    if (!e->heap_len) {
        uv_timer_stop(&e->tick);
        return;
    }
    /* Wake at the fire's second, rounded up to the millisecond so that the
     * tick never runs just before it. */
    int64_t delay_us = e->heap[0]->next * ASTER_US_PER_SEC - aster_time_now();
    /* Never 0 ms: a timer re-armed at 0 from its own callback keeps libuv
     * (before 1.48) from polling I/O, and a job left due by
     * FIRES_PER_TICK_MAX would do just that. */
    uint64_t ms = delay_us <= 1000 ? 1 : (uint64_t)((delay_us + 999) / 1000);
    uv_timer_start(&e->tick, on_tick, ms, 0);
}

/* ---- attempts ------------------------------------------------------------- */

static int64_t backoff_ms(const aster_job *job, int32_t attempt)
{
    /* attempt n+1 waits base * 2^(n-1), capped, with +-20% jitter. */
    int64_t d = job->retry_backoff_ms;
    for (int32_t i = 1; i < attempt && d < job->retry_backoff_max_ms; i++)
        d *= 2;
    if (d > job->retry_backoff_max_ms)
        d = job->retry_backoff_max_ms;
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = (uint32_t)aster_mono_now();
    double jitter = 0.8 + 0.4 * ((double)r / 4294967295.0);
    int64_t out = (int64_t)((double)d * jitter);
    return out < 1 ? 1 : out;
}

/* An active idle handle makes the loop's poll return at once; the check
 * phase that follows (check_drained) stops it.  It must not stop itself:
 * started from a timer, it runs in the same turn's idle phase, before the
 * poll, and the poll would then block until the next event. */
static void on_nudge(uv_idle_t *h)
{
    (void)h;
}

static void on_result(void *arg, const aster_run_result *res)
{
    inflight *f = arg;
    aster_engine *e = f->e;
    aster_time_us now = aster_time_now();
    result *r;

    HASH_DEL(e->flying, f);
    atomic_fetch_sub(&e->n_flying, 1);
    running_add(e, f->ex.job_id, -1);
    if (e->closing)
        goto out; /* hard stop: the row stays running, recovered at start */

    r = aster_calloc(1, sizeof(*r));
    aster_exec_copy(&r->ex, &f->ex);
    memcpy(r->at.execution_id, f->ex.id, sizeof(r->at.execution_id));
    r->at.attempt = f->ex.attempt;
    r->at.status = res->status;
    r->at.started_at = res->started_at ? res->started_at : f->ex.started_at;
    r->at.finished_at = res->finished_at ? res->finished_at : now;
    r->at.duration_ms = (r->at.finished_at - r->at.started_at) / 1000;
    r->at.http_status = res->http_status;
    r->at.exit_code = res->exit_code;
    r->at.error = aster_strdup(res->error);

    aster_exec *ex = &r->ex;
    int failed = res->status == ASTER_EXEC_FAILED || res->status == ASTER_EXEC_TIMED_OUT;
    if (failed && f->job.delivery == ASTER_DELIVERY_ATLEAST_ONCE &&
        ex->attempt <= f->job.max_retries) {
        ex->status = ASTER_EXEC_PENDING;
        ex->not_before = now + backoff_ms(&f->job, ex->attempt) * ASTER_US_PER_MS;
        ex->attempt++;
        aster_free(ex->claimed_by);
        ex->claimed_by = NULL;
        ex->lease_until = 0;
    } else {
        ex->status = res->status;
        ex->finished_at = r->at.finished_at;
        ex->duration_ms = r->at.duration_ms;
        aster_free(ex->claimed_by);
        ex->claimed_by = NULL;
        ex->lease_until = 0;
    }
    ex->started_at = r->at.started_at;
    /* Drift is the first attempt's real start, by the runner's clock: the
     * claim's clock runs ahead of it by the commit that precedes the start
     * (a whole tick's write for fires claimed in it). */
    if (r->at.attempt == 1)
        ex->drift_ms = lateness_ms(r->at.started_at, ex->scheduled_at);
    ex->http_status = res->http_status;
    ex->exit_code = res->exit_code;
    aster_free(ex->error);
    ex->error = aster_strdup(res->error);
    aster_free(ex->output);
    if (res->output_dropped) {
        size_t n = strlen(res->output) + 96;
        ex->output = aster_malloc(n);
        snprintf(ex->output, n, "%s\n[aster: %zu more bytes dropped]", res->output,
                 res->output_dropped);
    } else {
        ex->output = aster_strdup(res->output);
    }
    {
        const aster_kv kv[] = {ASTER_KV_STR("job_id", ex->job_id),
                               ASTER_KV_STR("execution_id", ex->id),
                               ASTER_KV_INT("attempt", r->at.attempt),
                               ASTER_KV_STR("status", aster_exec_status_name(res->status)),
                               ASTER_KV_INT("drift_ms", ex->drift_ms),
                               ASTER_KV_INT("duration_ms", r->at.duration_ms),
                               ASTER_KV_STR("error", res->error ? res->error : "")};
        lg(e, failed ? ASTER_LOG_WARN : ASTER_LOG_INFO, "execution finished", kv, ASTER_NELEM(kv));
    }
    *e->results_tail = r;
    e->results_tail = &r->next;
    e->want_claim = !e->stopping && e->o.work; /* a slot is free */
    /* A result may arrive after this turn's check phase (the runner calls
     * back from its own handles); an active idle handle makes the next
     * poll return at once, so the flush runs now, not at the next event. */
    uv_idle_start(&e->nudge, on_nudge);
out:
    aster_exec_fini(&f->ex);
    aster_job_fini(&f->job);
    aster_free(f);
}

static int write_results(aster_store *st, void *arg, aster_err *err)
{
    size_t n = 0, i = 0;
    int rc;

    for (result *r = arg; r; r = r->next)
        n++;
    /* Shallow copies: the list keeps ownership. */
    aster_exec *ex = aster_malloc(n * sizeof(*ex));
    aster_attempt *at = aster_malloc(n * sizeof(*at));
    for (result *r = arg; r; r = r->next, i++) {
        ex[i] = r->ex;
        at[i] = r->at;
    }
    rc = aster_store_exec_finish(st, ex, at, n, err);
    aster_free(ex);
    aster_free(at);
    return rc;
}

static void arm_due(aster_engine *e);

/* After the commit of `list`: alerts and metrics of what ended; frees it. */
static void results_done(aster_engine *e, result *list)
{
    result *next;

    for (; list; list = next) {
        next = list->next;
        if (aster_exec_status_is_final(list->ex.status) && e->o.alerter) {
            /* After the commit: the alerter counts failure streaks from the
             * store.  A job no longer scheduled here (paused, deleted) is
             * left to the alerter's own scan. */
            sjob *j = NULL;
            cjob *cj = NULL;
            HASH_FIND_STR(e->jobs, list->ex.job_id, j);
            if (!j)
                HASH_FIND_STR(e->jcache, list->ex.job_id, cj);
            if (j || cj)
                aster_alerter_on_final(e->o.alerter, j ? &j->job : &cj->job, &list->ex);
        }
        if (aster_exec_status_is_final(list->ex.status))
            aster_metrics_exec_final(
                e->o.metrics, list->ex.status,
                list->ex.drift_ms >= 0 ? (double)list->ex.drift_ms / 1000.0 : -1,
                list->ex.duration_ms >= 0 ? (double)list->ex.duration_ms / 1000.0 : -1);
        aster_exec_fini(&list->ex);
        aster_free(list->at.error);
        aster_free(list);
    }
}

/* Results and claims are written on libuv's thread pool, one write at a
 * time, while the loop goes on running attempts.  On the loop, every commit
 * stopped it for a round trip and a WAL flush (on PostgreSQL a third of a
 * worker's time), and a claim waited there for the results write ahead of
 * it.  A write is either a claim of what the free slots can take or the
 * results in hand (see on_flush for the order); what finishes meanwhile
 * waits for the next write. */
typedef struct flush_req {
    uv_work_t w;
    aster_engine *e;
    result *list; /* to record; may be NULL */
    size_t want;  /* executions to claim; 0: none */
    int rc, claim_rc;
    aster_err err, claim_err;
    aster_exec *claimed;
    size_t nclaimed;
} flush_req;

/* Slots neither running nor promised to the claim out. */
static size_t free_slots(const aster_engine *e)
{
    size_t taken = atomic_load(&e->n_flying) + e->claim_out;

    if (e->stopping || e->closing || !e->o.work)
        return 0;
    return e->o.concurrency > taken ? e->o.concurrency - taken : 0;
}

/* How many executions a claim may take now. */
static size_t claim_slots(const aster_engine *e)
{
    size_t slots = free_slots(e);
    return slots > CLAIM_BATCH ? CLAIM_BATCH : slots;
}

/* Runs on a pool thread (or on the loop when closing): touches only the
 * store and what never changes after start. */
static void flush_write(aster_engine *e, flush_req *f)
{
    if (f->list)
        f->rc = aster_store_batch(e->o.store, write_results, f->list, &f->err);
    if (f->want) {
        aster_time_us now = aster_time_now();
        f->claim_rc = aster_store_exec_claim(e->o.store, e->owner, now, now + e->o.lease_ms * 1000,
                                             f->want, &f->claimed, &f->nclaimed, &f->claim_err);
    }
}

static void flush_work(uv_work_t *w)
{
    flush_req *f = w->data;
    flush_write(f->e, f);
}

/* Gives a claimed execution back to the queue: it did not start here, so
 * the claim's start (and, for a first attempt, its drift) is undone. */
static void release(aster_engine *e, aster_exec *ex, const char *why)
{
    aster_err err = {0};

    ex->status = ASTER_EXEC_PENDING;
    aster_free(ex->claimed_by);
    ex->claimed_by = NULL;
    ex->lease_until = 0;
    ex->started_at = 0;
    if (ex->attempt <= 1)
        ex->drift_ms = -1;
    if (aster_store_exec_update(e->o.store, ex, &err))
        log_err(e, why, &err);
}

/* Hands claimed executions to the runner, or back to the queue when the
 * engine is stopping (it must not leave them running: a lease recovered
 * at the next start would count them as started). */
static void start_claimed(aster_engine *e, aster_exec *execs, size_t n)
{
    aster_err err = {0};

    for (size_t i = 0; i < n; i++) {
        aster_exec *ex = &execs[i];
        if (e->stopping || e->closing) {
            release(e, ex, "cannot give back an execution claimed while stopping");
            continue;
        }
        inflight *f = aster_calloc(1, sizeof(*f));
        aster_job_init(&f->job);
        if (job_for_attempt(e, ex->job_id, &f->job, &err)) {
            /* A job paused or not yet seen here is read from the store
             * (a manual trigger of a paused job).  When that fails for
             * another reason than deletion (whose rows are gone with the
             * job), the claim is given back: our leases would otherwise
             * keep the row running forever. */
            if (err.code != ASTER_ENOENT) {
                log_err(e, "cannot read the job of a claimed execution; released", &err);
                release(e, ex, "cannot release a claimed execution");
            }
            aster_err_clear(&err);
            aster_job_fini(&f->job);
            aster_free(f);
            continue;
        }
        f->e = e;
        aster_exec_copy(&f->ex, ex);
        memcpy(f->exec_id, ex->id, sizeof(f->exec_id));
        HASH_ADD_STR(e->flying, exec_id, f);
        atomic_fetch_add(&e->n_flying, 1);
        running_add(e, ex->job_id, 1);
        /* One fire, one key: every attempt of it sends the same. */
        aster_run_req req = {.exec_id = ex->id,
                             .job_id = ex->job_id,
                             .kind = f->job.target_kind,
                             .target = f->job.target,
                             .scheduled_at = ex->scheduled_at,
                             .attempt = ex->attempt,
                             .timeout_ms = f->job.timeout_ms,
                             .idempotency_key = ex->id};
        const aster_kv kv[] = {
            ASTER_KV_STR("job_id", ex->job_id), ASTER_KV_STR("execution_id", ex->id),
            ASTER_KV_INT("attempt", ex->attempt), ASTER_KV_STR("status", "running"),
            ASTER_KV_INT("drift_ms", ex->drift_ms)};
        lg(e, ASTER_LOG_INFO, "execution started", kv, ASTER_NELEM(kv));
        f->handle = aster_runner_submit(e->runner, &req, on_result, f);
    }
}

static void on_flush(uv_check_t *c);

/* Back on the loop after a write: alerts and metrics of what was
 * recorded, the claimed executions started, and the next write asked for
 * when there is more.  `sync`: the write ran on the loop. */
static void flush_done(aster_engine *e, flush_req *f, bool sync)
{
    bool failed = f->rc || f->claim_rc;

    e->claim_out = 0;
    if (f->rc) {
        /* Keep them, first in line, for a later turn; the leases keep the
         * rows ours meanwhile. */
        result **tail = &f->list;
        log_err(e,
                e->closing ? "cannot record results; the next start takes their executions back"
                           : "cannot record results; retrying",
                &f->err);
        while (*tail)
            tail = &(*tail)->next;
        *tail = e->results;
        if (!e->results)
            e->results_tail = tail;
        e->results = f->list;
    } else {
        results_done(e, f->list);
    }
    if (f->claim_rc)
        log_err(e, "cannot claim executions", &f->claim_err);
    start_claimed(e, f->claimed, f->nclaimed);
    /* A full claim may have left more behind (a claim asked for meanwhile
     * stands as well). */
    if (!f->claim_rc && f->want && f->nclaimed == f->want)
        e->want_claim = true;
    aster_store_free_execs(f->claimed, f->nclaimed);
    aster_free(f);
    if (e->closing) {
        if (!sync)
            on_flush(&e->flush); /* what came meanwhile, written now */
        return;
    }
    arm_due(e);
    /* More to write or to claim: the next turn, without waiting for an
     * event.  After a failure, not at once: the next event or poll. */
    if (!failed && (e->results || e->want_claim))
        uv_idle_start(&e->nudge, on_nudge);
}

static void flush_after(uv_work_t *w, int status)
{
    flush_req *f = w->data;
    aster_engine *e = f->e;

    (void)status; /* never cancelled */
    e->flushing = false;
    flush_done(e, f, false);
}

/* Each turn: starts the next write when there is something to record or
 * to claim and no write is out. */
static void on_flush(uv_check_t *c)
{
    aster_engine *e = c->data;
    size_t want = claim_slots(e);
    result *list = NULL;

    if (e->flushing)
        return;
    if (!want)
        e->want_claim = false; /* a result frees a slot and asks again */
    /* A claim goes first: it starts work, results only record it.  But
     * not twice in a row while results wait: each write takes all results
     * in hand, so that they never pile up. */
    bool claim = e->want_claim && !(e->last_claimed && e->results);
    if (!claim && !e->results)
        return;
    if (!claim) {
        list = e->results;
        e->results = NULL;
        e->results_tail = &e->results;
    }
    flush_req *f = aster_calloc(1, sizeof(*f));
    f->w.data = f;
    f->e = e;
    f->list = list;
    f->want = claim ? want : 0;
    e->last_claimed = claim;
    if (claim) {
        e->want_claim = false;
        e->claim_out = want;
    }
    if (!e->closing) {
        e->flushing = true;
        if (!uv_queue_work(&e->loop, &f->w, flush_work, flush_after))
            return;
        e->flushing = false;
    }
    /* Closing (the loop is ending), or no thread to write on: here. */
    flush_write(e, f);
    flush_done(e, f, true);
}

/* Asks for a claim of what is due: it runs with the next write, as far as
 * slots allow. */
static void dispatch(aster_engine *e)
{
    if (e->stopping || e->closing || !e->o.work)
        return;
    e->want_claim = true;
    uv_idle_start(&e->nudge, on_nudge); /* this turn's check phase, not the next event */
}

static void on_due(uv_timer_t *t)
{
    aster_engine *e = t->data;
    dispatch(e);
    arm_due(e);
}

/* Wakes the dispatcher when the earliest waiting retry becomes due. */
static void arm_due(aster_engine *e)
{
    aster_time_us next = 0;
    aster_err err = {0};

    /* With every slot taken, the next result calls dispatch: a timer now
     * would only spin (and a 0 ms timer re-armed from its own callback
     * starves libuv < 1.48 of I/O: the loop would never read a result). */
    if (e->stopping || !e->o.work || atomic_load(&e->n_flying) >= e->o.concurrency)
        return;
    if (e->want_claim || e->claim_out)
        return; /* the claim's end arms it */
    if (aster_store_exec_next_due(e->o.store, &next, &err) || !next)
        return;
    int64_t delay = (next - aster_time_now() + 999) / 1000;
    if (delay < 1)
        delay = 1; /* never 0: let the loop poll I/O between claims */
    if (delay > e->poll_ms)
        return; /* the safety poll will see to it */
    uv_timer_start(&e->due, on_due, (uint64_t)delay, 0);
}

/* ---- coordination: leadership, heartbeats, notifications ----------------- */

static int load_all(aster_engine *e, aster_err *err);

static void jobs_clear(aster_engine *e)
{
    while (e->jobs)
        sjob_free(e, e->jobs);
    uv_timer_stop(&e->tick);
}

/* Reads every active job again: at the start of a term, and after
 * notifications may have been lost.  Store-side next_fire_at is where the
 * schedule stood at the last write of fires, by whichever leader. */
static void jobs_resync(aster_engine *e)
{
    aster_err err = {0};

    jobs_clear(e);
    e->need_resync = false;
    e->last_resync = aster_mono_now();
    if (load_all(e, &err)) {
        log_err(e, "cannot load the jobs; retrying", &err);
        jobs_clear(e);
        e->need_resync = true;
        return;
    }
    arm_tick(e);
}

static void lead_log(aster_engine *e, aster_log_level lv, const char *msg, const char *why)
{
    const aster_kv kv[] = {ASTER_KV_INT("fencing_token", e->token), ASTER_KV_STR("node", e->owner),
                           ASTER_KV_STR("reason", why)};
    aster_log(e->o.log, lv, "scheduler", msg, kv, why ? 3 : 2);
}

static void lead_lose(aster_engine *e, const char *why)
{
    if (!atomic_load(&e->leading))
        return;
    atomic_store(&e->leading, 0);
    jobs_clear(e);
    aster_metrics_set_leader(e->o.metrics, 0);
    lead_log(e, ASTER_LOG_WARN, "leadership lost", why);
}

static void lead_gain(aster_engine *e, int64_t token)
{
    e->token = token;
    atomic_store(&e->leading, 1);
    aster_metrics_set_leader(e->o.metrics, 1);
    lead_log(e, ASTER_LOG_INFO, "leadership gained", NULL);
    jobs_resync(e);
}

/* Takes or renews the leadership: standbys try at every poll, the leader
 * renews every third of its lease.  A leader that cannot renew steps down
 * when its lease runs out by its own clock, before anyone may take it. */
static void lead_step(aster_engine *e)
{
    aster_mono_us mono = aster_mono_now();
    aster_time_us now = aster_time_now();
    aster_err err = {0};
    int64_t token = 0;
    bool leading = atomic_load(&e->leading);

    if (!e->o.schedule || !e->o.elect || e->stopping)
        return;
    if (leading && mono >= e->lead_until)
        lead_lose(e, "lease ran out before it could be renewed");
    else if (leading && mono - e->last_renew < e->o.leader_lease_ms * 1000 / 3)
        return;
    if (aster_store_leader_acquire(e->o.store, e->owner, now, now + e->o.leader_lease_ms * 1000,
                                   &token, &err)) {
        if (leading)
            log_err(e, "cannot renew the leadership", &err);
        return;
    }
    if (!token) {
        lead_lose(e, "another node holds the leadership");
        return;
    }
    e->last_renew = mono;
    e->lead_until = mono + e->o.leader_lease_ms * 1000;
    if (atomic_load(&e->leading) && token != e->token)
        lead_lose(e, "the term ended");
    if (!atomic_load(&e->leading))
        lead_gain(e, token);
}

static void heartbeat(aster_engine *e)
{
    aster_err err = {0};

    /* Half a poll early rather than a poll late: the poll that comes just
     * before the interval is up beats. */
    if (!e->shared || !e->o.work ||
        aster_mono_now() - e->last_hb < (e->o.heartbeat_ms - e->poll_ms / 2) * 1000)
        return;
    if (aster_store_node_heartbeat(e->o.store, e->owner, e->o.role, aster_time_now(), &err))
        log_err(e, "cannot record the heartbeat", &err);
    else
        e->last_hb = aster_mono_now();
}

typedef struct lis_events {
    aster_engine *e;
    bool execs;
} lis_events;

static void on_store_event(void *arg, aster_store_event ev, const char *job_id, aster_time_us at)
{
    lis_events *x = arg;
    aster_engine *e = x->e;

    if (ev == ASTER_STORE_EV_EXEC) {
        x->execs = true;
    } else if (ev == ASTER_STORE_EV_CANCEL) {
        cancel_job_attempts(e, job_id, at);
    } else if (job_id && *job_id) {
        jcache_drop(e, job_id);
        if (!atomic_load(&e->leading) && running_get(e, job_id) == 0)
            return;
        /* The scheduler takes every change; a worker only needs to hear
         * of deletions of jobs it runs (job_load stops their attempts). */
        job_load(e, job_id);
    }
}

static void lis_close(aster_engine *e);

static void on_lis_readable(uv_poll_t *h, int status, int events)
{
    aster_engine *e = h->data;
    lis_events x = {.e = e};
    aster_err err = {0};

    (void)events;
    if (status < 0 || aster_store_listener_read(e->lis, on_store_event, &x, &err)) {
        log_err(e, "lost the notification connection; listening again shortly", &err);
        lis_close(e);
        return;
    }
    if (x.execs && !e->stopping) {
        dispatch(e);
        arm_due(e);
    }
    if (atomic_load(&e->leading))
        arm_tick(e);
}

static void on_poll_closed(uv_handle_t *h)
{
    aster_free(h);
}

static void lis_close(aster_engine *e)
{
    if (e->lis_poll) {
        uv_close((uv_handle_t *)e->lis_poll, on_poll_closed);
        e->lis_poll = NULL;
    }
    aster_store_listener_close(e->lis);
    e->lis = NULL;
}

/* Opens the listener when the store has one and it is down.  What was
 * announced while it was down is caught up: the scheduler reads its jobs
 * again, the worker looks for pending work. */
static void lis_open(aster_engine *e)
{
    aster_err err = {0};

    if (e->lis || e->stopping || !(aster_store_caps(e->o.store) & ASTER_STORE_CAP_NOTIFY))
        return;
    if (aster_store_listen(e->o.store, &e->lis, &err)) {
        log_err(e, "cannot listen for changes; the safety poll stands in", &err);
        return;
    }
    e->lis_poll = aster_calloc(1, sizeof(*e->lis_poll));
    if (uv_poll_init(&e->loop, e->lis_poll, aster_store_listener_fd(e->lis))) {
        aster_free(e->lis_poll);
        e->lis_poll = NULL;
        aster_store_listener_close(e->lis);
        e->lis = NULL;
        return;
    }
    e->lis_poll->data = e;
    uv_poll_start(e->lis_poll, UV_READABLE, on_lis_readable);
    if (atomic_load(&e->leading) && e->o.elect)
        jobs_resync(e);
}

/* ---- safety net, leases, inbox, shutdown ---------------------------------- */

static void on_poll(uv_timer_t *t)
{
    aster_engine *e = t->data;
    aster_err err = {0};
    aster_time_us now = aster_time_now();

    if (e->stopping)
        return;
    tombs_expire(e, false);
    lead_step(e);
    /* Announcements are hints (a process may die between a job's commit
     * and its announcement): the leader also reads every job again now and
     * then. */
    if (atomic_load(&e->leading) && e->o.elect &&
        (e->need_resync || aster_mono_now() - e->last_resync >= RESYNC_MS * 1000))
        jobs_resync(e);
    heartbeat(e);
    lis_open(e);
    if (e->o.work && aster_mono_now() - e->last_extend >= e->o.lease_ms * 1000 / 3) {
        if (aster_store_exec_extend(e->o.store, e->owner, now + e->o.lease_ms * 1000, &err))
            log_err(e, "cannot extend leases", &err);
        else
            e->last_extend = aster_mono_now(); /* else again at the next poll */
    }
    size_t retried = 0, failed = 0;
    bool ok = !err.code;
    aster_err_clear(&err);
    /* Another node's work is taken back when its lease ran out, or as
     * soon as the node has been silent for dead_ms.  On a shared store,
     * only after this process has reached the database for that long
     * itself: after an outage every node's heartbeat and lease look stale
     * until the nodes have had their chance to renew them. */
    aster_mono_us mono = aster_mono_now();
    /* Owners extend their leases at their first poll that reaches the
     * store (a failed extension is tried again at the next), and beat
     * within heartbeat_ms < dead_ms. */
    int64_t settle = e->o.dead_ms + e->poll_ms;
    bool may_reclaim = !e->shared || (e->up_since && mono - e->up_since >= settle * 1000);
    aster_time_us dead_before = e->shared ? now - e->o.dead_ms * 1000 : 0;
    if (may_reclaim && aster_store_exec_reclaim(e->o.store, e->owner, now, dead_before, now,
                                                &retried, &failed, &err)) {
        log_err(e, "cannot reclaim expired leases", &err);
        ok = false;
    } else if (retried || failed) {
        for (size_t i = 0; i < failed; i++)
            aster_metrics_exec_final(e->o.metrics, ASTER_EXEC_FAILED, -1, -1);
        const aster_kv kv[] = {ASTER_KV_INT("retried", (int64_t)retried),
                               ASTER_KV_INT("failed", (int64_t)failed)};
        lg(e, ASTER_LOG_WARN, "expired leases taken back", kv, ASTER_NELEM(kv));
    }
    if (ok && !may_reclaim) {
        /* Without a reclaim this poll has not touched the store yet. */
        int64_t depth = 0;
        ok = !aster_store_exec_next_due(e->o.store, &depth, &err);
    }
    if (!ok)
        e->up_since = 0;
    else if (!e->up_since)
        e->up_since = mono;
    dispatch(e);
    arm_due(e);
}

static void close_all(aster_engine *e);

static void on_grace(uv_timer_t *t)
{
    close_all(t->data);
}

static void on_wake(uv_async_t *a)
{
    aster_engine *e = a->data;
    inbox_item *items;
    bool claim = false;

    pthread_mutex_lock(&e->inbox_lock);
    items = e->inbox;
    e->inbox = NULL;
    e->inbox_tail = &e->inbox;
    pthread_mutex_unlock(&e->inbox_lock);
    for (inbox_item *it = items, *next; it; it = next) {
        next = it->next;
        jcache_drop(e, it->id);
        if (e->stopping)
            aster_job_fini(&it->job);
        else if (it->has_job)
            job_apply(e, &it->job, false);
        else
            job_load(e, it->id);
        /* A trigger (an item without the job) made work to claim; a job
         * created or changed did not, and claiming is a write that every
         * POST /jobs would otherwise pay for. */
        claim |= !it->has_job;
        aster_free(it);
    }
    if (atomic_load(&e->stop_requested) && !e->stopping) {
        e->stopping = 1;
        uv_timer_stop(&e->tick);
        uv_timer_stop(&e->due);
        uv_timer_stop(&e->poll);
        if (atomic_load(&e->n_flying) == 0)
            close_all(e);
        else
            uv_timer_start(&e->grace, on_grace, (uint64_t)e->grace_ms, 0);
        return;
    }
    if (!e->stopping) {
        arm_tick(e);
        if (claim)
            dispatch(e);
    }
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

static void close_all(aster_engine *e)
{
    if (e->closing)
        return;
    e->closing = 1;
    /* Results already in hand are recorded; attempts still running are
     * cancelled without a record and recovered at the next start. */
    on_flush(&e->flush);
    aster_runner_free(e->runner, &e->runner_done);
    e->runner = NULL;
    uv_close((uv_handle_t *)&e->wake, on_closed);
    uv_close((uv_handle_t *)&e->tick, on_closed);
    uv_close((uv_handle_t *)&e->due, on_closed);
    uv_close((uv_handle_t *)&e->poll, on_closed);
    uv_close((uv_handle_t *)&e->flush, on_closed);
    uv_close((uv_handle_t *)&e->nudge, on_closed);
    uv_close((uv_handle_t *)&e->grace, on_closed);
    lis_close(e);
}

/* After each result: a graceful stop ends when the last attempt is done. */
static void check_drained(uv_check_t *c)
{
    aster_engine *e = c->data;
    uv_idle_stop(&e->nudge);
    on_flush(c);
    if (e->stopping && !e->closing && atomic_load(&e->n_flying) == 0)
        close_all(e);
}

static void *loop_main(void *arg)
{
    aster_engine *e = arg;
    uv_run(&e->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int load_all(aster_engine *e, aster_err *err)
{
    char cursor[ASTER_ID_LEN + 1] = "";
    for (;;) {
        aster_job_filter f = {
            .paused = 0, .after_id = cursor[0] ? cursor : NULL, .limit = ASTER_STORE_MAX_PAGE};
        aster_job *jobs = NULL;
        size_t n = 0;
        int rc = aster_store_job_list(e->o.store, &f, &jobs, &n, err);
        if (rc)
            return rc;
        if (n)
            memcpy(cursor, jobs[n - 1].id, sizeof(cursor));
        /* The listed jobs are the store's: take them as they are, rather
         * than reading each one again (job_apply takes their strings). */
        for (size_t i = 0; i < n; i++)
            job_apply(e, &jobs[i], true);
        aster_store_free_jobs(jobs, n);
        if (n < ASTER_STORE_MAX_PAGE)
            return 0;
    }
}

int aster_engine_start(const aster_engine_opts *opts, aster_engine **out, aster_err *err)
{
    aster_engine *e = aster_calloc(1, sizeof(*e));
    char host[64] = "localhost", rnd[ASTER_UUID_STRLEN + 1];
    size_t retried = 0, failed = 0;
    int rc;

    e->o = *opts;
    if (!e->o.concurrency)
        e->o.concurrency = 1000;
    if (!e->o.lease_ms)
        e->o.lease_ms = 30000;
    if (!e->o.leader_lease_ms)
        e->o.leader_lease_ms = 5000;
    if (!e->o.heartbeat_ms)
        e->o.heartbeat_ms = 2000;
    if (!e->o.dead_ms)
        e->o.dead_ms = 6000;
    if (!e->o.role)
        e->o.role = "serve";
    e->shared = aster_store_caps(e->o.store) & ASTER_STORE_CAP_SHARED;
    /* An elected scheduler polls often enough to renew its lease at every
     * third of it, and a standby to notice a free one soon. */
    e->poll_ms = SAFETY_POLL_MS;
    if (e->o.elect && e->o.leader_lease_ms / 4 < e->poll_ms)
        e->poll_ms = e->o.leader_lease_ms / 4 < 100 ? 100 : e->o.leader_lease_ms / 4;
    if (e->shared && e->o.work && e->o.heartbeat_ms < e->poll_ms)
        e->poll_ms = e->o.heartbeat_ms < 100 ? 100 : e->o.heartbeat_ms;
    atomic_store(&e->leading, e->o.schedule && !e->o.elect);
    aster_metrics_set_leader(e->o.metrics, atomic_load(&e->leading));
    e->results_tail = &e->results;
    gethostname(host, sizeof(host) - 1);
    aster_uuid7(rnd);
    snprintf(e->owner, sizeof(e->owner), "%s:%d:%.8s", host, (int)getpid(), rnd + 28);
    pthread_mutex_init(&e->inbox_lock, NULL);
    e->inbox_tail = &e->inbox;
    uv_loop_init(&e->loop);
    aster_runner_opts ropts = {.max_in_flight = e->o.concurrency,
                               .output_cap = e->o.output_cap ? e->o.output_cap : 64 * 1024,
                               .kill_grace_ms = e->o.kill_grace_ms ? e->o.kill_grace_ms : 5000};
    rc = aster_runner_new(&e->loop, &ropts, &e->runner, err);
    if (rc)
        goto fail;
    uv_async_init(&e->loop, &e->wake, on_wake);
    uv_timer_init(&e->loop, &e->tick);
    uv_timer_init(&e->loop, &e->due);
    uv_timer_init(&e->loop, &e->poll);
    uv_timer_init(&e->loop, &e->grace);
    uv_check_init(&e->loop, &e->flush);
    uv_idle_init(&e->loop, &e->nudge);
    e->wake.data = e->tick.data = e->due.data = e->poll.data = e->grace.data = e;
    e->flush.data = e;
    uv_check_start(&e->flush, check_drained);

    /* On a store no other process shares, whatever is still running was
     * left by a previous process of ours that died: take it all back now,
     * not after its leases run out.  On a shared store others may be at
     * work: the periodic pass takes back what dead nodes left, once this
     * process has reached the store for long enough to tell (on_poll). */
    aster_time_us now = aster_time_now();
    e->up_since = aster_mono_now();
    if (!e->shared) {
        rc = aster_store_exec_reclaim(e->o.store, NULL, INT64_MAX, 0, now, &retried, &failed, err);
        if (rc)
            goto fail_loop;
    }
    if (retried || failed) {
        for (size_t i = 0; i < failed; i++)
            aster_metrics_exec_final(e->o.metrics, ASTER_EXEC_FAILED, -1, -1);
        const aster_kv kv[] = {ASTER_KV_INT("retried", (int64_t)retried),
                               ASTER_KV_INT("failed", (int64_t)failed)};
        lg(e, ASTER_LOG_WARN, "recovered executions left running by a previous process", kv,
           ASTER_NELEM(kv));
    }
    if (atomic_load(&e->leading)) {
        rc = load_all(e, err);
        if (rc)
            goto fail_loop;
    }
    /* Listen before the first term's load, so that no change falls in
     * between; then take the leadership if it is free. */
    lis_open(e);
    heartbeat(e);
    lead_step(e);
    {
        const aster_kv kv[] = {ASTER_KV_INT("jobs", (int64_t)HASH_COUNT(e->jobs)),
                               ASTER_KV_STR("owner", e->owner), ASTER_KV_STR("role", e->o.role),
                               ASTER_KV_INT("concurrency", (int64_t)e->o.concurrency)};
        lg(e, ASTER_LOG_INFO, "engine started", kv, ASTER_NELEM(kv));
    }
    e->last_extend = aster_mono_now();
    uv_timer_start(&e->poll, on_poll, (uint64_t)e->poll_ms, (uint64_t)e->poll_ms);
    arm_tick(e);
    uv_timer_start(&e->due, on_due, 0, 0); /* claim what is pending now */
    if (pthread_create(&e->thread, NULL, loop_main, e)) {
        rc = aster_err_set(err, ASTER_EIO, NULL, "cannot start the engine thread");
        goto fail_loop;
    }
    *out = e;
    return 0;
fail_loop:
    close_all(e);
    uv_run(&e->loop, UV_RUN_DEFAULT);
fail:
    while (e->jobs)
        sjob_free(e, e->jobs);
    jcache_drop(e, NULL);
    while (e->running)
        running_add(e, e->running->job_id, -e->running->n);
    tombs_expire(e, true);
    aster_free(e->heap);
    if (!e->closing)
        aster_runner_free(e->runner, NULL);
    uv_loop_close(&e->loop);
    pthread_mutex_destroy(&e->inbox_lock);
    aster_free(e);
    return rc;
}

void aster_engine_job_changed(aster_engine *e, const char *job_id, const aster_job *job)
{
    inbox_item *it;
    if (!e)
        return;
    it = aster_calloc(1, sizeof(*it));
    snprintf(it->id, sizeof(it->id), "%s", job_id);
    aster_job_init(&it->job);
    if (job) {
        aster_job_copy(&it->job, job);
        it->has_job = true;
    }
    pthread_mutex_lock(&e->inbox_lock);
    *e->inbox_tail = it;
    e->inbox_tail = &it->next;
    pthread_mutex_unlock(&e->inbox_lock);
    uv_async_send(&e->wake);
}

size_t aster_engine_in_flight(const aster_engine *e)
{
    return e ? atomic_load(&e->n_flying) : 0;
}

bool aster_engine_is_leader(const aster_engine *e)
{
    return e && atomic_load(&e->leading);
}

void aster_engine_stop(aster_engine *e, int64_t grace_ms)
{
    if (!e)
        return;
    e->grace_ms = grace_ms;
    atomic_store(&e->stop_requested, 1);
    uv_async_send(&e->wake);
    pthread_join(e->thread, NULL);
    /* Hand over at once rather than after the leases: a standby may lead
     * now, and what still runs here is taken back by other workers. */
    {
        aster_err err = {0};
        if (atomic_load(&e->leading) && e->o.elect &&
            aster_store_leader_release(e->o.store, e->owner, e->token, &err))
            log_err(e, "cannot give up the leadership", &err);
        aster_err_clear(&err);
        if (e->shared && e->o.work &&
            aster_store_node_heartbeat(e->o.store, e->owner, e->o.role, 0, &err))
            log_err(e, "cannot record the stop", &err);
        if (atomic_load(&e->leading) && e->o.elect)
            lead_log(e, ASTER_LOG_INFO, "leadership lost", "stopped");
        atomic_store(&e->leading, 0);
    }
    while (e->jobs)
        sjob_free(e, e->jobs);
    jcache_drop(e, NULL);
    while (e->running)
        running_add(e, e->running->job_id, -e->running->n);
    tombs_expire(e, true);
    aster_free(e->heap);
    for (inbox_item *it = e->inbox, *next; it; it = next) {
        next = it->next;
        aster_job_fini(&it->job);
        aster_free(it);
    }
    for (result *r = e->results, *next; r; r = next) {
        next = r->next;
        aster_exec_fini(&r->ex);
        aster_free(r->at.error);
        aster_free(r);
    }
    uv_loop_close(&e->loop);
    pthread_mutex_destroy(&e->inbox_lock);
    aster_free(e);
}
