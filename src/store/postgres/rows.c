/* rows.c — jobs, executions, attempts and alerts as PostgreSQL rows.
 *
 * The same statements as the SQLite backend's rows.c, in PostgreSQL's
 * dialect, each run through pg_run (conn.c) as a small function over a
 * context struct, so that pg_run can run it again after a reset.
 * Parameters go as text ($n); where the server cannot infer a type, the
 * SQL casts.  Row decoding is strict, as on SQLite: a row holding an enum
 * name this binary cannot parse is ASTER_EIO, not some default. */
#include "store/postgres/pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"
#include "util/uuid.h"

#define FIELD "store"

/* ---- the common shapes of a call (pg_int.h) ------------------------------------------ */

int pg_run_stmt(pg_conn *c, void *ctx, aster_err *err)
{
    struct pg_stmt *x = ctx;
    PGresult *r = pg_query(c, x->slot, x->sql, &x->p);

    if (!r)
        return pg_fail(c, x->what, err);
    x->changes = pg_changes(r);
    PQclear(r);
    return 0;
}

int pg_run_list(pg_conn *c, void *ctx, aster_err *err)
{
    struct pg_list *l = ctx;
    PGresult *r = pg_query(c, l->slot, l->sql, &l->p);
    int rows, rc = 0, i;
    char *arr = NULL;

    if (!r)
        return pg_fail(c, l->what, err);
    rows = PQntuples(r);
    if (rows > 0)
        arr = aster_malloc((size_t)rows * l->size);
    for (i = 0; i < rows; i++)
        if ((rc = l->read(r, i, arr + (size_t)i * l->size, err)))
            break;
    PQclear(r);
    if (rc) {
        while (i-- > 0)
            l->fini(arr + (size_t)i * l->size);
        aster_free(arr);
        return rc;
    }
    l->arr = arr;
    l->n = (size_t)rows;
    return 0;
}

/* ---- jobs ------------------------------------------------------------------------- */

#define JOB_COLS PG_JOB_COLS

static void job_params(pg_params *p, const aster_job *j)
{
    pg_p_text(p, 1, j->id);
    pg_p_text(p, 2, j->name);
    pg_p_text(p, 3, j->schedule);
    pg_p_text(p, 4, j->timezone);
    pg_p_text(p, 5, aster_delivery_name(j->delivery));
    pg_p_text(p, 6, aster_target_kind_name(j->target_kind));
    pg_p_text(p, 7, j->target);
    pg_p_int(p, 8, j->max_retries);
    pg_p_int(p, 9, j->retry_backoff_ms);
    pg_p_int(p, 10, j->retry_backoff_max_ms);
    pg_p_int(p, 11, j->timeout_ms);
    pg_p_text(p, 12, aster_overlap_name(j->overlap));
    pg_p_text(p, 13, aster_misfire_name(j->misfire));
    pg_p_int(p, 14, j->misfire_grace_ms);
    pg_p_int(p, 15, j->dst_gap);
    pg_p_int(p, 16, j->dst_overlap);
    pg_p_bool(p, 17, j->paused);
    pg_p_text(p, 18, j->alert_webhook);
    pg_p_int(p, 19, j->alert_after_failures);
    pg_p_int(p, 20, j->alert_if_no_success_ms);
    pg_p_time(p, 21, j->next_fire_at);
    pg_p_int(p, 22, j->created_at);
    pg_p_int(p, 23, j->updated_at);
    pg_p_int(p, 24, j->version);
}

/* Decodes row i (JOB_COLS) into *out, which holds nothing owned; on
 * failure *out is left holding nothing owned. */
static int read_job(const PGresult *r, int i, void *out, aster_err *err)
{
    aster_job j;
    int rc, delivery = 0, kind = 0, overlap = 0, misfire = 0;

    aster_job_init(&j);
    if ((rc = pg_col_id(r, i, 0, j.id, "jobs", err)) ||
        (rc = pg_col_enum(r, i, 4, aster_delivery_parse, &delivery, "jobs", err)) ||
        (rc = pg_col_enum(r, i, 5, aster_target_kind_parse, &kind, "jobs", err)) ||
        (rc = pg_col_enum(r, i, 11, aster_overlap_parse, &overlap, "jobs", err)) ||
        (rc = pg_col_enum(r, i, 12, aster_misfire_parse, &misfire, "jobs", err)))
        return rc;
    j.name = pg_col_str(r, i, 1);
    j.schedule = pg_col_str(r, i, 2);
    j.timezone = pg_col_str(r, i, 3);
    j.delivery = (aster_delivery)delivery;
    j.target_kind = (aster_target_kind)kind;
    j.target = pg_col_str(r, i, 6);
    j.max_retries = (int)pg_col_int(r, i, 7);
    j.retry_backoff_ms = pg_col_int(r, i, 8);
    j.retry_backoff_max_ms = pg_col_int(r, i, 9);
    j.timeout_ms = pg_col_int(r, i, 10);
    j.overlap = (aster_overlap)overlap;
    j.misfire = (aster_misfire)misfire;
    j.misfire_grace_ms = pg_col_int(r, i, 13);
    j.dst_gap = (int)pg_col_int(r, i, 14);
    j.dst_overlap = (int)pg_col_int(r, i, 15);
    j.paused = pg_col_bool(r, i, 16);
    j.alert_webhook = pg_col_str(r, i, 17);
    j.alert_after_failures = (int)pg_col_int(r, i, 18);
    j.alert_if_no_success_ms = pg_col_int(r, i, 19);
    j.next_fire_at = pg_col_int(r, i, 20); /* NULL reads as 0 */
    j.created_at = pg_col_int(r, i, 21);
    j.updated_at = pg_col_int(r, i, 22);
    j.version = pg_col_int(r, i, 23);
    *(aster_job *)out = j;
    return 0;
}

static void fini_job(void *p)
{
    aster_job_fini(p);
}

/* Maps a failed job write: the name and the id are the unique keys. */
static int job_write_err(const pg_conn *c, const aster_job *job, aster_err *err)
{
    if (pg_state_is(c, "23505") && !strcmp(c->constraint, "jobs_name_key"))
        return aster_err_set(err, ASTER_EEXIST, "name", "a job named '%.100s' already exists",
                             job->name);
    if (pg_state_is(c, "23505"))
        return aster_err_set(err, ASTER_EEXIST, "id", "a job with id %s already exists", job->id);
    return pg_fail(c, "writing a job", err);
}

struct job_write {
    const aster_job *job;
    int64_t expect;
    bool sent; /* the INSERT went out once already */
};

/* Whether a row with this id exists: after a connection broke under a lone
 * INSERT, whether that INSERT committed.  Ids are made by the caller
 * (UUIDv7), so the row with our id can only be ours. */
static int row_exists(pg_conn *c, int slot, const char *sql, const char *id, bool *out,
                      aster_err *err)
{
    pg_params p = {0};
    PGresult *r;

    pg_p_text(&p, 1, id);
    if (!(r = pg_query(c, slot, sql, &p)))
        return pg_fail(c, "checking a write", err);
    *out = PQntuples(r) > 0;
    PQclear(r);
    return 0;
}

static int job_insert_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct job_write *w = ctx;
    pg_params p = {0};
    PGresult *r;
    bool done = false;
    int rc;

    /* A lone INSERT is its own transaction (no BEGIN/COMMIT round trips);
     * when pg_run runs this again after a break, the first one may have
     * committed: look before inserting again. */
    if (w->sent && (rc = row_exists(c, PG_JOB_EXISTS, "SELECT 1 FROM jobs WHERE id = $1",
                                    w->job->id, &done, err)))
        return rc;
    if (done)
        return 0;
    w->sent = true;
    job_params(&p, w->job);
    r = pg_query(c, PG_JOB_INSERT,
                 "INSERT INTO jobs (" JOB_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                 "$10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)",
                 &p);
    if (!r)
        return job_write_err(c, w->job, err);
    PQclear(r);
    return 0;
}

int pg_job_insert_one(pg_store *s, const aster_job *job, aster_err *err)
{
    struct job_write w = {.job = job};
    return pg_run(s, PG_IDEMPOTENT, job_insert_fn, &w, err);
}

int pg_job_insert(aster_store *st, const aster_job *job, aster_err *err)
{
    int rc = pg_job_insert_one((pg_store *)st, job, err);

    /* Announced after the commit, not by a trigger: see announce.c.  Inside
     * a batch the commit is still to come; a listener that reads the job
     * before it finds nothing yet and waits for its resync. */
    if (!rc)
        pg_announce_job((pg_store *)st, job->id);
    return rc;
}

struct job_get {
    const char *key;
    aster_job *out;
};

static int job_get_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct job_get *g = ctx;
    bool by_id = aster_uuid_is_uuid(g->key);
    pg_params p = {0};
    PGresult *r;
    int rc;

    pg_p_text(&p, 1, g->key);
    if (by_id)
        r = pg_query(c, PG_JOB_GET_ID, "SELECT " JOB_COLS " FROM jobs WHERE id = $1", &p);
    else
        r = pg_query(c, PG_JOB_GET_NAME, "SELECT " JOB_COLS " FROM jobs WHERE name = $1", &p);
    if (!r)
        return pg_fail(c, "reading a job", err);
    if (PQntuples(r) == 1)
        rc = read_job(r, 0, g->out, err);
    else
        rc = aster_err_set(err, ASTER_ENOENT, "id", "no job with %s '%.100s'",
                           by_id ? "id" : "name", g->key);
    PQclear(r);
    return rc;
}

int pg_job_get(aster_store *st, const char *key, aster_job *out, aster_err *err)
{
    struct job_get g = {.key = key, .out = out};
    /* The database is UTF-8 and refuses other bytes: such a key names no
     * job here, as it names none on SQLite. */
    if (!aster_utf8_valid(key))
        return aster_err_set(err, ASTER_ENOENT, "id", "no job with id or name '%s'", key);
    return pg_run((pg_store *)st, PG_READ, job_get_fn, &g, err);
}

/* After an UPDATE matched nothing: was the job gone, or changed? */
static int job_missed(pg_conn *c, const aster_job *job, int64_t expect, aster_err *err)
{
    pg_params p = {0};
    PGresult *r;
    int rc;

    pg_p_text(&p, 1, job->id);
    r = pg_query(c, PG_JOB_VERSION, "SELECT version FROM jobs WHERE id = $1", &p);
    if (!r)
        return pg_fail(c, "reading a job", err);
    if (PQntuples(r) == 1)
        rc = aster_err_set(err, ASTER_ECONFLICT, "version",
                           "job %s was changed meanwhile (version %lld, expected %lld)", job->id,
                           (long long)pg_col_int(r, 0, 0), (long long)expect);
    else
        rc = aster_err_set(err, ASTER_ENOENT, "id", "no job with id '%s'", job->id);
    PQclear(r);
    return rc;
}

static int job_update_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct job_write *w = ctx;
    pg_params p = {0};
    PGresult *r;
    size_t changed;

    job_params(&p, w->job);
    pg_p_int(&p, 25, w->expect);
    r = pg_query(c, PG_JOB_UPDATE,
                 "UPDATE jobs SET name = $2, schedule = $3, timezone = $4, delivery = $5, "
                 "target_kind = $6, target = $7, max_retries = $8, retry_backoff_ms = $9, "
                 "retry_backoff_max_ms = $10, timeout_ms = $11, overlap = $12, misfire = $13, "
                 "misfire_grace_ms = $14, dst_gap = $15, dst_overlap = $16, paused = $17, "
                 "alert_webhook = $18, alert_after_failures = $19, "
                 "alert_if_no_success_ms = $20, next_fire_at = $21, created_at = $22, "
                 "updated_at = $23, version = $24 "
                 "WHERE id = $1 AND ($25::bigint <= 0 OR version = $25::bigint)",
                 &p);
    if (!r)
        return job_write_err(c, w->job, err);
    changed = pg_changes(r);
    PQclear(r);
    return changed ? 0 : job_missed(c, w->job, w->expect, err);
}

int pg_job_update(aster_store *st, const aster_job *job, int64_t expect_version, aster_err *err)
{
    struct job_write w = {.job = job, .expect = expect_version};
    return pg_run((pg_store *)st, PG_WRITE, job_update_fn, &w, err);
}

int pg_job_delete(aster_store *st, const char *id, aster_err *err)
{
    /* Executions, attempts and alerts go with it (ON DELETE CASCADE), in
     * this transaction. */
    struct pg_stmt x = {
        .slot = PG_JOB_DELETE, .sql = "DELETE FROM jobs WHERE id = $1", .what = "deleting a job"};
    int rc;

    pg_p_text(&x.p, 1, id);
    rc = pg_run((pg_store *)st, PG_WRITE, pg_run_stmt, &x, err);
    if (!rc && x.changes == 0)
        rc = aster_err_set(err, ASTER_ENOENT, "id", "no job with id '%s'", id);
    return rc;
}

/* UTF-8 code point at s[0..len), or -1 when it is not one well-formed
 * character of exactly that length. */
static long decode_utf8(const unsigned char *s, size_t len)
{
    static const unsigned char mask[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    long cp;

    if (len < 1 || len > 4)
        return -1;
    if ((len == 1) != (s[0] < 0x80) || (len == 2 && (s[0] & 0xe0) != 0xc0) ||
        (len == 3 && (s[0] & 0xf0) != 0xe0) || (len == 4 && (s[0] & 0xf8) != 0xf0))
        return -1;
    cp = s[0] & mask[len];
    for (size_t i = 1; i < len; i++)
        cp = (cp << 6) | (s[i] & 0x3f);
    return cp;
}

static size_t encode_utf8(long cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The smallest valid UTF-8 string greater than every string starting with
 * `p`, for a range scan `name >= p AND name < upper` on the name index
 * (COLLATE "C" compares bytes, and UTF-8's byte order is code point
 * order).  Unlike SQLite's, the bound must itself be valid UTF-8, so the
 * last character is incremented (skipping surrogates) after dropping
 * trailing U+10FFFF ones.  Returns its length, or 0 when there is none.
 * `buf` holds strlen(p) + 4 bytes.  Text that is not UTF-8 gets a bound
 * the server refuses, as it refuses the prefix itself. */
static size_t prefix_upper(const char *p, char *buf)
{
    size_t len = strlen(p);

    memcpy(buf, p, len);
    while (len > 0) {
        size_t start = len - 1;
        long cp;
        while (start > 0 && ((unsigned char)buf[start] & 0xc0) == 0x80)
            start--;
        cp = decode_utf8((const unsigned char *)buf + start, len - start);
        if (cp < 0) {
            buf[len - 1] = (char)((unsigned char)buf[len - 1] + 1);
            return len;
        }
        if (cp >= 0x10ffff) {
            len = start;
            continue;
        }
        cp = cp + 1 == 0xd800 ? 0xe000 : cp + 1;
        return start + encode_utf8(cp, buf + start);
    }
    return 0;
}

enum { JF_PAUSED = 1, JF_LO = 2, JF_HI = 4, JF_AFTER = 8 };

int pg_job_list(aster_store *st, const aster_job_filter *f, aster_job **out, size_t *n,
                aster_err *err)
{
    struct pg_list l = {
        .what = "listing jobs", .read = read_job, .fini = fini_job, .size = sizeof(aster_job)};
    char *upper = NULL, sql[1024], num[4][32];
    int mask = 0, k = 0, rc;

    if (!aster_utf8_valid(f->name_prefix) || !aster_utf8_valid(f->after_id))
        return 0; /* as in pg_job_get: no stored name starts with such bytes */
    if (f->paused >= 0)
        mask |= JF_PAUSED;
    if (f->name_prefix && *f->name_prefix) {
        mask |= JF_LO;
        upper = aster_malloc(strlen(f->name_prefix) + 5);
        size_t ulen = prefix_upper(f->name_prefix, upper);
        upper[ulen] = '\0';
        if (ulen > 0)
            mask |= JF_HI;
    }
    if (f->after_id)
        mask |= JF_AFTER;
    /* Parameters are numbered densely per variant: the server must be able
     * to type every one it is given. */
    if (mask & JF_PAUSED) {
        snprintf(num[0], sizeof(num[0]), " AND paused = $%d", ++k);
        pg_p_bool(&l.p, k, f->paused == 1);
    }
    if (mask & JF_LO) {
        snprintf(num[1], sizeof(num[1]), " AND name >= $%d", ++k);
        pg_p_text(&l.p, k, f->name_prefix);
    }
    if (mask & JF_HI) {
        snprintf(num[2], sizeof(num[2]), " AND name < $%d", ++k);
        pg_p_text(&l.p, k, upper);
    }
    if (mask & JF_AFTER) {
        snprintf(num[3], sizeof(num[3]), " AND id > $%d", ++k);
        pg_p_text(&l.p, k, f->after_id);
    }
    pg_p_int(&l.p, ++k, f->limit);
    snprintf(sql, sizeof(sql),
             "SELECT " JOB_COLS " FROM jobs WHERE true%s%s%s%s ORDER BY id LIMIT $%d",
             mask & JF_PAUSED ? num[0] : "", mask & JF_LO ? num[1] : "", mask & JF_HI ? num[2] : "",
             mask & JF_AFTER ? num[3] : "", k);
    l.slot = PG_JOB_LIST + mask;
    l.sql = sql;
    rc = pg_run((pg_store *)st, PG_READ, pg_run_list, &l, err);
    if (!rc) {
        *out = l.arr;
        *n = l.n;
    }
    aster_free(upper);
    return rc;
}

struct job_count {
    int64_t active, paused;
};

static int job_count_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct job_count *jc = ctx;
    PGresult *r = pg_query(c, PG_JOB_COUNT,
                           "SELECT count(*) FILTER (WHERE NOT paused), "
                           "count(*) FILTER (WHERE paused) FROM jobs",
                           NULL);

    if (!r)
        return pg_fail(c, "counting jobs", err);
    jc->active = pg_col_int(r, 0, 0);
    jc->paused = pg_col_int(r, 0, 1);
    PQclear(r);
    return 0;
}

int pg_job_count(aster_store *st, int64_t *active, int64_t *paused, aster_err *err)
{
    struct job_count jc = {0};
    int rc = pg_run((pg_store *)st, PG_READ, job_count_fn, &jc, err);

    if (!rc) {
        *active = jc.active;
        *paused = jc.paused;
    }
    return rc;
}

/* ---- executions ------------------------------------------------------------------- */

/* The immutable columns first, then the mutable ones (exec_mutable_params). */
#define EXEC_COLS                                                                                  \
    "id, job_id, scheduled_at, \"trigger\", created_at, status, attempt, not_before, "             \
    "claimed_by, lease_until, started_at, finished_at, duration_ms, drift_ms, http_status, "       \
    "exit_code, error, output"

/* The mutable columns (status .. output) as $first, $first + 1, ... */
static void exec_mutable_params(pg_params *p, const aster_exec *e, int first)
{
    int i = first;

    pg_p_text(p, i++, aster_exec_status_name(e->status));
    pg_p_int(p, i++, e->attempt);
    pg_p_int(p, i++, e->not_before);
    pg_p_text(p, i++, e->claimed_by);
    pg_p_time(p, i++, e->lease_until);
    pg_p_time(p, i++, e->started_at);
    pg_p_time(p, i++, e->finished_at);
    pg_p_opt(p, i++, e->duration_ms);
    pg_p_opt(p, i++, e->drift_ms);
    pg_p_opt(p, i++, e->http_status);
    pg_p_opt(p, i++, e->exit_code);
    pg_p_text(p, i++, e->error);
    pg_p_text(p, i, e->output);
}

static void exec_params(pg_params *p, const aster_exec *e)
{
    pg_p_text(p, 1, e->id);
    pg_p_text(p, 2, e->job_id);
    pg_p_int(p, 3, e->scheduled_at);
    pg_p_text(p, 4, aster_trigger_name(e->trigger));
    pg_p_int(p, 5, e->created_at);
    exec_mutable_params(p, e, 6);
}

static int read_exec(const PGresult *r, int i, void *out, aster_err *err)
{
    aster_exec e;
    int rc, trigger = 0, status = 0;

    aster_exec_init(&e);
    if ((rc = pg_col_id(r, i, 0, e.id, "executions", err)) ||
        (rc = pg_col_id(r, i, 1, e.job_id, "executions", err)) ||
        (rc = pg_col_enum(r, i, 3, aster_trigger_parse, &trigger, "executions", err)) ||
        (rc = pg_col_enum(r, i, 5, aster_exec_status_parse, &status, "executions", err)))
        return rc;
    e.scheduled_at = pg_col_int(r, i, 2);
    e.trigger = (aster_trigger)trigger;
    e.created_at = pg_col_int(r, i, 4);
    e.status = (aster_exec_status)status;
    e.attempt = (int32_t)pg_col_int(r, i, 6);
    e.not_before = pg_col_int(r, i, 7);
    e.claimed_by = pg_col_str(r, i, 8);
    e.lease_until = pg_col_int(r, i, 9);
    e.started_at = pg_col_int(r, i, 10);
    e.finished_at = pg_col_int(r, i, 11);
    e.duration_ms = pg_col_opt(r, i, 12);
    e.drift_ms = pg_col_opt(r, i, 13);
    e.http_status = (int32_t)pg_col_opt(r, i, 14);
    e.exit_code = (int32_t)pg_col_opt(r, i, 15);
    e.error = pg_col_str(r, i, 16);
    e.output = pg_col_str(r, i, 17);
    *(aster_exec *)out = e;
    return 0;
}

void pg_fini_exec(void *p)
{
    aster_exec_fini(p);
}

static int exec_write_err(const pg_conn *c, const aster_exec *e, aster_err *err)
{
    if (pg_state_is(c, "23503"))
        return aster_err_set(err, ASTER_ENOENT, "job_id", "no job with id '%s'", e->job_id);
    if (pg_state_is(c, "23505"))
        return aster_err_set(err, ASTER_EEXIST, "id", "an execution with id %s already exists",
                             e->id);
    return pg_fail(c, "writing an execution", err);
}

struct exec_insert {
    const aster_exec *execs;
    size_t n;
    bool *written; /* may be NULL */
    bool sent;     /* n == 1: the INSERT went out once already (see job_insert_fn) */
};

static int exec_insert_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct exec_insert *x = ctx;

    /* The conflict target names the partial unique index of fires, so that
     * only a repeated fire is skipped; a repeated id is still an error. */
    for (size_t i = 0; x->written && i < x->n; i++)
        x->written[i] = false; /* this try's, not an earlier one's */
    if (x->n == 1 && x->sent) {
        bool done = false;
        int rc = row_exists(c, PG_EXEC_EXISTS, "SELECT 1 FROM executions WHERE id = $1",
                            x->execs[0].id, &done, err);
        if (rc || done) {
            if (x->written)
                x->written[0] = done;
            return rc;
        }
    }
    x->sent = true;
    for (size_t i = 0; i < x->n; i++) {
        pg_params p = {0};
        PGresult *r;
        exec_params(&p, &x->execs[i]);
        r = pg_query(c, PG_EXEC_INSERT,
                     "INSERT INTO executions (" EXEC_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, "
                     "$8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) "
                     "ON CONFLICT (job_id, scheduled_at) WHERE \"trigger\" <> 'manual' DO NOTHING",
                     &p);
        if (!r)
            return exec_write_err(c, &x->execs[i], err);
        if (x->written)
            x->written[i] = pg_changes(r) > 0;
        PQclear(r);
    }
    return 0;
}

int pg_exec_insert(aster_store *st, const aster_exec *execs, size_t n, bool *written,
                   aster_err *err)
{
    struct exec_insert x = {.execs = execs, .n = n, .written = written};
    /* One row is one statement, its own transaction (a manual trigger);
     * several share one. */
    int rc = pg_run((pg_store *)st, n == 1 ? PG_IDEMPOTENT : PG_WRITE, exec_insert_fn, &x, err);

    /* Pending rows announce themselves to workers (a trigger, v3). */
    for (size_t i = 0; rc && written && i < n; i++)
        written[i] = false; /* rolled back */
    return rc;
}

struct exec_get {
    const char *id;
    aster_exec *out;
};

static int exec_get_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct exec_get *g = ctx;
    pg_params p = {0};
    PGresult *r;
    int rc;

    pg_p_text(&p, 1, g->id);
    r = pg_query(c, PG_EXEC_GET, "SELECT " EXEC_COLS " FROM executions WHERE id = $1", &p);
    if (!r)
        return pg_fail(c, "reading an execution", err);
    if (PQntuples(r) == 1)
        rc = read_exec(r, 0, g->out, err);
    else
        rc = aster_err_set(err, ASTER_ENOENT, "id", "no execution with id '%s'", g->id);
    PQclear(r);
    return rc;
}

int pg_exec_get(aster_store *st, const char *id, aster_exec *out, aster_err *err)
{
    struct exec_get g = {.id = id, .out = out};
    return pg_run((pg_store *)st, PG_READ, exec_get_fn, &g, err);
}

int pg_exec_update(aster_store *st, const aster_exec *ex, aster_err *err)
{
    struct pg_stmt x = {.slot = PG_EXEC_UPDATE,
                        .sql = "UPDATE executions SET status = $2, attempt = $3, not_before = $4, "
                               "claimed_by = $5, lease_until = $6, started_at = $7, "
                               "finished_at = $8, duration_ms = $9, drift_ms = $10, "
                               "http_status = $11, exit_code = $12, error = $13, output = $14 "
                               "WHERE id = $1",
                        .what = "updating an execution"};
    int rc;

    pg_p_text(&x.p, 1, ex->id);
    exec_mutable_params(&x.p, ex, 2);
    rc = pg_run((pg_store *)st, PG_IDEMPOTENT, pg_run_stmt, &x, err);
    if (!rc && x.changes == 0)
        rc = aster_err_set(err, ASTER_ENOENT, "id", "no execution with id '%s'", ex->id);
    return rc;
}

enum { XF_JOB = 1, XF_STATUS = 2, XF_SINCE = 4, XF_BEFORE = 8 };

int pg_exec_list(aster_store *st, const aster_exec_filter *f, aster_exec **out, size_t *n,
                 aster_err *err)
{
    struct pg_list l = {.what = "listing executions",
                        .read = read_exec,
                        .fini = pg_fini_exec,
                        .size = sizeof(aster_exec)};
    int mask = (f->job_id ? XF_JOB : 0) | (f->status >= 0 ? XF_STATUS : 0) |
               (f->since ? XF_SINCE : 0) | (f->before_id ? XF_BEFORE : 0);
    char sql[1024], num[4][40];
    int k = 0, rc;

    if (mask & XF_JOB) {
        snprintf(num[0], sizeof(num[0]), " AND job_id = $%d", ++k);
        pg_p_text(&l.p, k, f->job_id);
    }
    if (mask & XF_STATUS) {
        snprintf(num[1], sizeof(num[1]), " AND status = $%d", ++k);
        pg_p_text(&l.p, k, aster_exec_status_name((aster_exec_status)f->status));
    }
    if (mask & XF_SINCE) {
        snprintf(num[2], sizeof(num[2]), " AND scheduled_at >= $%d", ++k);
        pg_p_int(&l.p, k, f->since);
    }
    if (mask & XF_BEFORE) {
        snprintf(num[3], sizeof(num[3]), " AND id < $%d", ++k);
        pg_p_text(&l.p, k, f->before_id);
    }
    pg_p_int(&l.p, ++k, f->limit);
    snprintf(sql, sizeof(sql),
             "SELECT " EXEC_COLS " FROM executions WHERE true%s%s%s%s ORDER BY id DESC LIMIT $%d",
             mask & XF_JOB ? num[0] : "", mask & XF_STATUS ? num[1] : "",
             mask & XF_SINCE ? num[2] : "", mask & XF_BEFORE ? num[3] : "", k);
    l.slot = PG_EXEC_LIST + mask;
    l.sql = sql;
    rc = pg_run((pg_store *)st, PG_READ, pg_run_list, &l, err);
    if (!rc) {
        *out = l.arr;
        *n = l.n;
    }
    return rc;
}

/* ---- the engine's operations ------------------------------------------------------- */

int pg_job_set_next(aster_store *st, const char *id, aster_time_us next_fire_at, aster_err *err)
{
    /* version and updated_at stay: this is the scheduler's bookkeeping, and
     * must not make a user's concurrent update conflict. */
    struct pg_stmt x = {.slot = PG_JOB_SET_NEXT,
                        .sql = "UPDATE jobs SET next_fire_at = $2 WHERE id = $1",
                        .what = "updating a job's next fire"};
    int rc;

    pg_p_text(&x.p, 1, id);
    pg_p_time(&x.p, 2, next_fire_at);
    rc = pg_run((pg_store *)st, PG_IDEMPOTENT, pg_run_stmt, &x, err);
    if (!rc && x.changes == 0)
        rc = aster_err_set(err, ASTER_ENOENT, "id", "no job with id '%s'", id);
    return rc;
}

static int by_due(const void *a, const void *b)
{
    const aster_exec *x = a, *y = b;

    if (x->not_before != y->not_before)
        return x->not_before < y->not_before ? -1 : 1;
    return strcmp(x->id, y->id);
}

int pg_exec_claim(aster_store *st, const char *owner, aster_time_us now, aster_time_us lease_until,
                  size_t max, aster_exec **out, size_t *n, aster_err *err)
{
    /* SKIP LOCKED: claimers in other processes (or threads) take the next
     * rows instead of waiting for these; a row another claimer changed
     * meanwhile is checked again against status = 'pending'.  Claiming is
     * starting: started_at is now; drift is the first start's lateness
     * (a retry keeps it), never below 0. */
    struct pg_list l = {
        .slot = PG_EXEC_CLAIM,
        .sql = "UPDATE executions SET status = 'running', claimed_by = $1, "
               "lease_until = $2, started_at = $3, "
               "drift_ms = coalesce(drift_ms, greatest(0, ($3 - scheduled_at) / 1000)) "
               "WHERE id IN (SELECT id FROM executions WHERE status = 'pending' "
               "AND not_before <= $3 ORDER BY not_before, id LIMIT $4 "
               "FOR UPDATE SKIP LOCKED) "
               "RETURNING " EXEC_COLS,
        .what = "claiming executions",
        .read = read_exec,
        .fini = pg_fini_exec,
        .size = sizeof(aster_exec)};
    int rc;

    pg_p_text(&l.p, 1, owner);
    pg_p_int(&l.p, 2, lease_until);
    pg_p_int(&l.p, 3, now);
    pg_p_int(&l.p, 4, (int64_t)max);
    rc = pg_run((pg_store *)st, PG_WRITE, pg_run_list, &l, err);
    if (rc)
        return rc;
    /* RETURNING gives rows in no promised order. */
    if (l.n > 1)
        qsort(l.arr, l.n, sizeof(aster_exec), by_due);
    *out = l.arr;
    *n = l.n;
    return 0;
}

int pg_exec_extend(aster_store *st, const char *owner, aster_time_us lease_until, aster_err *err)
{
    struct pg_stmt x = {.slot = PG_EXEC_EXTEND,
                        .sql = "UPDATE executions SET lease_until = $2 "
                               "WHERE status = 'running' AND claimed_by = $1",
                        .what = "extending leases"};

    pg_p_text(&x.p, 1, owner);
    pg_p_int(&x.p, 2, lease_until);
    return pg_run((pg_store *)st, PG_IDEMPOTENT, pg_run_stmt, &x, err);
}

/* One half of reclaim: the running rows of jobs with delivery $3 whose
 * lease ended or whose claimer fell silent, not held by $2 (NULL: anyone's).  A running row without
 * a lease breaks the invariant; it counts as expired rather than stuck. */
#define RECLAIM_WHERE                                                                              \
    " WHERE status = 'running' AND (coalesce(lease_until, 0) < $1 "                                \
    "OR claimed_by IN (SELECT id FROM nodes WHERE heartbeat_at < $5)) "                            \
    "AND ($2::text IS NULL OR claimed_by IS DISTINCT FROM $2::text) "                              \
    "AND EXISTS (SELECT 1 FROM jobs WHERE jobs.id = executions.job_id AND delivery = $3)"
/* The same rows, whatever their job's delivery ($3 unused but typed). */
#define RECLAIM_WHERE_ANY                                                                          \
    " WHERE status = 'running' AND (coalesce(lease_until, 0) < $1 "                                \
    "OR claimed_by IN (SELECT id FROM nodes WHERE heartbeat_at < $5)) "                            \
    "AND ($2::text IS NULL OR claimed_by IS DISTINCT FROM $2::text) AND $3::text IS NOT NULL"

struct reclaim {
    pg_params p;
    size_t retried, failed;
};

static int reclaim_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct reclaim *x = ctx;
    PGresult *r;

    /* The lost attempts join the history first (both deliveries: $3 is
     * not used here), then each half changes its rows.  started_at and
     * drift_ms stay: the attempt that was lost did start. */
    pg_p_text(&x->p, 3, aster_delivery_name(ASTER_DELIVERY_ATLEAST_ONCE));
    r = pg_query(c, PG_EXEC_RECLAIM_LOST,
                 "INSERT INTO attempts (execution_id, attempt, status, started_at, finished_at, "
                 "duration_ms, error) "
                 "SELECT id, attempt, 'failed', started_at, $4, ($4 - started_at) / 1000, "
                 "'lost: executor died' FROM executions" RECLAIM_WHERE_ANY
                 " ON CONFLICT (execution_id, attempt) DO NOTHING",
                 &x->p);
    if (!r)
        return pg_fail(c, "reclaiming executions", err);
    PQclear(r);
    r = pg_query(c, PG_EXEC_RECLAIM_RETRY,
                 "UPDATE executions SET status = 'pending', attempt = attempt + 1, "
                 "not_before = $4, claimed_by = NULL, lease_until = NULL" RECLAIM_WHERE,
                 &x->p);
    if (!r)
        return pg_fail(c, "reclaiming executions", err);
    x->retried = pg_changes(r);
    PQclear(r);
    pg_p_text(&x->p, 3, aster_delivery_name(ASTER_DELIVERY_ATMOST_ONCE));
    r = pg_query(c, PG_EXEC_RECLAIM_FAIL,
                 "UPDATE executions SET status = 'failed', finished_at = $4, "
                 "duration_ms = ($4 - started_at) / 1000, "
                 "error = 'lost: executor died', claimed_by = NULL, "
                 "lease_until = NULL" RECLAIM_WHERE,
                 &x->p);
    if (!r)
        return pg_fail(c, "reclaiming executions", err);
    x->failed = pg_changes(r);
    PQclear(r);
    return 0;
}

int pg_exec_reclaim(aster_store *st, const char *keep_owner, aster_time_us expired_before,
                    aster_time_us dead_before, aster_time_us now, size_t *retried, size_t *failed,
                    aster_err *err)
{
    struct reclaim x = {.retried = 0};
    int rc;

    pg_p_int(&x.p, 1, expired_before);
    pg_p_text(&x.p, 2, keep_owner);
    pg_p_int(&x.p, 4, now);
    pg_p_int(&x.p, 5, dead_before);
    rc = pg_run((pg_store *)st, PG_WRITE, reclaim_fn, &x, err);
    if (!rc) {
        *retried = x.retried;
        *failed = x.failed;
    }
    return rc;
}

int pg_run_scalar(pg_conn *c, void *ctx, aster_err *err)
{
    struct pg_scalar *x = ctx;
    PGresult *r = pg_query(c, x->slot, x->sql, &x->p);

    if (!r)
        return pg_fail(c, x->what, err);
    x->value = PQntuples(r) < 1 || PQgetisnull(r, 0, 0) ? x->null : pg_col_int(r, 0, 0);
    PQclear(r);
    return 0;
}

int pg_exec_next_due(aster_store *st, aster_time_us *out, aster_err *err)
{
    struct pg_scalar x = {.slot = PG_EXEC_NEXT_DUE,
                          .sql = "SELECT min(not_before) FROM executions WHERE status = 'pending'",
                          .what = "reading the queue",
                          .null = INT64_MIN};
    int rc = pg_run((pg_store *)st, PG_READ, pg_run_scalar, &x, err);

    /* 0 means "none", so a row due at 0 or before (at once) reads as 1. */
    if (!rc)
        *out = x.value == INT64_MIN ? 0 : x.value < 1 ? 1 : x.value;
    return rc;
}

int pg_exec_count(aster_store *st, const char *status, int64_t *out, aster_err *err)
{
    struct pg_scalar x = {.slot = PG_EXEC_COUNT,
                          .sql = "SELECT count(*) FROM executions WHERE status = $1",
                          .what = "counting executions"};
    int rc;

    pg_p_text(&x.p, 1, status);
    rc = pg_run((pg_store *)st, PG_READ, pg_run_scalar, &x, err);
    if (!rc)
        *out = x.value;
    return rc;
}

int pg_queue_depth(aster_store *st, aster_time_us now, int64_t *out, aster_err *err)
{
    struct pg_scalar x = {.slot = PG_QUEUE_DEPTH,
                          .sql = "SELECT count(*) FROM executions "
                                 "WHERE status = 'pending' AND not_before <= $1",
                          .what = "reading the queue"};
    int rc;

    pg_p_int(&x.p, 1, now);
    rc = pg_run((pg_store *)st, PG_READ, pg_run_scalar, &x, err);
    if (!rc)
        *out = x.value;
    return rc;
}

struct attempt_write {
    const aster_attempt *a;
};

static int attempt_insert_fn(pg_conn *c, void *ctx, aster_err *err)
{
    const aster_attempt *a = ((struct attempt_write *)ctx)->a;
    pg_params p = {0};
    PGresult *r;

    pg_p_text(&p, 1, a->execution_id);
    pg_p_int(&p, 2, a->attempt);
    pg_p_text(&p, 3, aster_exec_status_name(a->status));
    pg_p_time(&p, 4, a->started_at);
    pg_p_time(&p, 5, a->finished_at);
    pg_p_opt(&p, 6, a->duration_ms);
    pg_p_opt(&p, 7, a->http_status);
    pg_p_opt(&p, 8, a->exit_code);
    pg_p_text(&p, 9, a->error);
    r = pg_query(c, PG_ATTEMPT_INSERT,
                 "INSERT INTO attempts (execution_id, attempt, status, started_at, "
                 "finished_at, duration_ms, http_status, exit_code, error) "
                 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                 &p);
    if (r) {
        PQclear(r);
        return 0;
    }
    if (pg_state_is(c, "23503"))
        return aster_err_set(err, ASTER_ENOENT, "execution_id", "no execution with id '%s'",
                             a->execution_id);
    if (pg_state_is(c, "23505"))
        return aster_err_set(err, ASTER_EEXIST, "attempt",
                             "attempt %d of execution %s is already recorded", (int)a->attempt,
                             a->execution_id);
    return pg_fail(c, "writing an attempt", err);
}

int pg_attempt_insert(aster_store *st, const aster_attempt *a, aster_err *err)
{
    struct attempt_write w = {.a = a};
    return pg_run((pg_store *)st, PG_WRITE, attempt_insert_fn, &w, err);
}

static int read_attempt(const PGresult *r, int i, void *out, aster_err *err)
{
    aster_attempt a = {.attempt = 0};
    int rc, status = 0;

    if ((rc = pg_col_id(r, i, 0, a.execution_id, "attempts", err)) ||
        (rc = pg_col_enum(r, i, 2, aster_exec_status_parse, &status, "attempts", err)))
        return rc;
    a.attempt = (int32_t)pg_col_int(r, i, 1);
    a.status = (aster_exec_status)status;
    a.started_at = pg_col_int(r, i, 3);
    a.finished_at = pg_col_int(r, i, 4);
    a.duration_ms = pg_col_opt(r, i, 5);
    a.http_status = (int32_t)pg_col_opt(r, i, 6);
    a.exit_code = (int32_t)pg_col_opt(r, i, 7);
    a.error = pg_col_str(r, i, 8);
    *(aster_attempt *)out = a;
    return 0;
}

static void fini_attempt(void *p)
{
    aster_attempt *a = p;
    aster_free(a->error);
}

int pg_attempt_list(aster_store *st, const char *execution_id, aster_attempt **out, size_t *n,
                    aster_err *err)
{
    struct pg_list l = {.slot = PG_ATTEMPT_LIST,
                        .sql = "SELECT execution_id, attempt, status, started_at, finished_at, "
                               "duration_ms, http_status, exit_code, error FROM attempts "
                               "WHERE execution_id = $1 ORDER BY attempt",
                        .what = "listing attempts",
                        .read = read_attempt,
                        .fini = fini_attempt,
                        .size = sizeof(aster_attempt)};
    int rc;

    pg_p_text(&l.p, 1, execution_id);
    rc = pg_run((pg_store *)st, PG_READ, pg_run_list, &l, err);
    if (!rc) {
        *out = l.arr;
        *n = l.n;
    }
    return rc;
}

/* ---- alerts ------------------------------------------------------------------------- */

#define ALERT_COLS                                                                                 \
    "id, job_id, execution_id, kind, message, created_at, delivery_state, delivery_attempts, "     \
    "next_delivery_at"

struct alert_write {
    const aster_alert *a;
};

static int alert_insert_fn(pg_conn *c, void *ctx, aster_err *err)
{
    const aster_alert *a = ((struct alert_write *)ctx)->a;
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
    r = pg_query(c, PG_ALERT_INSERT,
                 "INSERT INTO alerts (" ALERT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                 &p);
    if (r) {
        PQclear(r);
        return 0;
    }
    if (pg_state_is(c, "23503"))
        return aster_err_set(err, ASTER_ENOENT, "job_id", "no job with id '%s'", a->job_id);
    if (pg_state_is(c, "23505"))
        return aster_err_set(err, ASTER_EEXIST, "id", "an alert with id %s already exists", a->id);
    return pg_fail(c, "writing an alert", err);
}

int pg_alert_insert(aster_store *st, const aster_alert *a, aster_err *err)
{
    struct alert_write w = {.a = a};
    return pg_run((pg_store *)st, PG_WRITE, alert_insert_fn, &w, err);
}

int pg_read_alert(const PGresult *r, int i, void *out, aster_err *err)
{
    aster_alert a;
    int rc;

    aster_alert_init(&a);
    if ((rc = pg_col_id(r, i, 0, a.id, "alerts", err)) ||
        (rc = pg_col_id(r, i, 1, a.job_id, "alerts", err)) ||
        (rc = pg_col_id(r, i, 2, a.execution_id, "alerts", err)))
        return rc;
    a.kind = pg_col_str(r, i, 3);
    a.message = pg_col_str(r, i, 4);
    a.created_at = pg_col_int(r, i, 5);
    a.delivery_state = pg_col_str(r, i, 6);
    a.delivery_attempts = (int32_t)pg_col_int(r, i, 7);
    a.next_delivery_at = pg_col_int(r, i, 8);
    *(aster_alert *)out = a;
    return 0;
}

void pg_fini_alert(void *p)
{
    aster_alert_fini(p);
}

enum { AF_JOB = 1, AF_KIND = 2, AF_SINCE = 4, AF_BEFORE = 8 };

int pg_alert_list(aster_store *st, const aster_alert_filter *f, aster_alert **out, size_t *n,
                  aster_err *err)
{
    struct pg_list l = {.what = "listing alerts",
                        .read = pg_read_alert,
                        .fini = pg_fini_alert,
                        .size = sizeof(aster_alert)};
    int mask = (f->job_id ? AF_JOB : 0) | (f->kind ? AF_KIND : 0) | (f->since ? AF_SINCE : 0) |
               (f->before_id ? AF_BEFORE : 0);
    char sql[1024], num[4][40];
    int k = 0, rc;

    if (mask & AF_JOB) {
        snprintf(num[0], sizeof(num[0]), " AND job_id = $%d", ++k);
        pg_p_text(&l.p, k, f->job_id);
    }
    if (mask & AF_KIND) {
        snprintf(num[1], sizeof(num[1]), " AND kind = $%d", ++k);
        pg_p_text(&l.p, k, f->kind);
    }
    if (mask & AF_SINCE) {
        snprintf(num[2], sizeof(num[2]), " AND created_at >= $%d", ++k);
        pg_p_int(&l.p, k, f->since);
    }
    if (mask & AF_BEFORE) {
        snprintf(num[3], sizeof(num[3]), " AND id < $%d", ++k);
        pg_p_text(&l.p, k, f->before_id);
    }
    pg_p_int(&l.p, ++k, f->limit);
    snprintf(sql, sizeof(sql),
             "SELECT " ALERT_COLS " FROM alerts WHERE true%s%s%s%s ORDER BY id DESC LIMIT $%d",
             mask & AF_JOB ? num[0] : "", mask & AF_KIND ? num[1] : "",
             mask & AF_SINCE ? num[2] : "", mask & AF_BEFORE ? num[3] : "", k);
    l.slot = PG_ALERT_LIST + mask;
    l.sql = sql;
    rc = pg_run((pg_store *)st, PG_READ, pg_run_list, &l, err);
    if (!rc) {
        *out = l.arr;
        *n = l.n;
    }
    return rc;
}
