/* rows_retention.c — the alerter's and the pruner's rows: alert identity,
 * the webhook delivery queue, the scans for events that still want an
 * alert, and history retention in short batches.
 *
 * Every read here runs on a reader connection (a read never waits for the
 * engine's writes); every write is one short transaction on the writer, so
 * the engine's fires and results queue behind at most one batch of
 * `max` rows.  Statements are cached per connection like rows.c's; the
 * indexes they rely on come with migration 2 (migrations.c), and each
 * query says which. */
#include "store/sqlite/sqlite_int.h"

#include <stdio.h>
#include <string.h>

#include "util/mem.h"

#define FIELD "store"

/* ---- helpers (the binding and decoding helpers are rows.c's: sqlite_int.h) ---- */

/* Runs a prepared DELETE and reports the rows it removed (not counting
 * what ON DELETE CASCADE removed with them: sqlite3_changes counts the
 * statement's own table only). */
static int delete_rows(sq_conn *c, sqlite3_stmt *st, int b, const char *what, size_t *deleted,
                       aster_err *err)
{
    int rc = b == SQLITE_OK ? sqlite3_step(st) : b;

    rc = rc == SQLITE_DONE ? 0 : sq_dberr(c->db, rc, what, err);
    sqlite3_reset(st);
    if (!rc)
        *deleted = (size_t)sqlite3_changes(c->db);
    return rc;
}

/* ---- alert identity and the delivery queue --------------------------------------- */

#define ALERT_COLS                                                                                 \
    "id, job_id, execution_id, kind, message, created_at, delivery_state, delivery_attempts, "     \
    "next_delivery_at"

int sq_alert_raise(aster_store *stp, const aster_alert *a, const char *dedupe_key, bool *inserted,
                   aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK, step;

    if (rc)
        return rc;
    /* The conflict target names the partial unique index alerts_dedupe
     * with its WHERE; other constraints (the id, the job) still fail. */
    rc = sq_prepare(c, SQ_ALERT_RAISE,
                    "INSERT INTO alerts (" ALERT_COLS ", dedupe_key) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
                    "ON CONFLICT (job_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
                    &st, err);
    if (!rc) {
        sq_bind_text(st, 1, a->id, &b);
        sq_bind_text(st, 2, a->job_id, &b);
        sq_bind_text(st, 3, a->execution_id[0] ? a->execution_id : NULL, &b);
        sq_bind_text(st, 4, a->kind, &b);
        sq_bind_text(st, 5, a->message, &b);
        sq_bind_int(st, 6, a->created_at, &b);
        sq_bind_text(st, 7, a->delivery_state, &b);
        sq_bind_int(st, 8, a->delivery_attempts, &b);
        sq_bind_time(st, 9, a->next_delivery_at, &b);
        sq_bind_text(st, 10, dedupe_key, &b);
        step = b == SQLITE_OK ? sqlite3_step(st) : b;
        if (step == SQLITE_CONSTRAINT_FOREIGNKEY)
            rc = aster_err_set(err, ASTER_ENOENT, "job_id", "no job with id '%s'", a->job_id);
        else if (step == SQLITE_CONSTRAINT_PRIMARYKEY)
            rc =
                aster_err_set(err, ASTER_EEXIST, "id", "an alert with id %s already exists", a->id);
        else if (step != SQLITE_DONE)
            rc = sq_dberr(c->db, step, "writing an alert", err);
        sqlite3_reset(st);
        if (!rc)
            *inserted = sqlite3_changes(c->db) > 0;
    }
    return sq_write_end(s, c, rc, err);
}

int sq_alert_due(aster_store *stp, aster_time_us now, size_t max, aster_alert **out, size_t *n,
                 aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    aster_alert *arr = NULL;
    size_t cnt = 0, cap = 0;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_read_begin(s, &c, err), b = SQLITE_OK, step = SQLITE_DONE;

    if (rc)
        return rc;
    /* alerts_delivery holds the pending rows only.  A pending row without
     * a time (written through aster_store_alert_insert) is due at once. */
    rc = sq_prepare(c, SQ_ALERT_DUE,
                    "SELECT " ALERT_COLS " FROM alerts INDEXED BY alerts_delivery "
                    "WHERE delivery_state = 'pending' "
                    "AND (next_delivery_at IS NULL OR next_delivery_at <= ?1) "
                    "ORDER BY next_delivery_at, id LIMIT ?2",
                    &st, err);
    if (rc)
        goto out;
    sq_bind_int(st, 1, now, &b);
    sq_bind_int(st, 2, (int64_t)max, &b);
    while (b == SQLITE_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        arr = sq_grow(arr, cnt, &cap, sizeof(*arr));
        if ((rc = sq_read_alert(st, &arr[cnt], err)))
            break;
        cnt++;
    }
    if (!rc && (b != SQLITE_OK || step != SQLITE_DONE))
        rc = sq_dberr(c->db, b != SQLITE_OK ? b : step, "listing due alerts", err);
    sqlite3_reset(st);
    if (rc) {
        aster_store_free_alerts(arr, cnt);
        goto out;
    }
    *out = arr;
    *n = cnt;
out:
    sq_read_end(s, c);
    return rc;
}

int sq_alert_next_due(aster_store *stp, aster_time_us *out, aster_err *err)
{
    /* 0 means "none": a row due at once (NULL or 0) reads as 1. */
    return sq_read_int64((sq_store *)stp, SQ_ALERT_NEXT_DUE,
                         "SELECT max(min(coalesce(next_delivery_at, 1)), 1) FROM alerts "
                         "INDEXED BY alerts_delivery WHERE delivery_state = 'pending'",
                         NULL, 0, "reading the alert queue", out, err);
}

int sq_alert_set_delivery(aster_store *stp, const char *id, const char *state, int32_t attempts,
                          aster_time_us next_delivery_at, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK;

    if (rc)
        return rc;
    rc = sq_prepare(c, SQ_ALERT_SET_DELIVERY,
                    "UPDATE alerts SET delivery_state = ?2, delivery_attempts = ?3, "
                    "next_delivery_at = ?4 WHERE id = ?1",
                    &st, err);
    if (!rc) {
        sq_bind_text(st, 1, id, &b);
        sq_bind_text(st, 2, state, &b);
        sq_bind_int(st, 3, attempts, &b);
        sq_bind_time(st, 4, next_delivery_at, &b);
        rc = b == SQLITE_OK ? sqlite3_step(st) : b;
        rc = rc == SQLITE_DONE ? 0 : sq_dberr(c->db, rc, "updating an alert's delivery", err);
        sqlite3_reset(st);
    }
    if (!rc && sqlite3_changes(c->db) == 0)
        rc = aster_err_set(err, ASTER_ENOENT, "id", "no alert with id '%s'", id);
    return sq_write_end(s, c, rc, err);
}

/* ---- events that still want an alert ----------------------------------------------- */

static int read_failure(sqlite3_stmt *st, aster_exec *out, aster_err *err)
{
    aster_exec ex;
    int rc, status = aster_exec_status_parse((const char *)sqlite3_column_text(st, 2));

    aster_exec_init(&ex);
    if ((rc = sq_col_id(st, 0, ex.id, "executions", err)) ||
        (rc = sq_col_id(st, 1, ex.job_id, "executions", err)))
        return rc;
    if (status < 0)
        return aster_err_set(err, ASTER_EIO, FIELD, "unreadable row in executions: status");
    ex.status = (aster_exec_status)status;
    ex.attempt = sqlite3_column_int(st, 3);
    ex.finished_at = sqlite3_column_int64(st, 4);
    ex.error = aster_strdup((const char *)sqlite3_column_text(st, 5));
    *out = ex;
    return 0;
}

int sq_exec_unalerted_failures(aster_store *stp, aster_time_us since, const char *key_prefix,
                               size_t max, aster_exec **out, size_t *n, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    aster_exec *arr = NULL;
    size_t cnt = 0, cap = 0;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_read_begin(s, &c, err), b = SQLITE_OK, step = SQLITE_DONE;

    if (rc)
        return rc;
    /* executions_failed holds the final failures by finished_at; the
     * NOT EXISTS probes alerts_dedupe. */
    rc = sq_prepare(c, SQ_EXEC_UNALERTED,
                    "SELECT e.id, e.job_id, e.status, e.attempt, e.finished_at, e.error "
                    "FROM executions e INDEXED BY executions_failed "
                    "WHERE e.status IN ('failed', 'timed_out') AND e.finished_at >= ?1 "
                    "AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.job_id = e.job_id "
                    "AND a.dedupe_key = ?2 || e.id) "
                    "ORDER BY e.finished_at, e.id LIMIT ?3",
                    &st, err);
    if (rc)
        goto out;
    sq_bind_int(st, 1, since, &b);
    sq_bind_text(st, 2, key_prefix, &b);
    sq_bind_int(st, 3, (int64_t)max, &b);
    while (b == SQLITE_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        arr = sq_grow(arr, cnt, &cap, sizeof(*arr));
        if ((rc = read_failure(st, &arr[cnt], err)))
            break;
        cnt++;
    }
    if (!rc && (b != SQLITE_OK || step != SQLITE_DONE))
        rc = sq_dberr(c->db, b != SQLITE_OK ? b : step, "listing failures", err);
    sqlite3_reset(st);
    if (rc) {
        aster_store_free_execs(arr, cnt);
        goto out;
    }
    *out = arr;
    *n = cnt;
out:
    sq_read_end(s, c);
    return rc;
}

int sq_job_fail_streak(aster_store *stp, const char *job_id, int64_t max, int64_t *streak,
                       char last_success_id[ASTER_ID_LEN + 1], aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_read_begin(s, &c, err), b = SQLITE_OK, step = SQLITE_DONE;

    if (rc)
        return rc;
    /* Both on one reader connection, but not one snapshot: a success
     * committed in between makes the count read after it 0, which is what
     * the next call would say anyway.  executions_success, then
     * executions_job (bounded by max). */
    rc = sq_prepare(c, SQ_STREAK_LAST,
                    "SELECT id FROM executions INDEXED BY executions_success "
                    "WHERE job_id = ?1 AND status = 'succeeded' ORDER BY id DESC LIMIT 1",
                    &st, err);
    if (rc)
        goto out;
    sq_bind_text(st, 1, job_id, &b);
    step = b == SQLITE_OK ? sqlite3_step(st) : b;
    if (step == SQLITE_ROW)
        rc = sq_col_id(st, 0, last_success_id, "executions", err);
    else if (step != SQLITE_DONE)
        rc = sq_dberr(c->db, step, "reading a job's last success", err);
    sqlite3_reset(st);
    if (rc)
        goto out;
    rc = sq_prepare(c, SQ_STREAK_COUNT,
                    "SELECT count(*) FROM (SELECT 1 FROM executions INDEXED BY executions_job "
                    "WHERE job_id = ?1 AND id > ?2 AND status IN ('failed', 'timed_out') "
                    "LIMIT ?3)",
                    &st, err);
    if (rc)
        goto out;
    sq_bind_text(st, 1, job_id, &b);
    sq_bind_text(st, 2, last_success_id, &b);
    sq_bind_int(st, 3, max, &b);
    step = b == SQLITE_OK ? sqlite3_step(st) : b;
    if (step == SQLITE_ROW)
        *streak = sqlite3_column_int64(st, 0);
    else
        rc = sq_dberr(c->db, step, "counting a job's failures", err);
    sqlite3_reset(st);
out:
    sq_read_end(s, c);
    return rc;
}

int sq_job_absent(aster_store *stp, aster_time_us now, const char *key_prefix, const char *after_id,
                  int limit, aster_job_absence **out, size_t *n, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    aster_job_absence *arr = NULL;
    size_t cnt = 0, cap = 0;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_read_begin(s, &c, err), b = SQLITE_OK, step = SQLITE_DONE;

    if (rc)
        return rc;
    /* jobs_absence, then per job executions_success and alerts_dedupe.
     * `since` is concatenated as decimal text, as the caller formats it. */
    rc = sq_prepare(c, SQ_JOB_ABSENT,
                    "SELECT x.jid, x.ms, x.since FROM (SELECT j.id AS jid, "
                    "j.alert_if_no_success_ms AS ms, coalesce((SELECT e.finished_at "
                    "FROM executions e INDEXED BY executions_success WHERE e.job_id = j.id "
                    "AND e.status = 'succeeded' ORDER BY e.id DESC LIMIT 1), j.created_at) "
                    "AS since FROM jobs j INDEXED BY jobs_absence "
                    "WHERE j.alert_if_no_success_ms > 0 AND j.paused = 0 AND j.id > ?2) x "
                    "WHERE x.since + x.ms * 1000 <= ?1 AND NOT EXISTS (SELECT 1 FROM alerts a "
                    "WHERE a.job_id = x.jid AND a.dedupe_key = ?3 || x.since) "
                    "ORDER BY x.jid LIMIT ?4",
                    &st, err);
    if (rc)
        goto out;
    sq_bind_int(st, 1, now, &b);
    sq_bind_text(st, 2, after_id ? after_id : "", &b);
    sq_bind_text(st, 3, key_prefix, &b);
    sq_bind_int(st, 4, limit, &b);
    while (b == SQLITE_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        arr = sq_grow(arr, cnt, &cap, sizeof(*arr));
        if ((rc = sq_col_id(st, 0, arr[cnt].job_id, "jobs", err)))
            break;
        arr[cnt].no_success_ms = sqlite3_column_int64(st, 1);
        arr[cnt].since = sqlite3_column_int64(st, 2);
        cnt++;
    }
    if (!rc && (b != SQLITE_OK || step != SQLITE_DONE))
        rc = sq_dberr(c->db, b != SQLITE_OK ? b : step, "listing absent jobs", err);
    sqlite3_reset(st);
    if (rc) {
        aster_free(arr);
        goto out;
    }
    *out = arr;
    *n = cnt;
out:
    sq_read_end(s, c);
    return rc;
}

/* ---- retention ----------------------------------------------------------------------- */

int sq_prune_execs_before(aster_store *stp, aster_time_us before, size_t max, size_t *deleted,
                          aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK;

    if (rc)
        return rc;
    /* executions_created; an execution that finished recently (a long
     * retry sequence) stays until its finish is old too. */
    rc = sq_prepare(c, SQ_PRUNE_EXECS_BEFORE,
                    "DELETE FROM executions WHERE id IN (SELECT id FROM executions "
                    "INDEXED BY executions_created WHERE created_at < ?1 "
                    "AND coalesce(finished_at, 0) < ?1 AND status NOT IN ('pending', 'running') "
                    "ORDER BY created_at LIMIT ?2)",
                    &st, err);
    if (!rc) {
        sq_bind_int(st, 1, before, &b);
        sq_bind_int(st, 2, (int64_t)max, &b);
        rc = delete_rows(c, st, b, "pruning old executions", deleted, err);
    }
    return sq_write_end(s, c, rc, err);
}

int sq_prune_execs_keep(aster_store *stp, const char *job_id, int64_t keep, size_t max,
                        size_t *deleted, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK;

    if (rc)
        return rc;
    /* The keep-th newest id is the boundary (NULL when the job has fewer:
     * nothing matches); executions_job walks keep entries to find it. */
    rc = sq_prepare(c, SQ_PRUNE_EXECS_KEEP,
                    "DELETE FROM executions WHERE id IN (SELECT id FROM executions "
                    "INDEXED BY executions_job WHERE job_id = ?1 AND id < (SELECT id "
                    "FROM executions INDEXED BY executions_job WHERE job_id = ?1 "
                    "ORDER BY id DESC LIMIT 1 OFFSET ?2) "
                    "AND status NOT IN ('pending', 'running') ORDER BY id LIMIT ?3)",
                    &st, err);
    if (!rc) {
        sq_bind_text(st, 1, job_id, &b);
        sq_bind_int(st, 2, keep - 1, &b);
        sq_bind_int(st, 3, (int64_t)max, &b);
        rc = delete_rows(c, st, b, "pruning a job's executions", deleted, err);
    }
    return sq_write_end(s, c, rc, err);
}

int sq_prune_alerts_before(aster_store *stp, aster_time_us before, size_t max, size_t *deleted,
                           aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK;

    if (rc)
        return rc;
    rc = sq_prepare(c, SQ_PRUNE_ALERTS,
                    "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts "
                    "INDEXED BY alerts_created WHERE created_at < ?1 "
                    "AND delivery_state <> 'pending' ORDER BY created_at LIMIT ?2)",
                    &st, err);
    if (!rc) {
        sq_bind_int(st, 1, before, &b);
        sq_bind_int(st, 2, (int64_t)max, &b);
        rc = delete_rows(c, st, b, "pruning old alerts", deleted, err);
    }
    return sq_write_end(s, c, rc, err);
}

int sq_exec_max_id(aster_store *stp, char out[ASTER_ID_LEN + 1], aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_read_begin(s, &c, err), step;

    if (rc)
        return rc;
    rc = sq_prepare(c, SQ_EXEC_MAX_ID, "SELECT max(id) FROM executions", &st, err);
    if (!rc) {
        step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            rc = sq_col_id(st, 0, out, "executions", err); /* NULL: "" */
        else
            rc = sq_dberr(c->db, step, "reading the newest execution", err);
        sqlite3_reset(st);
    }
    sq_read_end(s, c);
    return rc;
}

int sq_exec_jobs_after(aster_store *stp, const char *since_id, const char *after_job, int limit,
                       char **ids, size_t *n, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    const size_t w = ASTER_ID_LEN + 1;
    char *arr = NULL;
    size_t cnt = 0;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_read_begin(s, &c, err), b = SQLITE_OK, step = SQLITE_DONE;

    if (rc)
        return rc;
    /* Without a watermark every job qualifies: read the jobs table, not the
     * whole history.  With one, the primary key finds the new rows. */
    if (!since_id)
        rc = sq_prepare(c, SQ_JOBS_ALL, "SELECT id FROM jobs WHERE id > ?2 ORDER BY id LIMIT ?3",
                        &st, err);
    else
        rc = sq_prepare(c, SQ_JOBS_AFTER,
                        "SELECT DISTINCT job_id FROM executions "
                        "INDEXED BY sqlite_autoindex_executions_1 "
                        "WHERE id > ?1 AND job_id > ?2 ORDER BY job_id LIMIT ?3",
                        &st, err);
    if (rc)
        goto out;
    if (since_id)
        sq_bind_text(st, 1, since_id, &b);
    sq_bind_text(st, 2, after_job ? after_job : "", &b);
    sq_bind_int(st, 3, limit, &b);
    arr = aster_malloc((size_t)limit * w);
    while (b == SQLITE_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = sq_col_id(st, 0, arr + cnt * w, "executions", err)))
            break;
        cnt++;
    }
    if (!rc && (b != SQLITE_OK || step != SQLITE_DONE))
        rc = sq_dberr(c->db, b != SQLITE_OK ? b : step, "listing jobs with new executions", err);
    sqlite3_reset(st);
    if (rc) {
        aster_free(arr);
        goto out;
    }
    *ids = arr;
    *n = cnt;
out:
    sq_read_end(s, c);
    return rc;
}
