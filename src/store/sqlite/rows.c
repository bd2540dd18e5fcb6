/* rows.c — jobs, executions and alerts as SQLite rows.
 *
 * Parameter numbers follow the column lists below (?1 is the first column),
 * so that one bind function serves INSERT and UPDATE alike.  Row decoding
 * is strict: a row holding an enum name this binary cannot parse is
 * reported as ASTER_EIO rather than read as some default. */
#include "store/sqlite/sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"
#include "util/uuid.h"

#define FIELD "store"

/* ---- binding and decoding helpers ------------------------------------------ */

/* Bind results are folded into one code: binds only fail on absurd sizes,
 * and the step that follows reports the statement's own failure. */
void sq_bind_text(sqlite3_stmt *st, int i, const char *s, int *rc)
{
    int r = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
    if (*rc == SQLITE_OK)
        *rc = r;
}

void sq_bind_int(sqlite3_stmt *st, int i, int64_t v, int *rc)
{
    int r = sqlite3_bind_int64(st, i, v);
    if (*rc == SQLITE_OK)
        *rc = r;
}

/* Optional time: 0 (absent) is NULL. */
void sq_bind_time(sqlite3_stmt *st, int i, aster_time_us t, int *rc)
{
    int r = t ? sqlite3_bind_int64(st, i, t) : sqlite3_bind_null(st, i);
    if (*rc == SQLITE_OK)
        *rc = r;
}

/* Number that may not apply: -1 is NULL. */
static void bind_opt(sqlite3_stmt *st, int i, int64_t v, int *rc)
{
    int r = v == -1 ? sqlite3_bind_null(st, i) : sqlite3_bind_int64(st, i, v);
    if (*rc == SQLITE_OK)
        *rc = r;
}

static char *col_str(sqlite3_stmt *st, int i)
{
    return aster_strdup((const char *)sqlite3_column_text(st, i)); /* NULL stays NULL */
}

static int64_t col_opt(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

static int corrupt(const char *table, const char *col, const char *val, aster_err *err)
{
    return aster_err_set(err, ASTER_EIO, FIELD, "unreadable row in %s: %s is '%.64s'", table, col,
                         val ? val : "NULL");
}

/* Copies an id column into a fixed buffer; NULL gives "". */
int sq_col_id(sqlite3_stmt *st, int i, char out[ASTER_ID_LEN + 1], const char *table,
              aster_err *err)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    size_t len = s ? strlen(s) : 0;

    if (len > ASTER_ID_LEN)
        return corrupt(table, sqlite3_column_name(st, i), s, err);
    memcpy(out, s ? s : "", len);
    out[len] = '\0';
    return 0;
}

static int col_enum(sqlite3_stmt *st, int i, int (*parse)(const char *), int *out,
                    const char *table, aster_err *err)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    int v = parse(s);

    if (v < 0)
        return corrupt(table, sqlite3_column_name(st, i), s, err);
    *out = v;
    return 0;
}

/* Steps a write statement to completion and resets it. */
int sq_step_done(sq_conn *c, sqlite3_stmt *st, int bind_rc, const char *what, aster_err *err)
{
    int rc = bind_rc == SQLITE_OK ? sqlite3_step(st) : bind_rc;

    rc = rc == SQLITE_DONE ? 0 : sq_dberr(c->db, rc, what, err);
    sqlite3_reset(st);
    return rc;
}

/* Grows a result array by doubling; *cap 0 means nothing allocated yet. */
void *sq_grow(void *arr, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return arr;
    *cap = *cap ? *cap * 2 : 16;
    return aster_realloc(arr, *cap * size);
}

/* ---- jobs -------------------------------------------------------------------- */

#define JOB_COLS                                                                                   \
    "id, name, schedule, timezone, delivery, target_kind, target, max_retries, "                   \
    "retry_backoff_ms, retry_backoff_max_ms, timeout_ms, overlap, misfire, misfire_grace_ms, "     \
    "dst_gap, dst_overlap, paused, alert_webhook, alert_after_failures, "                          \
    "alert_if_no_success_ms, next_fire_at, created_at, updated_at, version"

static int bind_job(sqlite3_stmt *st, const aster_job *j)
{
    int rc = SQLITE_OK;

    sq_bind_text(st, 1, j->id, &rc);
    sq_bind_text(st, 2, j->name, &rc);
    sq_bind_text(st, 3, j->schedule, &rc);
    sq_bind_text(st, 4, j->timezone, &rc);
    sq_bind_text(st, 5, aster_delivery_name(j->delivery), &rc);
    sq_bind_text(st, 6, aster_target_kind_name(j->target_kind), &rc);
    sq_bind_text(st, 7, j->target, &rc);
    sq_bind_int(st, 8, j->max_retries, &rc);
    sq_bind_int(st, 9, j->retry_backoff_ms, &rc);
    sq_bind_int(st, 10, j->retry_backoff_max_ms, &rc);
    sq_bind_int(st, 11, j->timeout_ms, &rc);
    sq_bind_text(st, 12, aster_overlap_name(j->overlap), &rc);
    sq_bind_text(st, 13, aster_misfire_name(j->misfire), &rc);
    sq_bind_int(st, 14, j->misfire_grace_ms, &rc);
    sq_bind_int(st, 15, j->dst_gap, &rc);
    sq_bind_int(st, 16, j->dst_overlap, &rc);
    sq_bind_int(st, 17, j->paused ? 1 : 0, &rc);
    sq_bind_text(st, 18, j->alert_webhook, &rc);
    sq_bind_int(st, 19, j->alert_after_failures, &rc);
    sq_bind_int(st, 20, j->alert_if_no_success_ms, &rc);
    sq_bind_time(st, 21, j->next_fire_at, &rc);
    sq_bind_int(st, 22, j->created_at, &rc);
    sq_bind_int(st, 23, j->updated_at, &rc);
    sq_bind_int(st, 24, j->version, &rc);
    return rc;
}

/* Decodes the current row (JOB_COLS) into *out, which holds nothing owned;
 * on failure *out is left holding nothing owned. */
static int read_job(sqlite3_stmt *st, aster_job *out, aster_err *err)
{
    aster_job j;
    int rc, delivery = 0, kind = 0, overlap = 0, misfire = 0;

    aster_job_init(&j);
    if ((rc = sq_col_id(st, 0, j.id, "jobs", err)) ||
        (rc = col_enum(st, 4, aster_delivery_parse, &delivery, "jobs", err)) ||
        (rc = col_enum(st, 5, aster_target_kind_parse, &kind, "jobs", err)) ||
        (rc = col_enum(st, 11, aster_overlap_parse, &overlap, "jobs", err)) ||
        (rc = col_enum(st, 12, aster_misfire_parse, &misfire, "jobs", err)))
        return rc;
    j.name = col_str(st, 1);
    j.schedule = col_str(st, 2);
    j.timezone = col_str(st, 3);
    j.delivery = (aster_delivery)delivery;
    j.target_kind = (aster_target_kind)kind;
    j.target = col_str(st, 6);
    j.max_retries = sqlite3_column_int(st, 7);
    j.retry_backoff_ms = sqlite3_column_int64(st, 8);
    j.retry_backoff_max_ms = sqlite3_column_int64(st, 9);
    j.timeout_ms = sqlite3_column_int64(st, 10);
    j.overlap = (aster_overlap)overlap;
    j.misfire = (aster_misfire)misfire;
    j.misfire_grace_ms = sqlite3_column_int64(st, 13);
    j.dst_gap = sqlite3_column_int(st, 14);
    j.dst_overlap = sqlite3_column_int(st, 15);
    j.paused = sqlite3_column_int(st, 16) != 0;
    j.alert_webhook = col_str(st, 17);
    j.alert_after_failures = sqlite3_column_int(st, 18);
    j.alert_if_no_success_ms = sqlite3_column_int64(st, 19);
    j.next_fire_at = sqlite3_column_int64(st, 20); /* NULL reads as 0 */
    j.created_at = sqlite3_column_int64(st, 21);
    j.updated_at = sqlite3_column_int64(st, 22);
    j.version = sqlite3_column_int64(st, 23);
    *out = j;
    return 0;
}

/* Maps a failed job write: the name and the id are the unique keys. */
static int job_write_err(sq_conn *c, int rc, const aster_job *job, aster_err *err)
{
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        return aster_err_set(err, ASTER_EEXIST, "name", "a job named '%.100s' already exists",
                             job->name);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return aster_err_set(err, ASTER_EEXIST, "id", "a job with id %s already exists", job->id);
    return sq_dberr(c->db, rc, "writing a job", err);
}

static int insert_row(sq_conn *c, const aster_job *job, aster_err *err)
{
    sqlite3_stmt *st;
    int rc = sq_prepare(c, SQ_JOB_INSERT,
                        "INSERT INTO jobs (" JOB_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                        "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, "
                        "?23, ?24)",
                        &st, err);
    if (!rc) {
        int b = bind_job(st, job), step = b == SQLITE_OK ? sqlite3_step(st) : b;
        rc = step == SQLITE_DONE ? 0 : job_write_err(c, step, job, err);
        sqlite3_reset(st);
    }
    return rc;
}

int sq_job_insert(aster_store *stp, const aster_job *job, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err);

    if (rc)
        return rc;
    return sq_write_end(s, c, insert_row(c, job, err), err);
}

/* One write, and one commit, for all.  A name in use fails that INSERT
 * alone: SQLite undoes a failed statement, not its transaction.  An error
 * that loses the transaction (I/O, disk full) ends the loop, and the
 * commit's failure then reaches every row written before it. */
void sq_job_insert_many(aster_store *stp, const aster_job *const *jobs, size_t n, int *rcs,
                        aster_err *errs)
{
    sq_store *s = (sq_store *)stp;
    aster_err err = {0};
    sq_conn *c;
    int rc = sq_write_begin(s, &c, &err);

    for (size_t i = 0; i < n; i++) {
        errs[i] = (aster_err){0};
        rcs[i] = rc;
        if (rc)
            errs[i] = err;
        else if (sqlite3_get_autocommit(c->db))
            rcs[i] = aster_err_set(&errs[i], ASTER_EIO, "store",
                                   "the write's transaction was lost to an earlier error");
        else
            rcs[i] = insert_row(c, jobs[i], &errs[i]);
    }
    if (rc)
        return;
    /* The commit's failure is every written row's. */
    if ((rc = sq_write_end(s, c, 0, &err)))
        for (size_t i = 0; i < n; i++)
            if (!rcs[i]) {
                rcs[i] = rc;
                errs[i] = err;
            }
}

int sq_job_get(aster_store *stp, const char *key, aster_job *out, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    bool by_id = aster_uuid_is_uuid(key);
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_read_begin(s, &c, err), step;

    if (rc)
        return rc;
    if (by_id)
        rc = sq_prepare(c, SQ_JOB_GET_ID, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1", &st, err);
    else
        rc = sq_prepare(c, SQ_JOB_GET_NAME, "SELECT " JOB_COLS " FROM jobs WHERE name = ?1", &st,
                        err);
    if (rc)
        goto out;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = read_job(st, out, err);
    else if (step == SQLITE_DONE)
        rc = aster_err_set(err, ASTER_ENOENT, "id", "no job with %s '%.100s'",
                           by_id ? "id" : "name", key);
    else
        rc = sq_dberr(c->db, step, "reading a job", err);
    sqlite3_reset(st);
out:
    sq_read_end(s, c);
    return rc;
}

/* After an UPDATE matched nothing: was the job gone, or changed? */
static int job_missed(sq_conn *c, const aster_job *job, int64_t expect, aster_err *err)
{
    sqlite3_stmt *st;
    int rc = sq_prepare(c, SQ_JOB_VERSION, "SELECT version FROM jobs WHERE id = ?1", &st, err);
    int step;

    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, job->id, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = aster_err_set(err, ASTER_ECONFLICT, "version",
                           "job %s was changed meanwhile (version %lld, expected %lld)", job->id,
                           (long long)sqlite3_column_int64(st, 0), (long long)expect);
    else if (step == SQLITE_DONE)
        rc = aster_err_set(err, ASTER_ENOENT, "id", "no job with id '%s'", job->id);
    else
        rc = sq_dberr(c->db, step, "reading a job", err);
    sqlite3_reset(st);
    return rc;
}

int sq_job_update(aster_store *stp, const aster_job *job, int64_t expect_version, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err);

    if (rc)
        return rc;
    rc = sq_prepare(c, SQ_JOB_UPDATE,
                    "UPDATE jobs SET name = ?2, schedule = ?3, timezone = ?4, delivery = ?5, "
                    "target_kind = ?6, target = ?7, max_retries = ?8, retry_backoff_ms = ?9, "
                    "retry_backoff_max_ms = ?10, timeout_ms = ?11, overlap = ?12, misfire = ?13, "
                    "misfire_grace_ms = ?14, dst_gap = ?15, dst_overlap = ?16, paused = ?17, "
                    "alert_webhook = ?18, alert_after_failures = ?19, "
                    "alert_if_no_success_ms = ?20, next_fire_at = ?21, created_at = ?22, "
                    "updated_at = ?23, version = ?24 "
                    "WHERE id = ?1 AND (?25 <= 0 OR version = ?25)",
                    &st, err);
    if (!rc) {
        int b = bind_job(st, job), step;
        sq_bind_int(st, 25, expect_version, &b);
        step = b == SQLITE_OK ? sqlite3_step(st) : b;
        if (step != SQLITE_DONE)
            rc = job_write_err(c, step, job, err);
        sqlite3_reset(st);
        if (!rc && sqlite3_changes(c->db) == 0)
            rc = job_missed(c, job, expect_version, err);
    }
    return sq_write_end(s, c, rc, err);
}

int sq_job_delete(aster_store *stp, const char *id, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err);

    if (rc)
        return rc;
    /* Executions and alerts go with it (ON DELETE CASCADE), in this
     * transaction. */
    rc = sq_prepare(c, SQ_JOB_DELETE, "DELETE FROM jobs WHERE id = ?1", &st, err);
    if (!rc) {
        int b = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sq_step_done(c, st, b, "deleting a job", err);
    }
    if (!rc && sqlite3_changes(c->db) == 0)
        rc = aster_err_set(err, ASTER_ENOENT, "id", "no job with id '%s'", id);
    return sq_write_end(s, c, rc, err);
}

/* The smallest string greater than every string starting with `p`, for a
 * range scan `name >= p AND name < upper` on the name index (BINARY
 * collation compares bytes, so this is exact and has no wildcards).
 * Returns its length, or 0 when there is none (p is all 0xff bytes). */
static size_t prefix_upper(const char *p, char *buf)
{
    size_t len = strlen(p);

    memcpy(buf, p, len);
    while (len > 0 && (unsigned char)buf[len - 1] == 0xff)
        len--;
    if (len > 0)
        buf[len - 1] = (char)((unsigned char)buf[len - 1] + 1);
    return len;
}

enum { JF_PAUSED = 1, JF_LO = 2, JF_HI = 4, JF_AFTER = 8 };

static const char *job_list_sql(int mask, char *sql, size_t cap)
{
    snprintf(sql, cap, "SELECT " JOB_COLS " FROM jobs WHERE 1%s%s%s%s ORDER BY id LIMIT ?5",
             mask & JF_PAUSED ? " AND paused = ?1" : "", mask & JF_LO ? " AND name >= ?2" : "",
             mask & JF_HI ? " AND name < ?3" : "", mask & JF_AFTER ? " AND id > ?4" : "");
    return sql;
}

/* Runs a prepared list statement and decodes each row with `read`. */
typedef int (*read_row_fn)(sqlite3_stmt *st, void *out, aster_err *err);

static int collect(sq_conn *c, sqlite3_stmt *st, read_row_fn read, size_t size,
                   void (*fini)(void *), void **out, size_t *n, aster_err *err)
{
    char *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0, step;

    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        arr = sq_grow(arr, cnt, &cap, size);
        if ((rc = read(st, arr + cnt * size, err)))
            break;
        cnt++;
    }
    if (!rc && step != SQLITE_DONE)
        rc = sq_dberr(c->db, step, "listing", err);
    sqlite3_reset(st);
    if (rc) {
        for (size_t i = 0; i < cnt; i++)
            fini(arr + i * size);
        aster_free(arr);
        return rc;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

static int read_job_row(sqlite3_stmt *st, void *out, aster_err *err)
{
    return read_job(st, out, err);
}

static void fini_job(void *p)
{
    aster_job_fini(p);
}

int sq_job_list(aster_store *stp, const aster_job_filter *f, aster_job **out, size_t *n,
                aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    char *upper = NULL, buf[1024];
    const char *sql = NULL;
    void *arr = NULL;
    size_t ulen = 0;
    int mask = 0, rc, b = SQLITE_OK;
    sqlite3_stmt *st;
    sq_conn *c;

    if (f->paused >= 0)
        mask |= JF_PAUSED;
    if (f->name_prefix && *f->name_prefix) {
        mask |= JF_LO;
        upper = aster_malloc(strlen(f->name_prefix) + 1);
        ulen = prefix_upper(f->name_prefix, upper);
        if (ulen > 0)
            mask |= JF_HI;
    }
    if (f->after_id)
        mask |= JF_AFTER;
    if ((rc = sq_read_begin(s, &c, err))) {
        aster_free(upper);
        return rc;
    }
    if (!sq_cached(c, SQ_JOB_LIST + mask))
        sql = job_list_sql(mask, buf, sizeof(buf));
    if ((rc = sq_prepare(c, SQ_JOB_LIST + mask, sql, &st, err)))
        goto out;
    if (mask & JF_PAUSED)
        sq_bind_int(st, 1, f->paused, &b);
    if (mask & JF_LO)
        sq_bind_text(st, 2, f->name_prefix, &b);
    if ((mask & JF_HI) && b == SQLITE_OK)
        b = sqlite3_bind_text(st, 3, upper, (int)ulen, SQLITE_STATIC);
    if (mask & JF_AFTER)
        sq_bind_text(st, 4, f->after_id, &b);
    sq_bind_int(st, 5, f->limit, &b);
    if (b != SQLITE_OK) {
        rc = sq_dberr(c->db, b, "listing jobs", err);
        goto out;
    }
    rc = collect(c, st, read_job_row, sizeof(aster_job), fini_job, &arr, n, err);
    if (!rc)
        *out = arr;
out:
    sq_read_end(s, c);
    aster_free(upper);
    return rc;
}

int sq_job_count(aster_store *stp, int64_t *active, int64_t *paused, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_read_begin(s, &c, err), step;

    if (rc)
        return rc;
    rc = sq_prepare(c, SQ_JOB_COUNT,
                    "SELECT coalesce(sum(paused = 0), 0), coalesce(sum(paused <> 0), 0) FROM jobs",
                    &st, err);
    if (!rc) {
        step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            *active = sqlite3_column_int64(st, 0);
            *paused = sqlite3_column_int64(st, 1);
        } else {
            rc = sq_dberr(c->db, step, "counting jobs", err);
        }
        sqlite3_reset(st);
    }
    sq_read_end(s, c);
    return rc;
}

/* ---- executions -------------------------------------------------------------- */

/* The immutable columns first, so that UPDATE binds ?1 and ?6..?18 with the
 * same function as INSERT. */
#define EXEC_COLS                                                                                  \
    "id, job_id, scheduled_at, \"trigger\", created_at, status, attempt, not_before, "             \
    "claimed_by, lease_until, started_at, finished_at, duration_ms, drift_ms, http_status, "       \
    "exit_code, error, output"

static int bind_exec(sqlite3_stmt *st, const aster_exec *e)
{
    int rc = SQLITE_OK;

    sq_bind_text(st, 1, e->id, &rc);
    sq_bind_text(st, 2, e->job_id, &rc);
    sq_bind_int(st, 3, e->scheduled_at, &rc);
    sq_bind_text(st, 4, aster_trigger_name(e->trigger), &rc);
    sq_bind_int(st, 5, e->created_at, &rc);
    sq_bind_text(st, 6, aster_exec_status_name(e->status), &rc);
    sq_bind_int(st, 7, e->attempt, &rc);
    sq_bind_int(st, 8, e->not_before, &rc);
    sq_bind_text(st, 9, e->claimed_by, &rc);
    sq_bind_time(st, 10, e->lease_until, &rc);
    sq_bind_time(st, 11, e->started_at, &rc);
    sq_bind_time(st, 12, e->finished_at, &rc);
    bind_opt(st, 13, e->duration_ms, &rc);
    bind_opt(st, 14, e->drift_ms, &rc);
    bind_opt(st, 15, e->http_status, &rc);
    bind_opt(st, 16, e->exit_code, &rc);
    sq_bind_text(st, 17, e->error, &rc);
    sq_bind_text(st, 18, e->output, &rc);
    return rc;
}

static int read_exec(sqlite3_stmt *st, aster_exec *out, aster_err *err)
{
    aster_exec e;
    int rc, trigger = 0, status = 0;

    aster_exec_init(&e);
    if ((rc = sq_col_id(st, 0, e.id, "executions", err)) ||
        (rc = sq_col_id(st, 1, e.job_id, "executions", err)) ||
        (rc = col_enum(st, 3, aster_trigger_parse, &trigger, "executions", err)) ||
        (rc = col_enum(st, 5, aster_exec_status_parse, &status, "executions", err)))
        return rc;
    e.scheduled_at = sqlite3_column_int64(st, 2);
    e.trigger = (aster_trigger)trigger;
    e.created_at = sqlite3_column_int64(st, 4);
    e.status = (aster_exec_status)status;
    e.attempt = sqlite3_column_int(st, 6);
    e.not_before = sqlite3_column_int64(st, 7);
    e.claimed_by = col_str(st, 8);
    e.lease_until = sqlite3_column_int64(st, 9);
    e.started_at = sqlite3_column_int64(st, 10);
    e.finished_at = sqlite3_column_int64(st, 11);
    e.duration_ms = col_opt(st, 12);
    e.drift_ms = col_opt(st, 13);
    e.http_status = (int32_t)col_opt(st, 14);
    e.exit_code = (int32_t)col_opt(st, 15);
    e.error = col_str(st, 16);
    e.output = col_str(st, 17);
    *out = e;
    return 0;
}

static int exec_write_err(sq_conn *c, int rc, const aster_exec *e, aster_err *err)
{
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return aster_err_set(err, ASTER_ENOENT, "job_id", "no job with id '%s'", e->job_id);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return aster_err_set(err, ASTER_EEXIST, "id", "an execution with id %s already exists",
                             e->id);
    return sq_dberr(c->db, rc, "writing an execution", err);
}

int sq_exec_insert(aster_store *stp, const aster_exec *execs, size_t n, bool *written,
                   aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err);

    if (rc)
        return rc;
    /* The conflict target names the partial unique index of fires, so that
     * only a repeated fire is skipped; a repeated id is still an error. */
    rc = sq_prepare(c, SQ_EXEC_INSERT,
                    "INSERT INTO executions (" EXEC_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                    "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) "
                    "ON CONFLICT (job_id, scheduled_at) WHERE \"trigger\" <> 'manual' DO NOTHING",
                    &st, err);
    for (size_t i = 0; !rc && i < n; i++) {
        int b = bind_exec(st, &execs[i]), step = b == SQLITE_OK ? sqlite3_step(st) : b;
        if (step == SQLITE_DONE) {
            if (written)
                written[i] = sqlite3_changes(c->db) > 0;
        } else {
            rc = exec_write_err(c, step, &execs[i], err);
        }
        sqlite3_reset(st);
    }
    rc = sq_write_end(s, c, rc, err);
    for (size_t i = 0; rc && written && i < n; i++)
        written[i] = false; /* rolled back */
    return rc;
}

int sq_exec_get(aster_store *stp, const char *id, aster_exec *out, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_read_begin(s, &c, err), step;

    if (rc)
        return rc;
    rc = sq_prepare(c, SQ_EXEC_GET, "SELECT " EXEC_COLS " FROM executions WHERE id = ?1", &st, err);
    if (!rc) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            rc = read_exec(st, out, err);
        else if (step == SQLITE_DONE)
            rc = aster_err_set(err, ASTER_ENOENT, "id", "no execution with id '%s'", id);
        else
            rc = sq_dberr(c->db, step, "reading an execution", err);
        sqlite3_reset(st);
    }
    sq_read_end(s, c);
    return rc;
}

int sq_exec_update(aster_store *stp, const aster_exec *ex, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err);

    if (rc)
        return rc;
    rc = sq_prepare(c, SQ_EXEC_UPDATE,
                    "UPDATE executions SET status = ?6, attempt = ?7, not_before = ?8, "
                    "claimed_by = ?9, lease_until = ?10, started_at = ?11, finished_at = ?12, "
                    "duration_ms = ?13, drift_ms = ?14, http_status = ?15, exit_code = ?16, "
                    "error = ?17, output = ?18 WHERE id = ?1",
                    &st, err);
    if (!rc)
        rc = sq_step_done(c, st, bind_exec(st, ex), "updating an execution", err);
    if (!rc && sqlite3_changes(c->db) == 0)
        rc = aster_err_set(err, ASTER_ENOENT, "id", "no execution with id '%s'", ex->id);
    return sq_write_end(s, c, rc, err);
}

enum { XF_JOB = 1, XF_STATUS = 2, XF_SINCE = 4, XF_BEFORE = 8 };

static int read_exec_row(sqlite3_stmt *st, void *out, aster_err *err)
{
    return read_exec(st, out, err);
}

static void fini_exec(void *p)
{
    aster_exec_fini(p);
}

int sq_exec_list(aster_store *stp, const aster_exec_filter *f, aster_exec **out, size_t *n,
                 aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    int mask = (f->job_id ? XF_JOB : 0) | (f->status >= 0 ? XF_STATUS : 0) |
               (f->since ? XF_SINCE : 0) | (f->before_id ? XF_BEFORE : 0);
    int rc, b = SQLITE_OK;
    char buf[1024];
    const char *sql = NULL;
    void *arr = NULL;
    sqlite3_stmt *st;
    sq_conn *c;

    if ((rc = sq_read_begin(s, &c, err)))
        return rc;
    if (!sq_cached(c, SQ_EXEC_LIST + mask)) {
        snprintf(buf, sizeof(buf),
                 "SELECT " EXEC_COLS " FROM executions WHERE 1%s%s%s%s ORDER BY id DESC LIMIT ?5",
                 mask & XF_JOB ? " AND job_id = ?1" : "",
                 mask & XF_STATUS ? " AND status = ?2" : "",
                 mask & XF_SINCE ? " AND scheduled_at >= ?3" : "",
                 mask & XF_BEFORE ? " AND id < ?4" : "");
        sql = buf;
    }
    if ((rc = sq_prepare(c, SQ_EXEC_LIST + mask, sql, &st, err)))
        goto out;
    if (mask & XF_JOB)
        sq_bind_text(st, 1, f->job_id, &b);
    if (mask & XF_STATUS)
        sq_bind_text(st, 2, aster_exec_status_name((aster_exec_status)f->status), &b);
    if (mask & XF_SINCE)
        sq_bind_int(st, 3, f->since, &b);
    if (mask & XF_BEFORE)
        sq_bind_text(st, 4, f->before_id, &b);
    sq_bind_int(st, 5, f->limit, &b);
    if (b != SQLITE_OK) {
        rc = sq_dberr(c->db, b, "listing executions", err);
        goto out;
    }
    rc = collect(c, st, read_exec_row, sizeof(aster_exec), fini_exec, &arr, n, err);
    if (!rc)
        *out = arr;
out:
    sq_read_end(s, c);
    return rc;
}

/* ---- the engine's operations --------------------------------------------------- */

int sq_job_set_next(aster_store *stp, const char *id, aster_time_us next_fire_at, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK;

    if (rc)
        return rc;
    /* version and updated_at stay: this is the scheduler's bookkeeping, and
     * must not make a user's concurrent update conflict. */
    rc =
        sq_prepare(c, SQ_JOB_SET_NEXT, "UPDATE jobs SET next_fire_at = ?2 WHERE id = ?1", &st, err);
    if (!rc) {
        sq_bind_text(st, 1, id, &b);
        sq_bind_time(st, 2, next_fire_at, &b);
        rc = sq_step_done(c, st, b, "updating a job's next fire", err);
    }
    if (!rc && sqlite3_changes(c->db) == 0)
        rc = aster_err_set(err, ASTER_ENOENT, "id", "no job with id '%s'", id);
    return sq_write_end(s, c, rc, err);
}

static int by_due(const void *a, const void *b)
{
    const aster_exec *x = a, *y = b;

    if (x->not_before != y->not_before)
        return x->not_before < y->not_before ? -1 : 1;
    return strcmp(x->id, y->id);
}

int sq_exec_claim(aster_store *stp, const char *owner, aster_time_us now, aster_time_us lease_until,
                  size_t max, aster_exec **out, size_t *n, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    void *arr = NULL;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK;

    if (rc)
        return rc;
    /* INDEXED BY: without statistics the planner prefers the status index
     * and sorts every pending row; the queue index is already in order.
     * Claiming is starting: started_at is now.  Drift is the lateness of
     * the first start against the schedule, so a retry keeps it (its wait
     * is the backoff, not lateness); never below 0, since -1 means "not
     * started". */
    rc = sq_prepare(c, SQ_EXEC_CLAIM,
                    "UPDATE executions SET status = 'running', claimed_by = ?1, "
                    "lease_until = ?2, started_at = ?3, "
                    "drift_ms = coalesce(drift_ms, max(0, (?3 - scheduled_at) / 1000)) "
                    "WHERE id IN (SELECT id FROM executions INDEXED BY executions_queue "
                    "WHERE status = 'pending' "
                    "AND not_before <= ?3 ORDER BY not_before, id LIMIT ?4) "
                    "RETURNING " EXEC_COLS,
                    &st, err);
    if (!rc) {
        sq_bind_text(st, 1, owner, &b);
        sq_bind_int(st, 2, lease_until, &b);
        sq_bind_int(st, 3, now, &b);
        sq_bind_int(st, 4, (int64_t)max, &b);
        if (b != SQLITE_OK)
            rc = sq_dberr(c->db, b, "claiming executions", err);
    }
    if (!rc)
        rc = collect(c, st, read_exec_row, sizeof(aster_exec), fini_exec, &arr, n, err);
    rc = sq_write_end(s, c, rc, err);
    if (rc) {
        aster_store_free_execs(arr, *n);
        *n = 0;
        return rc;
    }
    /* RETURNING gives rows in no promised order. */
    if (*n > 1)
        qsort(arr, *n, sizeof(aster_exec), by_due);
    *out = arr;
    return 0;
}

int sq_exec_extend(aster_store *stp, const char *owner, aster_time_us lease_until, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK;

    if (rc)
        return rc;
    rc = sq_prepare(c, SQ_EXEC_EXTEND,
                    "UPDATE executions SET lease_until = ?2 "
                    "WHERE status = 'running' AND claimed_by = ?1",
                    &st, err);
    if (!rc) {
        sq_bind_text(st, 1, owner, &b);
        sq_bind_int(st, 2, lease_until, &b);
        rc = sq_step_done(c, st, b, "extending leases", err);
    }
    return sq_write_end(s, c, rc, err);
}

/* One half of reclaim: the running rows of jobs with `delivery` whose lease
 * ended or whose claimer fell silent, not held by keep (NULL: anyone's).  A running row without a
 * lease breaks the invariant; it counts as expired rather than stuck forever. */
#define RECLAIM_WHERE                                                                              \
    " WHERE status = 'running' AND (coalesce(lease_until, 0) < ?1 "                                \
    "OR claimed_by IN (SELECT id FROM nodes WHERE heartbeat_at < ?5)) "                            \
    "AND (?2 IS NULL OR claimed_by IS NOT ?2) "                                                    \
    "AND EXISTS (SELECT 1 FROM jobs WHERE jobs.id = executions.job_id AND delivery = ?3)"
/* The same rows, whatever their job's delivery (?3 bound but unused). */
#define RECLAIM_WHERE_ANY                                                                          \
    " WHERE status = 'running' AND (coalesce(lease_until, 0) < ?1 "                                \
    "OR claimed_by IN (SELECT id FROM nodes WHERE heartbeat_at < ?5)) "                            \
    "AND (?2 IS NULL OR claimed_by IS NOT ?2) AND ?3 IS NOT NULL"

static int reclaim_step(sq_conn *c, int slot, const char *sql, const char *keep,
                        aster_time_us expired_before, aster_time_us dead_before, aster_time_us now,
                        aster_delivery d, size_t *count, aster_err *err)
{
    sqlite3_stmt *st;
    int rc = sq_prepare(c, slot, sql, &st, err), b = SQLITE_OK;

    if (rc)
        return rc;
    sq_bind_int(st, 1, expired_before, &b);
    sq_bind_text(st, 2, keep, &b);
    sq_bind_text(st, 3, aster_delivery_name(d), &b);
    sq_bind_int(st, 4, now, &b);
    sq_bind_int(st, 5, dead_before, &b);
    rc = sq_step_done(c, st, b, "reclaiming executions", err);
    if (!rc)
        *count = (size_t)sqlite3_changes(c->db);
    return rc;
}

int sq_exec_reclaim(aster_store *stp, const char *keep_owner, aster_time_us expired_before,
                    aster_time_us dead_before, aster_time_us now, size_t *retried, size_t *failed,
                    aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err);

    if (rc)
        return rc;
    /* The lost attempts join the history first (?3 matches every job:
     * both deliveries are taken back), then each half changes its rows.
     * started_at and drift_ms stay: the attempt that was lost did start. */
    size_t lost = 0;
    rc = reclaim_step(c, SQ_EXEC_RECLAIM_LOST,
                      "INSERT OR IGNORE INTO attempts (execution_id, attempt, status, started_at, "
                      "finished_at, duration_ms, error) "
                      "SELECT id, attempt, 'failed', started_at, ?4, (?4 - started_at) / 1000, "
                      "'lost: executor died' FROM executions" RECLAIM_WHERE_ANY,
                      keep_owner, expired_before, dead_before, now, ASTER_DELIVERY_ATLEAST_ONCE,
                      &lost, err);
    if (!rc)
        rc = reclaim_step(c, SQ_EXEC_RECLAIM_RETRY,
                          "UPDATE executions SET status = 'pending', attempt = attempt + 1, "
                          "not_before = ?4, claimed_by = NULL, lease_until = NULL" RECLAIM_WHERE,
                          keep_owner, expired_before, dead_before, now, ASTER_DELIVERY_ATLEAST_ONCE,
                          retried, err);
    if (!rc)
        rc = reclaim_step(c, SQ_EXEC_RECLAIM_FAIL,
                          "UPDATE executions SET status = 'failed', finished_at = ?4, "
                          "duration_ms = (?4 - started_at) / 1000, "
                          "error = 'lost: executor died', claimed_by = NULL, "
                          "lease_until = NULL" RECLAIM_WHERE,
                          keep_owner, expired_before, dead_before, now, ASTER_DELIVERY_ATMOST_ONCE,
                          failed, err);
    return sq_write_end(s, c, rc, err);
}

int sq_read_int64(sq_store *s, int slot, const char *sql, const char *text, int64_t num,
                  const char *what, int64_t *out, aster_err *err)
{
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_read_begin(s, &c, err), b = SQLITE_OK, step;

    if (rc)
        return rc;
    rc = sq_prepare(c, slot, sql, &st, err);
    if (!rc) {
        if (sqlite3_bind_parameter_count(st) > 0) {
            if (text)
                sq_bind_text(st, 1, text, &b);
            else
                sq_bind_int(st, 1, num, &b);
        }
        step = b == SQLITE_OK ? sqlite3_step(st) : b;
        if (step == SQLITE_ROW)
            *out = sqlite3_column_int64(st, 0); /* NULL reads as 0 */
        else
            rc = sq_dberr(c->db, step, what, err);
        sqlite3_reset(st);
    }
    sq_read_end(s, c);
    return rc;
}

int sq_exec_next_due(aster_store *stp, aster_time_us *out, aster_err *err)
{
    /* 0 means "none", so a row due at 0 (the epoch: at once) reads as 1.
     * max() of NULL is NULL: no pending row stays 0. */
    return sq_read_int64((sq_store *)stp, SQ_EXEC_NEXT_DUE,
                         "SELECT max(min(not_before), 1) FROM executions "
                         "INDEXED BY executions_queue WHERE status = 'pending'",
                         NULL, 0, "reading the queue", out, err);
}

int sq_exec_count(aster_store *stp, const char *status, int64_t *out, aster_err *err)
{
    return sq_read_int64((sq_store *)stp, SQ_EXEC_COUNT,
                         "SELECT count(*) FROM executions WHERE status = ?1", status, 0,
                         "counting executions", out, err);
}

int sq_queue_depth(aster_store *stp, aster_time_us now, int64_t *out, aster_err *err)
{
    return sq_read_int64((sq_store *)stp, SQ_QUEUE_DEPTH,
                         "SELECT count(*) FROM executions INDEXED BY executions_queue "
                         "WHERE status = 'pending' AND not_before <= ?1",
                         NULL, now, "reading the queue", out, err);
}

int sq_attempt_insert(aster_store *stp, const aster_attempt *a, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK, step;

    if (rc)
        return rc;
    rc = sq_prepare(c, SQ_ATTEMPT_INSERT,
                    "INSERT INTO attempts (execution_id, attempt, status, started_at, "
                    "finished_at, duration_ms, http_status, exit_code, error) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    &st, err);
    if (!rc) {
        sq_bind_text(st, 1, a->execution_id, &b);
        sq_bind_int(st, 2, a->attempt, &b);
        sq_bind_text(st, 3, aster_exec_status_name(a->status), &b);
        sq_bind_time(st, 4, a->started_at, &b);
        sq_bind_time(st, 5, a->finished_at, &b);
        bind_opt(st, 6, a->duration_ms, &b);
        bind_opt(st, 7, a->http_status, &b);
        bind_opt(st, 8, a->exit_code, &b);
        sq_bind_text(st, 9, a->error, &b);
        step = b == SQLITE_OK ? sqlite3_step(st) : b;
        if (step == SQLITE_CONSTRAINT_FOREIGNKEY)
            rc = aster_err_set(err, ASTER_ENOENT, "execution_id", "no execution with id '%s'",
                               a->execution_id);
        else if (step == SQLITE_CONSTRAINT_PRIMARYKEY)
            rc = aster_err_set(err, ASTER_EEXIST, "attempt",
                               "attempt %d of execution %s is already recorded", (int)a->attempt,
                               a->execution_id);
        else if (step != SQLITE_DONE)
            rc = sq_dberr(c->db, step, "writing an attempt", err);
        sqlite3_reset(st);
    }
    return sq_write_end(s, c, rc, err);
}

static int read_attempt(sqlite3_stmt *st, void *out, aster_err *err)
{
    aster_attempt a = {.attempt = 0};
    int rc, status = 0;

    if ((rc = sq_col_id(st, 0, a.execution_id, "attempts", err)) ||
        (rc = col_enum(st, 2, aster_exec_status_parse, &status, "attempts", err)))
        return rc;
    a.attempt = sqlite3_column_int(st, 1);
    a.status = (aster_exec_status)status;
    a.started_at = sqlite3_column_int64(st, 3);
    a.finished_at = sqlite3_column_int64(st, 4);
    a.duration_ms = col_opt(st, 5);
    a.http_status = (int32_t)col_opt(st, 6);
    a.exit_code = (int32_t)col_opt(st, 7);
    a.error = col_str(st, 8);
    *(aster_attempt *)out = a;
    return 0;
}

static void fini_attempt(void *p)
{
    aster_attempt *a = p;
    aster_free(a->error);
}

int sq_attempt_list(aster_store *stp, const char *execution_id, aster_attempt **out, size_t *n,
                    aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    void *arr = NULL;
    sq_conn *c;
    int rc = sq_read_begin(s, &c, err);

    if (rc)
        return rc;
    rc = sq_prepare(c, SQ_ATTEMPT_LIST,
                    "SELECT execution_id, attempt, status, started_at, finished_at, duration_ms, "
                    "http_status, exit_code, error FROM attempts WHERE execution_id = ?1 "
                    "ORDER BY attempt",
                    &st, err);
    if (!rc) {
        int b = sqlite3_bind_text(st, 1, execution_id, -1, SQLITE_STATIC);
        rc = b == SQLITE_OK
                 ? collect(c, st, read_attempt, sizeof(aster_attempt), fini_attempt, &arr, n, err)
                 : sq_dberr(c->db, b, "listing attempts", err);
    }
    if (!rc)
        *out = arr;
    sq_read_end(s, c);
    return rc;
}

/* ---- alerts -------------------------------------------------------------------- */

#define ALERT_COLS                                                                                 \
    "id, job_id, execution_id, kind, message, created_at, delivery_state, delivery_attempts, "     \
    "next_delivery_at"

int sq_alert_insert(aster_store *stp, const aster_alert *a, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK, step;

    if (rc)
        return rc;
    rc = sq_prepare(c, SQ_ALERT_INSERT,
                    "INSERT INTO alerts (" ALERT_COLS
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
        step = b == SQLITE_OK ? sqlite3_step(st) : b;
        if (step == SQLITE_CONSTRAINT_FOREIGNKEY)
            rc = aster_err_set(err, ASTER_ENOENT, "job_id", "no job with id '%s'", a->job_id);
        else if (step == SQLITE_CONSTRAINT_PRIMARYKEY)
            rc =
                aster_err_set(err, ASTER_EEXIST, "id", "an alert with id %s already exists", a->id);
        else if (step != SQLITE_DONE)
            rc = sq_dberr(c->db, step, "writing an alert", err);
        sqlite3_reset(st);
    }
    return sq_write_end(s, c, rc, err);
}

int sq_read_alert(sqlite3_stmt *st, void *out, aster_err *err)
{
    aster_alert a;
    int rc;

    aster_alert_init(&a);
    if ((rc = sq_col_id(st, 0, a.id, "alerts", err)) ||
        (rc = sq_col_id(st, 1, a.job_id, "alerts", err)) ||
        (rc = sq_col_id(st, 2, a.execution_id, "alerts", err)))
        return rc;
    a.kind = col_str(st, 3);
    a.message = col_str(st, 4);
    a.created_at = sqlite3_column_int64(st, 5);
    a.delivery_state = col_str(st, 6);
    a.delivery_attempts = sqlite3_column_int(st, 7);
    a.next_delivery_at = sqlite3_column_int64(st, 8);
    *(aster_alert *)out = a;
    return 0;
}

static void fini_alert(void *p)
{
    aster_alert_fini(p);
}

enum { AF_JOB = 1, AF_KIND = 2, AF_SINCE = 4, AF_BEFORE = 8 };

int sq_alert_list(aster_store *stp, const aster_alert_filter *f, aster_alert **out, size_t *n,
                  aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    int mask = (f->job_id ? AF_JOB : 0) | (f->kind ? AF_KIND : 0) | (f->since ? AF_SINCE : 0) |
               (f->before_id ? AF_BEFORE : 0);
    int rc, b = SQLITE_OK;
    char buf[1024];
    const char *sql = NULL;
    void *arr = NULL;
    sqlite3_stmt *st;
    sq_conn *c;

    if ((rc = sq_read_begin(s, &c, err)))
        return rc;
    if (!sq_cached(c, SQ_ALERT_LIST + mask)) {
        snprintf(buf, sizeof(buf),
                 "SELECT " ALERT_COLS " FROM alerts WHERE 1%s%s%s%s ORDER BY id DESC LIMIT ?5",
                 mask & AF_JOB ? " AND job_id = ?1" : "", mask & AF_KIND ? " AND kind = ?2" : "",
                 mask & AF_SINCE ? " AND created_at >= ?3" : "",
                 mask & AF_BEFORE ? " AND id < ?4" : "");
        sql = buf;
    }
    if ((rc = sq_prepare(c, SQ_ALERT_LIST + mask, sql, &st, err)))
        goto out;
    if (mask & AF_JOB)
        sq_bind_text(st, 1, f->job_id, &b);
    if (mask & AF_KIND)
        sq_bind_text(st, 2, f->kind, &b);
    if (mask & AF_SINCE)
        sq_bind_int(st, 3, f->since, &b);
    if (mask & AF_BEFORE)
        sq_bind_text(st, 4, f->before_id, &b);
    sq_bind_int(st, 5, f->limit, &b);
    if (b != SQLITE_OK) {
        rc = sq_dberr(c->db, b, "listing alerts", err);
        goto out;
    }
    rc = collect(c, st, sq_read_alert, sizeof(aster_alert), fini_alert, &arr, n, err);
    if (!rc)
        *out = arr;
out:
    sq_read_end(s, c);
    return rc;
}
