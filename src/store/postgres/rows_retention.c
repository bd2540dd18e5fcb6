/* rows_retention.c — the alerter's and the pruner's rows: alert identity,
 * the webhook delivery queue, the scans for events that still want an
 * alert, and history retention in short batches.
 *
 * The same statements as sqlite/rows_retention.c in PostgreSQL's dialect,
 * served by the indexes of migration 2 (migrations.c).  Each write is one
 * short transaction deleting or changing at most `max` rows. */
#include "store/postgres/pg_int.h"

#include <stdio.h>
#include <string.h>

#include "util/mem.h"

#define FIELD "store"

#define ALERT_COLS                                                                                 \
    "id, job_id, execution_id, kind, message, created_at, delivery_state, delivery_attempts, "     \
    "next_delivery_at"

/* ---- alert identity and the delivery queue ------------------------------------------- */

struct alert_raise {
    const aster_alert *a;
    const char *key;
    bool inserted;
};

static int alert_raise_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct alert_raise *x = ctx;
    const aster_alert *a = x->a;
    pg_params p = {0};
    PGresult *r;

    pg_p_text(&p, 1, a->id);
    pg_p_text(&p, 2, a->job_id);
    pg_p_text(&p, 3, a->execution_id[0] ? a->execution_id : NULL);
    pg_p_text(&p, 4, a->kind);
    pg_p_text(&p, 5, a->message);
    pg_p_int(&p, 6, a->created_at);
    pg_p_text(&p, 7, a->delivery_state);
    pg_p_int(&p, 8, a->delivery_attempts);
    pg_p_time(&p, 9, a->next_delivery_at);
    pg_p_text(&p, 10, x->key);
    /* The conflict target names the partial unique index alerts_dedupe
     * with its WHERE; other constraints (the id, the job) still fail. */
    r = pg_query(c, PG_ALERT_RAISE,
                 "INSERT INTO alerts (" ALERT_COLS ", dedupe_key) "
                 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                 "ON CONFLICT (job_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
                 &p);
    if (r) {
        x->inserted = pg_changes(r) > 0;
        PQclear(r);
        return 0;
    }
    if (pg_state_is(c, "23503"))
        return aster_err_set(err, ASTER_ENOENT, "job_id", "no job with id '%s'", a->job_id);
    if (pg_state_is(c, "23505"))
        return aster_err_set(err, ASTER_EEXIST, "id", "an alert with id %s already exists", a->id);
    return pg_fail(c, "writing an alert", err);
}

int pg_alert_raise(aster_store *st, const aster_alert *a, const char *dedupe_key, bool *inserted,
                   aster_err *err)
{
    struct alert_raise x = {.a = a, .key = dedupe_key};
    int rc = pg_run((pg_store *)st, PG_WRITE, alert_raise_fn, &x, err);

    if (!rc)
        *inserted = x.inserted;
    return rc;
}

int pg_alert_due(aster_store *st, aster_time_us now, size_t max, aster_alert **out, size_t *n,
                 aster_err *err)
{
    /* alerts_delivery holds the pending rows only.  A pending row without
     * a time (written through aster_store_alert_insert) is due at once;
     * NULLS FIRST puts it first, as SQLite orders NULL. */
    struct pg_list l = {.slot = PG_ALERT_DUE,
                        .sql = "SELECT " ALERT_COLS " FROM alerts "
                               "WHERE delivery_state = 'pending' "
                               "AND (next_delivery_at IS NULL OR next_delivery_at <= $1) "
                               "ORDER BY next_delivery_at NULLS FIRST, id LIMIT $2",
                        .what = "listing due alerts",
                        .read = pg_read_alert,
                        .fini = pg_fini_alert,
                        .size = sizeof(aster_alert)};
    int rc;

    pg_p_int(&l.p, 1, now);
    pg_p_int(&l.p, 2, (int64_t)max);
    rc = pg_run((pg_store *)st, PG_READ, pg_run_list, &l, err);
    if (!rc) {
        *out = l.arr;
        *n = l.n;
    }
    return rc;
}

int pg_alert_next_due(aster_store *st, aster_time_us *out, aster_err *err)
{
    struct pg_scalar x = {.slot = PG_ALERT_NEXT_DUE,
                          .sql = "SELECT min(coalesce(next_delivery_at, 1)) FROM alerts "
                                 "WHERE delivery_state = 'pending'",
                          .what = "reading the alert queue",
                          .null = INT64_MIN};
    int rc = pg_run((pg_store *)st, PG_READ, pg_run_scalar, &x, err);

    /* 0 means "none": a row due at once (NULL or 0) reads as 1. */
    if (!rc)
        *out = x.value == INT64_MIN ? 0 : x.value < 1 ? 1 : x.value;
    return rc;
}

int pg_alert_set_delivery(aster_store *st, const char *id, const char *state, int32_t attempts,
                          aster_time_us next_delivery_at, aster_err *err)
{
    struct pg_stmt x = {.slot = PG_ALERT_SET_DELIVERY,
                        .sql = "UPDATE alerts SET delivery_state = $2, delivery_attempts = $3, "
                               "next_delivery_at = $4 WHERE id = $1",
                        .what = "updating an alert's delivery"};
    int rc;

    pg_p_text(&x.p, 1, id);
    pg_p_text(&x.p, 2, state);
    pg_p_int(&x.p, 3, attempts);
    pg_p_time(&x.p, 4, next_delivery_at);
    rc = pg_run((pg_store *)st, PG_IDEMPOTENT, pg_run_stmt, &x, err);
    if (!rc && x.changes == 0)
        rc = aster_err_set(err, ASTER_ENOENT, "id", "no alert with id '%s'", id);
    return rc;
}

/* ---- events that still want an alert ------------------------------------------------- */

static int read_failure(const PGresult *r, int i, void *out, aster_err *err)
{
    aster_exec ex;
    int rc, status = 0;

    aster_exec_init(&ex);
    if ((rc = pg_col_id(r, i, 0, ex.id, "executions", err)) ||
        (rc = pg_col_id(r, i, 1, ex.job_id, "executions", err)) ||
        (rc = pg_col_enum(r, i, 2, aster_exec_status_parse, &status, "executions", err)))
        return rc;
    ex.status = (aster_exec_status)status;
    ex.attempt = (int32_t)pg_col_int(r, i, 3);
    ex.finished_at = pg_col_int(r, i, 4);
    ex.error = pg_col_str(r, i, 5);
    *(aster_exec *)out = ex;
    return 0;
}

int pg_exec_unalerted_failures(aster_store *st, aster_time_us since, const char *key_prefix,
                               size_t max, aster_exec **out, size_t *n, aster_err *err)
{
    /* executions_failed holds the final failures by finished_at; the
     * NOT EXISTS probes alerts_dedupe. */
    struct pg_list l = {.slot = PG_EXEC_UNALERTED,
                        .sql = "SELECT e.id, e.job_id, e.status, e.attempt, e.finished_at, "
                               "e.error FROM executions e "
                               "WHERE e.status IN ('failed', 'timed_out') AND e.finished_at >= $1 "
                               "AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.job_id = e.job_id "
                               "AND a.dedupe_key = $2::text || e.id) "
                               "ORDER BY e.finished_at, e.id LIMIT $3",
                        .what = "listing failures",
                        .read = read_failure,
                        .fini = pg_fini_exec,
                        .size = sizeof(aster_exec)};
    int rc;

    pg_p_int(&l.p, 1, since);
    pg_p_text(&l.p, 2, key_prefix);
    pg_p_int(&l.p, 3, (int64_t)max);
    rc = pg_run((pg_store *)st, PG_READ, pg_run_list, &l, err);
    if (!rc) {
        *out = l.arr;
        *n = l.n;
    }
    return rc;
}

struct streak {
    const char *job_id;
    int64_t max, count;
    char last[ASTER_ID_LEN + 1];
};

static int streak_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct streak *x = ctx;
    pg_params p = {0};
    PGresult *r;
    int rc = 0;

    /* Two statements, two snapshots: a success committed in between makes
     * the count 0, which is what the next call would say anyway.
     * executions_success, then executions_job (bounded by max). */
    x->last[0] = '\0';
    pg_p_text(&p, 1, x->job_id);
    r = pg_query(c, PG_STREAK_LAST,
                 "SELECT id FROM executions WHERE job_id = $1 AND status = 'succeeded' "
                 "ORDER BY id DESC LIMIT 1",
                 &p);
    if (!r)
        return pg_fail(c, "reading a job's last success", err);
    if (PQntuples(r) == 1)
        rc = pg_col_id(r, 0, 0, x->last, "executions", err);
    PQclear(r);
    if (rc)
        return rc;
    pg_p_text(&p, 2, x->last);
    pg_p_int(&p, 3, x->max);
    r = pg_query(c, PG_STREAK_COUNT,
                 "SELECT count(*) FROM (SELECT 1 FROM executions WHERE job_id = $1 "
                 "AND id > $2 AND status IN ('failed', 'timed_out') LIMIT $3) f",
                 &p);
    if (!r)
        return pg_fail(c, "counting a job's failures", err);
    x->count = pg_col_int(r, 0, 0);
    PQclear(r);
    return 0;
}

int pg_job_fail_streak(aster_store *st, const char *job_id, int64_t max, int64_t *streak,
                       char last_success_id[ASTER_ID_LEN + 1], aster_err *err)
{
    struct streak x = {.job_id = job_id, .max = max};
    int rc = pg_run((pg_store *)st, PG_READ, streak_fn, &x, err);

    if (!rc) {
        *streak = x.count;
        memcpy(last_success_id, x.last, sizeof(x.last));
    }
    return rc;
}

static int read_absence(const PGresult *r, int i, void *out, aster_err *err)
{
    aster_job_absence *a = out;
    int rc = pg_col_id(r, i, 0, a->job_id, "jobs", err);

    if (rc)
        return rc;
    a->no_success_ms = pg_col_int(r, i, 1);
    a->since = pg_col_int(r, i, 2);
    return 0;
}

static void fini_nothing(void *p)
{
    (void)p;
}

int pg_job_absent(aster_store *st, aster_time_us now, const char *key_prefix, const char *after_id,
                  int limit, aster_job_absence **out, size_t *n, aster_err *err)
{
    /* jobs_absence, then per job executions_success and alerts_dedupe.
     * `since` is appended as decimal text, as the caller formats it. */
    struct pg_list l = {.slot = PG_JOB_ABSENT,
                        .sql = "SELECT x.jid, x.ms, x.since FROM (SELECT j.id AS jid, "
                               "j.alert_if_no_success_ms AS ms, coalesce((SELECT e.finished_at "
                               "FROM executions e WHERE e.job_id = j.id "
                               "AND e.status = 'succeeded' ORDER BY e.id DESC LIMIT 1), "
                               "j.created_at) AS since FROM jobs j "
                               "WHERE j.alert_if_no_success_ms > 0 AND NOT j.paused "
                               "AND j.id > $2) x "
                               "WHERE x.since + x.ms * 1000 <= $1 AND NOT EXISTS (SELECT 1 "
                               "FROM alerts a WHERE a.job_id = x.jid "
                               "AND a.dedupe_key = $3::text || x.since) "
                               "ORDER BY x.jid LIMIT $4",
                        .what = "listing absent jobs",
                        .read = read_absence,
                        .fini = fini_nothing,
                        .size = sizeof(aster_job_absence)};
    int rc;

    pg_p_int(&l.p, 1, now);
    pg_p_text(&l.p, 2, after_id ? after_id : "");
    pg_p_text(&l.p, 3, key_prefix);
    pg_p_int(&l.p, 4, limit);
    rc = pg_run((pg_store *)st, PG_READ, pg_run_list, &l, err);
    if (!rc) {
        *out = l.arr;
        *n = l.n;
    }
    return rc;
}

/* ---- retention ---------------------------------------------------------------------- */

/* Runs one DELETE; *deleted counts the rows of its own table (not what
 * ON DELETE CASCADE removed with them). */
static int prune(aster_store *st, struct pg_stmt *x, size_t *deleted, aster_err *err)
{
    int rc = pg_run((pg_store *)st, PG_WRITE, pg_run_stmt, x, err);

    if (!rc)
        *deleted = x->changes;
    return rc;
}

int pg_prune_execs_before(aster_store *st, aster_time_us before, size_t max, size_t *deleted,
                          aster_err *err)
{
    /* executions_created; an execution that finished recently (a long
     * retry sequence) stays until its finish is old too. */
    struct pg_stmt x = {.slot = PG_PRUNE_EXECS_BEFORE,
                        .sql = "DELETE FROM executions WHERE id IN (SELECT id FROM executions "
                               "WHERE created_at < $1 AND coalesce(finished_at, 0) < $1 "
                               "AND status NOT IN ('pending', 'running') "
                               "ORDER BY created_at LIMIT $2)",
                        .what = "pruning old executions"};

    pg_p_int(&x.p, 1, before);
    pg_p_int(&x.p, 2, (int64_t)max);
    return prune(st, &x, deleted, err);
}

int pg_prune_execs_keep(aster_store *st, const char *job_id, int64_t keep, size_t max,
                        size_t *deleted, aster_err *err)
{
    /* The keep-th newest id is the boundary (NULL when the job has fewer:
     * nothing matches); executions_job walks keep entries to find it. */
    struct pg_stmt x = {.slot = PG_PRUNE_EXECS_KEEP,
                        .sql = "DELETE FROM executions WHERE id IN (SELECT id FROM executions "
                               "WHERE job_id = $1 AND id < (SELECT id FROM executions "
                               "WHERE job_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2) "
                               "AND status NOT IN ('pending', 'running') ORDER BY id LIMIT $3)",
                        .what = "pruning a job's executions"};

    pg_p_text(&x.p, 1, job_id);
    pg_p_int(&x.p, 2, keep - 1);
    pg_p_int(&x.p, 3, (int64_t)max);
    return prune(st, &x, deleted, err);
}

int pg_prune_alerts_before(aster_store *st, aster_time_us before, size_t max, size_t *deleted,
                           aster_err *err)
{
    struct pg_stmt x = {.slot = PG_PRUNE_ALERTS,
                        .sql = "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts "
                               "WHERE created_at < $1 AND delivery_state <> 'pending' "
                               "ORDER BY created_at LIMIT $2)",
                        .what = "pruning old alerts"};

    pg_p_int(&x.p, 1, before);
    pg_p_int(&x.p, 2, (int64_t)max);
    return prune(st, &x, deleted, err);
}

struct max_id {
    char id[ASTER_ID_LEN + 1];
};

static int max_id_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct max_id *x = ctx;
    PGresult *r = pg_query(c, PG_EXEC_MAX_ID, "SELECT max(id) FROM executions", NULL);
    int rc;

    if (!r)
        return pg_fail(c, "reading the newest execution", err);
    rc = pg_col_id(r, 0, 0, x->id, "executions", err); /* NULL: "" */
    PQclear(r);
    return rc;
}

int pg_exec_max_id(aster_store *st, char out[ASTER_ID_LEN + 1], aster_err *err)
{
    struct max_id x = {.id = ""};
    int rc = pg_run((pg_store *)st, PG_READ, max_id_fn, &x, err);

    if (!rc)
        memcpy(out, x.id, sizeof(x.id));
    return rc;
}

static int read_id(const PGresult *r, int i, void *out, aster_err *err)
{
    return pg_col_id(r, i, 0, out, "executions", err);
}

int pg_exec_jobs_after(aster_store *st, const char *since_id, const char *after_job, int limit,
                       char **ids, size_t *n, aster_err *err)
{
    struct pg_list l = {.what = "listing jobs with new executions",
                        .read = read_id,
                        .fini = fini_nothing,
                        .size = ASTER_ID_LEN + 1};
    int rc, k = 0;

    /* Without a watermark every job qualifies: read the jobs table, not the
     * whole history.  With one, the primary key finds the new rows. */
    if (!since_id) {
        l.slot = PG_JOBS_ALL;
        l.sql = "SELECT id FROM jobs WHERE id > $1 ORDER BY id LIMIT $2";
    } else {
        l.slot = PG_JOBS_AFTER;
        l.sql = "SELECT DISTINCT job_id FROM executions WHERE id > $1 AND job_id > $2 "
                "ORDER BY job_id LIMIT $3";
        pg_p_text(&l.p, ++k, since_id);
    }
    pg_p_text(&l.p, ++k, after_job ? after_job : "");
    pg_p_int(&l.p, ++k, limit);
    rc = pg_run((pg_store *)st, PG_READ, pg_run_list, &l, err);
    if (!rc) {
        *ids = l.arr;
        *n = l.n;
    }
    return rc;
}
