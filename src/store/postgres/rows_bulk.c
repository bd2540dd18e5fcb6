/* rows_bulk.c — the engine's result path as one statement over arrays.
 *
 * A worker finishes attempts by the hundred per loop turn.  Written one
 * by one, each would cost an UPDATE and an INSERT, each in its own
 * savepoint inside the batch: six round trips an attempt.  Here every
 * column travels as one array parameter ({...} text form) and a single
 * statement unnests them, updates the executions and inserts the
 * attempts of the rows it updated: one round trip for the lot. */
#include "store/postgres/pg_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util/mem.h"

/* Rows per statement: bounds the size of one statement's parameters
 * (outputs are up to 64 KiB each). */
#define FINISH_CHUNK 256

enum {
    C_ID,
    C_STATUS,
    C_ATTEMPT,
    C_NOT_BEFORE,
    C_CLAIMED_BY,
    C_LEASE_UNTIL,
    C_STARTED,
    C_FINISHED,
    C_DURATION,
    C_DRIFT,
    C_HTTP,
    C_EXIT,
    C_ERROR,
    C_OUTPUT,
    C_A_ATTEMPT,
    C_A_STATUS,
    C_A_STARTED,
    C_A_FINISHED,
    C_A_DURATION,
    C_A_HTTP,
    C_A_EXIT,
    C_A_ERROR,
    C_COUNT
};

/* A growing array literal. */
typedef struct arr {
    char *s;
    size_t len, cap;
} arr;

static void arr_put(arr *a, const char *p, size_t n)
{
    if (a->len + n + 1 > a->cap) {
        a->cap = (a->len + n + 1) * 2;
        a->s = aster_realloc(a->s, a->cap);
    }
    memcpy(a->s + a->len, p, n);
    a->len += n;
    a->s[a->len] = '\0';
}

static void arr_sep(arr *a)
{
    arr_put(a, a->len ? "," : "{", 1);
}

static void arr_null(arr *a)
{
    arr_sep(a);
    arr_put(a, "NULL", 4);
}

/* Elements are double-quoted with " and \ escaped: any text survives. */
static void arr_text(arr *a, const char *s)
{
    if (!s) {
        arr_null(a);
        return;
    }
    arr_sep(a);
    arr_put(a, "\"", 1);
    for (const char *p = s; *p;) {
        size_t run = strcspn(p, "\"\\");
        arr_put(a, p, run);
        p += run;
        if (*p) {
            arr_put(a, "\\", 1);
            arr_put(a, p++, 1);
        }
    }
    arr_put(a, "\"", 1);
}

static void arr_int(arr *a, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%" PRId64, v);
    arr_sep(a);
    arr_put(a, buf, (size_t)n);
}

/* As pg_p_time and pg_p_opt: 0 (absent), resp. -1 (does not apply), is NULL. */
static void arr_time(arr *a, int64_t t)
{
    if (t)
        arr_int(a, t);
    else
        arr_null(a);
}

static void arr_opt(arr *a, int64_t v)
{
    if (v != -1)
        arr_int(a, v);
    else
        arr_null(a);
}

struct finish {
    pg_params p;
};

static int finish_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct finish *x = ctx;
    PGresult *r = pg_query(
        c, PG_EXEC_FINISH,
        "WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], "
        "$5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], "
        "$11::int[], $12::int[], $13::text[], $14::text[], $15::int[], $16::text[], "
        "$17::bigint[], $18::bigint[], $19::bigint[], $20::int[], $21::int[], $22::text[]) "
        "AS v(id, status, attempt, not_before, claimed_by, lease_until, started_at, "
        "finished_at, duration_ms, drift_ms, http_status, exit_code, error, output, "
        "a_attempt, a_status, a_started, a_finished, a_duration, a_http, a_exit, a_error)), "
        "u AS (UPDATE executions e SET status = v.status, attempt = v.attempt, "
        "not_before = v.not_before, claimed_by = v.claimed_by, lease_until = v.lease_until, "
        "started_at = v.started_at, finished_at = v.finished_at, "
        "duration_ms = v.duration_ms, drift_ms = v.drift_ms, http_status = v.http_status, "
        "exit_code = v.exit_code, error = v.error, output = v.output "
        "FROM v WHERE e.id = v.id RETURNING e.id) "
        "INSERT INTO attempts (execution_id, attempt, status, started_at, finished_at, "
        "duration_ms, http_status, exit_code, error) "
        "SELECT v.id, v.a_attempt, v.a_status, v.a_started, v.a_finished, v.a_duration, "
        "v.a_http, v.a_exit, v.a_error FROM v JOIN u ON u.id = v.id "
        "ON CONFLICT (execution_id, attempt) DO NOTHING",
        &x->p);

    if (!r)
        return pg_fail(c, "recording results", err);
    PQclear(r);
    return 0;
}

static int finish_chunk(pg_store *s, const aster_exec *ex, const aster_attempt *at, size_t n,
                        aster_err *err)
{
    struct finish x = {.p = {.n = 0}};
    arr a[C_COUNT] = {{NULL, 0, 0}};
    int rc;

    for (size_t i = 0; i < n; i++) {
        const aster_exec *e = &ex[i];
        const aster_attempt *t = &at[i];
        arr_text(&a[C_ID], e->id);
        arr_text(&a[C_STATUS], aster_exec_status_name(e->status));
        arr_int(&a[C_ATTEMPT], e->attempt);
        arr_int(&a[C_NOT_BEFORE], e->not_before);
        arr_text(&a[C_CLAIMED_BY], e->claimed_by);
        arr_time(&a[C_LEASE_UNTIL], e->lease_until);
        arr_time(&a[C_STARTED], e->started_at);
        arr_time(&a[C_FINISHED], e->finished_at);
        arr_opt(&a[C_DURATION], e->duration_ms);
        arr_opt(&a[C_DRIFT], e->drift_ms);
        arr_opt(&a[C_HTTP], e->http_status);
        arr_opt(&a[C_EXIT], e->exit_code);
        arr_text(&a[C_ERROR], e->error);
        arr_text(&a[C_OUTPUT], e->output);
        arr_int(&a[C_A_ATTEMPT], t->attempt);
        arr_text(&a[C_A_STATUS], aster_exec_status_name(t->status));
        arr_time(&a[C_A_STARTED], t->started_at);
        arr_time(&a[C_A_FINISHED], t->finished_at);
        arr_opt(&a[C_A_DURATION], t->duration_ms);
        arr_opt(&a[C_A_HTTP], t->http_status);
        arr_opt(&a[C_A_EXIT], t->exit_code);
        arr_text(&a[C_A_ERROR], t->error);
    }
    for (int k = 0; k < C_COUNT; k++) {
        arr_put(&a[k], "}", 1);
        pg_p_text(&x.p, k + 1, a[k].s);
    }
    /* Replaying it is harmless (same values; attempts DO NOTHING), but
     * inside the caller's batch pg_run runs it once in a savepoint. */
    rc = pg_run(s, PG_WRITE, finish_fn, &x, err);
    for (int k = 0; k < C_COUNT; k++)
        aster_free(a[k].s);
    return rc;
}

int pg_exec_finish(aster_store *st, const aster_exec *ex, const aster_attempt *at, size_t n,
                   aster_err *err)
{
    int rc = 0;

    for (size_t i = 0; !rc && i < n; i += FINISH_CHUNK)
        rc = finish_chunk((pg_store *)st, ex + i, at + i,
                          n - i < FINISH_CHUNK ? n - i : FINISH_CHUNK, err);
    return rc;
}

/* ---- job creations written together (store/group.c) ------------------------------
 *
 * One INSERT over unnested arrays for creations of many API threads: one
 * statement and one WAL flush where each alone cost a backend both. */

enum {
    J_ID,
    J_NAME,
    J_SCHEDULE,
    J_TZ,
    J_DELIVERY,
    J_KIND,
    J_TARGET,
    J_RETRIES,
    J_BACKOFF,
    J_BACKOFF_MAX,
    J_TIMEOUT,
    J_OVERLAP,
    J_MISFIRE,
    J_GRACE,
    J_GAP,
    J_DST_OVERLAP,
    J_PAUSED,
    J_WEBHOOK,
    J_ALERT_AFTER,
    J_NO_SUCCESS,
    J_NEXT,
    J_CREATED,
    J_UPDATED,
    J_VERSION,
    J_COUNT
};

struct insert_many {
    pg_params p;
    const aster_job *const *jobs;
    size_t n;
    int *rcs;
    aster_err *errs;
    bool sent; /* the INSERT went out once already */
};

/* Marks the jobs whose id is in `r` (column 0) as written. */
static void mark_written(const PGresult *r, const struct insert_many *m, bool *written)
{
    for (size_t i = 0; i < m->n; i++)
        for (int row = 0; !written[i] && row < PQntuples(r); row++)
            written[i] = !strcmp(PQgetvalue(r, row, 0), m->jobs[i]->id);
}

static int insert_many_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct insert_many *m = ctx;
    bool rerun = m->sent, *written;
    PGresult *r;

    m->sent = true;
    /* A name taken (by an older job or by one earlier in this statement)
     * skips that row, not the statement: ON CONFLICT DO NOTHING, then
     * RETURNING says which rows went in. */
    r = pg_query(c, PG_JOB_INSERT_MANY,
                 "INSERT INTO jobs (" PG_JOB_COLS ") SELECT * FROM unnest($1::text[], "
                 "$2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], "
                 "$8::int[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[], $13::text[], "
                 "$14::bigint[], $15::int[], $16::int[], $17::boolean[], $18::text[], $19::int[], "
                 "$20::bigint[], $21::bigint[], $22::bigint[], $23::bigint[], $24::bigint[]) "
                 "ON CONFLICT DO NOTHING RETURNING id",
                 &m->p);
    if (!r)
        return pg_fail(c, "writing jobs", err);
    written = aster_calloc(m->n, sizeof(*written));
    if ((size_t)PQntuples(r) == m->n)
        memset(written, 1, m->n * sizeof(*written));
    else
        mark_written(r, m, written);
    PQclear(r);
    /* Rows left out: a name in use, or, when this runs again after the
     * connection broke, our own rows, committed the first time (ids are
     * made by the caller, UUIDv7: a row with our id can only be ours). */
    if (rerun) {
        pg_params q = {0};
        pg_p_text(&q, 1, m->p.v[J_ID]);
        if (!(r = pg_query(c, PG_JOB_IDS_EXIST, "SELECT id FROM jobs WHERE id = ANY($1::text[])",
                           &q))) {
            aster_free(written);
            return pg_fail(c, "checking a write", err);
        }
        mark_written(r, m, written);
        PQclear(r);
    }
    for (size_t i = 0; i < m->n; i++)
        m->rcs[i] = written[i]
                        ? 0
                        : aster_err_set(&m->errs[i], ASTER_EEXIST, "name",
                                        "a job named '%.100s' already exists", m->jobs[i]->name);
    aster_free(written);
    return 0;
}

void pg_job_insert_many(aster_store *st, const aster_job *const *jobs, size_t n, int *rcs,
                        aster_err *errs)
{
    pg_store *s = (pg_store *)st;
    struct insert_many m = {.jobs = jobs, .n = n, .rcs = rcs, .errs = errs};
    arr a[J_COUNT] = {{NULL, 0, 0}};
    aster_err err = {0};
    int rc;

    for (size_t i = 0; i < n; i++) {
        const aster_job *j = jobs[i];
        rcs[i] = 0;
        errs[i] = (aster_err){0};
        arr_text(&a[J_ID], j->id);
        arr_text(&a[J_NAME], j->name);
        arr_text(&a[J_SCHEDULE], j->schedule);
        arr_text(&a[J_TZ], j->timezone);
        arr_text(&a[J_DELIVERY], aster_delivery_name(j->delivery));
        arr_text(&a[J_KIND], aster_target_kind_name(j->target_kind));
        arr_text(&a[J_TARGET], j->target);
        arr_int(&a[J_RETRIES], j->max_retries);
        arr_int(&a[J_BACKOFF], j->retry_backoff_ms);
        arr_int(&a[J_BACKOFF_MAX], j->retry_backoff_max_ms);
        arr_int(&a[J_TIMEOUT], j->timeout_ms);
        arr_text(&a[J_OVERLAP], aster_overlap_name(j->overlap));
        arr_text(&a[J_MISFIRE], aster_misfire_name(j->misfire));
        arr_int(&a[J_GRACE], j->misfire_grace_ms);
        arr_int(&a[J_GAP], j->dst_gap);
        arr_int(&a[J_DST_OVERLAP], j->dst_overlap);
        arr_text(&a[J_PAUSED], j->paused ? "t" : "f");
        arr_text(&a[J_WEBHOOK], j->alert_webhook);
        arr_int(&a[J_ALERT_AFTER], j->alert_after_failures);
        arr_int(&a[J_NO_SUCCESS], j->alert_if_no_success_ms);
        arr_time(&a[J_NEXT], j->next_fire_at);
        arr_int(&a[J_CREATED], j->created_at);
        arr_int(&a[J_UPDATED], j->updated_at);
        arr_int(&a[J_VERSION], j->version);
    }
    for (int k = 0; k < J_COUNT; k++) {
        arr_put(&a[k], "}", 1);
        pg_p_text(&m.p, k + 1, a[k].s);
    }
    rc = pg_run(s, PG_IDEMPOTENT, insert_many_fn, &m, &err);
    for (int k = 0; k < J_COUNT; k++)
        aster_free(a[k].s);
    /* The statement failed as a whole.  Unreachable: everyone hears it.
     * Otherwise one row spoiled it for all: each goes alone, to get its
     * own answer. */
    for (size_t i = 0; rc && i < n; i++) {
        if (err.code == ASTER_EUNAVAIL) {
            rcs[i] = rc;
            errs[i] = err;
        } else {
            rcs[i] = pg_job_insert_one(s, jobs[i], &errs[i]);
        }
    }
    /* Announced after the commit, as pg_job_insert does. */
    for (size_t i = 0; i < n; i++)
        if (!rcs[i])
            pg_announce_job(s, jobs[i]->id);
}
