/* conn.c — the PostgreSQL backend's handle: pool, transactions, retries.
 *
 * Who runs where
 * --------------
 * A handle is called from many threads at once (the HTTP pool, the engine
 * thread), and many processes share the database.  The handle keeps a
 * small pool of libpq connections (`lock`, `cond`): a call checks one out,
 * runs its statements, and puts it back; a thread waits on `cond` when all
 * PG_MAX_CONNS are out.  Connections are opened on demand, so a process
 * that only ever makes one call at a time holds one.  A libpq connection
 * is used by one thread at a time; statements are prepared once per
 * connection (pg_query) and forgotten when it is reset.
 *
 * Unlike SQLite's single writer, writes from different threads run side by
 * side; PostgreSQL's row locks order them.  Fires stay unique through the
 * partial unique index, claims through FOR UPDATE SKIP LOCKED, optimistic
 * job updates through the version check in the UPDATE's WHERE.
 *
 * Batches: aster_store_batch checks a connection out, BEGINs, and pins the
 * connection to the calling thread (`pinned`, owner = pthread_self())
 * until fn returns.  A store call from that thread finds its pinned
 * connection first and runs inside a SAVEPOINT on it, so that a failing
 * call changes nothing and the batch goes on (as on SQLite); reads see the
 * batch's own rows.  A nested batch is a savepoint too.  Other threads'
 * calls run on other connections: they do not see the batch's rows before
 * it commits, and, unlike SQLite, their writes do not wait for it unless
 * they touch the same rows.
 *
 * Failures: a call that finds its connection broken (server restarted,
 * backend terminated, network cut) resets it (PQreset) and runs again,
 * once, when that is safe: reads and idempotent writes always, other writes
 * unless the break came during COMMIT (the outcome is then unknown, and
 * the caller is told so).  Inside a batch nothing is run again: the batch
 * fails and its caller decides.  Serialization failures and deadlocks are
 * retried a few times with a short backoff.  When the server cannot be
 * reached the call fails with ASTER_EUNAVAIL, which /readyz reports as 503;
 * the next call tries again.
 *
 * Durability: PostgreSQL's defaults (synchronous_commit on, fsync on): an
 * acknowledged COMMIT is on disk.  A batch is one COMMIT.
 *
 * `exclusive` is ignored: sharing the database is the point of this
 * backend (ASTER_STORE_CAP_SHARED). */
#include "store/postgres/pg_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/mem.h"
#include "util/time.h"

#define FIELD "store"

/* Opened as concurrency asks for them, kept open.  An API server under
 * load uses them all (POST /jobs: 4.2k/s with 8, 6.6k/s with 24 here); an
 * engine's loop needs two or three.  PostgreSQL's default max_connections
 * is 100: a cluster of a few API servers and many workers fits. */
#define PG_MAX_CONNS 24
/* Seconds; a URL may say otherwise (connect_timeout=N). */
#define PG_CONNECT_TIMEOUT "5"
/* Runs of one call after serialization failures or deadlocks. */
#define PG_CONFLICT_RETRIES 5
/* pg_advisory_xact_lock key serialising migrations across processes
 * ("ASTERMIG" as a big-endian 64-bit number). */
#define PG_MIGRATE_LOCK "4707198692242573639"

/* ---- parameters ---------------------------------------------------------------- */

static void setp(pg_params *p, int i, const char *v)
{
    assert(i >= 1 && i <= PG_MAX_PARAMS);
    p->v[i - 1] = v;
    if (i > p->n)
        p->n = i;
}

void pg_p_text(pg_params *p, int i, const char *s)
{
    setp(p, i, s);
}

void pg_p_int(pg_params *p, int i, int64_t v)
{
    snprintf(p->buf[i - 1], sizeof(p->buf[i - 1]), "%lld", (long long)v);
    setp(p, i, p->buf[i - 1]);
}

void pg_p_time(pg_params *p, int i, int64_t t)
{
    if (t)
        pg_p_int(p, i, t);
    else
        setp(p, i, NULL);
}

void pg_p_opt(pg_params *p, int i, int64_t v)
{
    if (v != -1)
        pg_p_int(p, i, v);
    else
        setp(p, i, NULL);
}

void pg_p_bool(pg_params *p, int i, bool v)
{
    setp(p, i, v ? "t" : "f");
}

/* ---- results --------------------------------------------------------------------- */

int64_t pg_col_int(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int64_t pg_col_opt(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? -1 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

char *pg_col_str(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : aster_strdup(PQgetvalue(r, row, col));
}

bool pg_col_bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

static int corrupt(const PGresult *r, int col, const char *val, const char *table, aster_err *err)
{
    return aster_err_set(err, ASTER_EIO, FIELD, "unreadable row in %s: %s is '%.64s'", table,
                         PQfname(r, col), val ? val : "NULL");
}

int pg_col_id(const PGresult *r, int row, int col, char out[ASTER_ID_LEN + 1], const char *table,
              aster_err *err)
{
    const char *s = PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
    size_t len = strlen(s);

    if (len > ASTER_ID_LEN)
        return corrupt(r, col, s, table, err);
    memcpy(out, s, len + 1);
    return 0;
}

int pg_col_enum(const PGresult *r, int row, int col, int (*parse)(const char *), int *out,
                const char *table, aster_err *err)
{
    const char *s = PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
    int v = s ? parse(s) : -1;

    if (v < 0)
        return corrupt(r, col, s, table, err);
    *out = v;
    return 0;
}

size_t pg_changes(const PGresult *r)
{
    return (size_t)strtoull(PQcmdTuples((PGresult *)r), NULL, 10);
}

/* ---- errors ------------------------------------------------------------------------ */

/* Copies the first line of `s` (libpq's messages end in newlines and may
 * add hint lines), at most n - 1 bytes. */
static void first_line(char *dst, size_t n, const char *s)
{
    size_t len = s ? strcspn(s, "\r\n") : 0;

    if (len >= n)
        len = n - 1;
    memcpy(dst, s ? s : "", len);
    dst[len] = '\0';
}

static void record(pg_conn *c, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *cons = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", state ? state : "");
    snprintf(c->constraint, sizeof(c->constraint), "%s", cons ? cons : "");
    first_line(c->msg, sizeof(c->msg), msg && *msg ? msg : PQerrorMessage(c->db));
    if (!c->msg[0])
        snprintf(c->msg, sizeof(c->msg), "unknown error");
}

static void clear_failure(pg_conn *c)
{
    c->sqlstate[0] = c->constraint[0] = c->msg[0] = '\0';
}

bool pg_state_is(const pg_conn *c, const char *sqlstate)
{
    return !strcmp(c->sqlstate, sqlstate);
}

static bool broken(const pg_conn *c)
{
    return PQstatus(c->db) != CONNECTION_OK;
}

/* Worth running again after a rollback: serialization failure, deadlock. */
static bool conflict(const pg_conn *c)
{
    return pg_state_is(c, "40001") || pg_state_is(c, "40P01");
}

int pg_fail(const pg_conn *c, const char *what, aster_err *err)
{
    const char *st = c->sqlstate;

    if (broken(c) || !strncmp(st, "08", 2))
        return aster_err_set(err, ASTER_EUNAVAIL, FIELD,
                             "%s: lost the connection to PostgreSQL: %s", what, c->msg);
    /* 40: serialization failure, deadlock; 53: too many connections, out
     * of disk or memory; 57P01..03: shutting down, starting up. */
    if (!strncmp(st, "40", 2) || !strncmp(st, "53", 2) || !strncmp(st, "57P", 3))
        return aster_err_set(err, ASTER_EUNAVAIL, FIELD, "%s: %s", what, c->msg);
    /* 22: data exception, e.g. text that is not valid UTF-8. */
    if (!strncmp(st, "22", 2))
        return aster_err_set(err, ASTER_EINVAL, FIELD, "%s: %s", what, c->msg);
    return aster_err_set(err, ASTER_EIO, FIELD, "%s: %s", what, c->msg);
}

/* ---- statements -------------------------------------------------------------------- */

bool pg_is_prepared(const pg_conn *c, int slot)
{
    return c->prepared[slot];
}

static bool result_ok(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

PGresult *pg_query(pg_conn *c, int slot, const char *sql, const pg_params *p)
{
    char name[16];
    PGresult *r;

    assert(slot >= 0 && slot < PG_STMT_COUNT);
    snprintf(name, sizeof(name), "a%d", slot);
    if (!c->prepared[slot]) {
        assert(sql);
        r = PQprepare(c->db, name, sql, 0, NULL);
        if (!result_ok(r)) {
            record(c, r);
            PQclear(r);
            return NULL;
        }
        PQclear(r);
        c->prepared[slot] = true;
    }
    r = PQexecPrepared(c->db, name, p ? p->n : 0, p ? p->v : NULL, NULL, NULL, 0);
    if (result_ok(r)) {
        clear_failure(c);
        return r;
    }
    record(c, r);
    PQclear(r);
    return NULL;
}

/* A statement without parameters nor result (BEGIN, SAVEPOINT, DDL). */
static int simple(pg_conn *c, const char *sql, const char *what, aster_err *err)
{
    PGresult *r = PQexec(c->db, sql);
    int rc = 0;

    if (result_ok(r))
        clear_failure(c);
    else {
        record(c, r);
        rc = pg_fail(c, what, err);
    }
    PQclear(r);
    return rc;
}

/* ---- connections -------------------------------------------------------------------- */

void pg_conn_close(pg_conn *c)
{
    if (!c)
        return;
    PQfinish(c->db);
    aster_free(c);
}

static int unreachable(PGconn *db, aster_err *err)
{
    char line[200];

    first_line(line, sizeof(line), db ? PQerrorMessage(db) : "out of memory");
    return aster_err_set(err, ASTER_EUNAVAIL, FIELD, "cannot reach PostgreSQL: %s", line);
}

/* Notices ("relation already exists, skipping") are not errors, and the
 * store does not log: without this libpq would print them on stderr. */
static void ignore_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

int pg_conn_open(const pg_store *s, pg_conn **out, aster_err *err)
{
    /* Defaults before the URL ("dbname", expanded): the URL's own settings
     * win. */
    /* A peer that vanished (a frozen or cut-off process) must not hold
     * locks for long: keepalives find a dead connection in ~10 s instead of
     * the kernel's two hours, and the server ends a transaction left idle
     * for 2 s, releasing its locks (Aster never waits inside one: a
     * transaction's statements follow each other at once).  Without it a
     * scheduler leader frozen mid-write would keep the leadership row
     * locked, and the standby from taking over, for as long as it stays
     * frozen. */
    static const char *const keys[] = {"connect_timeout",  "fallback_application_name",
                                       "client_encoding",  "keepalives",
                                       "keepalives_idle",  "keepalives_interval",
                                       "keepalives_count", "options",
                                       "dbname",           NULL};
    const char *vals[] = {PG_CONNECT_TIMEOUT,
                          "aster",
                          "UTF8",
                          "1",
                          "5",
                          "2",
                          "3",
                          "-c idle_in_transaction_session_timeout=2000",
                          s->url,
                          NULL};
    pg_conn *c = aster_calloc(1, sizeof(*c));
    int rc;

    c->db = PQconnectdbParams(keys, vals, 1);
    if (!c->db || PQstatus(c->db) != CONNECTION_OK) {
        rc = unreachable(c->db, err);
        pg_conn_close(c);
        return rc;
    }
    PQsetNoticeProcessor(c->db, ignore_notice, NULL);
    *out = c;
    return 0;
}

/* Reconnects with the same parameters; the server forgot our statements. */
static int conn_reset(pg_conn *c, aster_err *err)
{
    PQreset(c->db);
    memset(c->prepared, 0, sizeof(c->prepared));
    clear_failure(c);
    return PQstatus(c->db) == CONNECTION_OK ? 0 : unreachable(c->db, err);
}

/* This thread's batch connection, or NULL. */
static pg_conn *pinned_locked(const pg_store *s)
{
    pthread_t self = pthread_self();

    for (pg_conn *c = s->pinned; c; c = c->next)
        if (pthread_equal(c->owner, self))
            return c;
    return NULL;
}

/* This thread's batch connection (*pinned), or one from the pool. */
static int acquire(pg_store *s, pg_conn **out, bool *pinned, aster_err *err)
{
    pg_conn *c;
    int rc;

    pthread_mutex_lock(&s->lock);
    if ((c = pinned_locked(s))) {
        pthread_mutex_unlock(&s->lock);
        *pinned = true;
        *out = c;
        return 0;
    }
    *pinned = false;
    while (!s->idle && s->nconns >= PG_MAX_CONNS)
        pthread_cond_wait(&s->cond, &s->lock);
    if (s->idle) {
        c = s->idle;
        s->idle = c->next;
        c->next = NULL;
        pthread_mutex_unlock(&s->lock);
        *out = c;
        return 0;
    }
    s->nconns++; /* reserve the slot; connect outside the lock */
    pthread_mutex_unlock(&s->lock);
    rc = pg_conn_open(s, &c, err);
    if (rc) {
        pthread_mutex_lock(&s->lock);
        s->nconns--;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    *out = c;
    return 0;
}

static void release(pg_store *s, pg_conn *c)
{
    pthread_mutex_lock(&s->lock);
    c->next = s->idle;
    s->idle = c;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void pin(pg_store *s, pg_conn *c)
{
    pthread_mutex_lock(&s->lock);
    c->owner = pthread_self();
    c->depth = 1;
    c->next = s->pinned;
    s->pinned = c;
    pthread_mutex_unlock(&s->lock);
}

static void unpin(pg_store *s, pg_conn *c)
{
    pthread_mutex_lock(&s->lock);
    for (pg_conn **p = &s->pinned; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    c->next = NULL;
    c->depth = 0;
    pthread_mutex_unlock(&s->lock);
}

static bool owns_batch(pg_store *s)
{
    bool yes;

    pthread_mutex_lock(&s->lock);
    yes = pinned_locked(s) != NULL;
    pthread_mutex_unlock(&s->lock);
    return yes;
}

/* ---- transactions ------------------------------------------------------------------- */

/* Runs a clean-up statement, keeping the failure recorded in c: the
 * caller still decides from it (a deadlock is run again). */
static void quiet(pg_conn *c, const char *sql)
{
    if (!broken(c))
        PQclear(PQexec(c->db, sql));
}

static void rollback(pg_conn *c)
{
    if (PQtransactionStatus(c->db) != PQTRANS_IDLE)
        quiet(c, "ROLLBACK");
}

/* COMMIT, refusing to commit what an earlier error already aborted (the
 * server would answer ROLLBACK without an error). */
static int commit(pg_conn *c, const char *what, aster_err *err)
{
    if (PQtransactionStatus(c->db) == PQTRANS_INERROR) {
        rollback(c);
        return aster_err_set(err, ASTER_EIO, FIELD,
                             "%s: the transaction was lost to an earlier error", what);
    }
    if (!simple(c, "COMMIT", what, NULL))
        return 0;
    if (broken(c))
        return aster_err_set(err, ASTER_EUNAVAIL, FIELD,
                             "%s: the connection to PostgreSQL was lost during COMMIT, which "
                             "may or may not have been applied: %s",
                             what, c->msg);
    rollback(c);
    return pg_fail(c, what, err);
}

static int savepoint_end(pg_conn *c, int rc, aster_err *err)
{
    if (rc) {
        /* Both must run: ROLLBACK TO keeps the savepoint open. */
        quiet(c, "ROLLBACK TO SAVEPOINT w");
        quiet(c, "RELEASE SAVEPOINT w");
        return rc;
    }
    return simple(c, "RELEASE SAVEPOINT w", "releasing a savepoint", err);
}

static void backoff(int attempt)
{
    /* 1, 2, 4, ... ms plus up to 1 ms of jitter, so that the two sides of
     * a deadlock do not meet again in step. */
    long us = (1L << attempt) * 1000 + (long)(aster_mono_now() % 1000);
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};

    nanosleep(&ts, NULL);
}

int pg_run(pg_store *s, int kind, pg_fn fn, void *ctx, aster_err *err)
{
    int rc, reruns = 0, conflicts = 0;
    bool pinned;
    pg_conn *c;

    if ((rc = acquire(s, &c, &pinned, err)))
        return rc;
    if (pinned) {
        if ((rc = simple(c, "SAVEPOINT w", "opening a savepoint", err)))
            return rc;
        return savepoint_end(c, fn(c, ctx, err), err);
    }
    for (;;) {
        aster_err e = {0};
        bool committing = false;

        clear_failure(c);
        if (broken(c) && (rc = conn_reset(c, &e))) {
            aster_err_set(err, e.code, e.field, "%s", e.msg);
            break;
        }
        rc = kind == PG_WRITE ? simple(c, "BEGIN", "starting a write", &e) : 0;
        if (!rc)
            rc = fn(c, ctx, &e);
        if (kind == PG_WRITE) {
            if (!rc) {
                committing = true;
                rc = commit(c, "committing", &e);
            } else {
                rollback(c);
            }
        }
        if (!rc)
            break;
        if (broken(c) && !committing && reruns++ < 1)
            continue; /* reset at the top */
        if (conflict(c) && conflicts < PG_CONFLICT_RETRIES) {
            backoff(conflicts++);
            continue;
        }
        aster_err_set(err, e.code, e.field, "%s", e.msg);
        break;
    }
    release(s, c);
    return rc;
}

/* ---- schema version and migrations --------------------------------------------------- */

static int read_version(pg_conn *c, int *out, aster_err *err)
{
    PGresult *r = PQexec(c->db, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    bool has;

    if (!result_ok(r) || PQntuples(r) != 1)
        goto fail;
    has = pg_col_bool(r, 0, 0);
    PQclear(r);
    if (!has) {
        *out = 0;
        return 0;
    }
    r = PQexec(c->db, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    if (!result_ok(r) || PQntuples(r) != 1)
        goto fail;
    *out = (int)pg_col_int(r, 0, 0);
    PQclear(r);
    return 0;
fail:
    record(c, r);
    PQclear(r);
    return pg_fail(c, "reading the schema version", err);
}

static int read_version_fn(pg_conn *c, void *ctx, aster_err *err)
{
    return read_version(c, ctx, err);
}

static int too_new(const pg_store *s, int version, aster_err *err)
{
    return aster_err_set(err, ASTER_EINVAL, FIELD,
                         "database %s: schema version %d is newer than this aster (%d)", s->where,
                         version, ASTER_STORE_SCHEMA_VERSION);
}

struct migration {
    const pg_store *s;
    int first, v;
};

/* One step, in the caller's transaction: the advisory lock makes a second
 * process wait here and then read the version the first one left. */
static int migrate_step(pg_conn *c, void *ctx, aster_err *err)
{
    struct migration *m = ctx;
    char when[ASTER_TIME_BUFSZ], ver[16];
    const char *vals[2] = {ver, when};
    PGresult *r;
    int rc, v = 0;

    if ((rc = simple(c, "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ")", "locking the schema",
                     err)) ||
        (rc = simple(c,
                     "CREATE TABLE IF NOT EXISTS schema_migrations"
                     " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
                     "creating schema_migrations", err)) ||
        (rc = read_version(c, &v, err)))
        return rc;
    if (m->first < 0)
        m->first = v;
    if (v > ASTER_STORE_SCHEMA_VERSION)
        return too_new(m->s, v, err);
    if (v < ASTER_STORE_SCHEMA_VERSION) {
        if ((rc = simple(c, pg_migrations[v], "migrating the schema", err)))
            return rc;
        v++;
        snprintf(ver, sizeof(ver), "%d", v);
        aster_time_format_ms(aster_time_now(), when, sizeof(when));
        r = PQexecParams(c->db,
                         "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", 2,
                         NULL, vals, NULL, NULL, 0);
        if (!result_ok(r)) {
            record(c, r);
            rc = pg_fail(c, "recording a migration", err);
        }
        PQclear(r);
    }
    m->v = v;
    return rc;
}

static int pg_migrate(aster_store *st, int *from, int *to, aster_err *err)
{
    pg_store *s = (pg_store *)st;
    struct migration m = {.s = s, .first = -1};
    int rc;

    if (owns_batch(s))
        return aster_err_set(err, ASTER_EINVAL, FIELD, "cannot migrate inside a batch");
    /* One transaction per step, as on SQLite. */
    do {
        if ((rc = pg_run(s, PG_WRITE, migrate_step, &m, err)))
            return rc;
    } while (m.v < ASTER_STORE_SCHEMA_VERSION);
    if (from)
        *from = m.first;
    if (to)
        *to = m.v;
    return 0;
}

static int pg_schema_version(aster_store *st, int *out, aster_err *err)
{
    return pg_run((pg_store *)st, PG_READ, read_version_fn, out, err);
}

static int pg_ping(aster_store *st, aster_err *err)
{
    pg_store *s = (pg_store *)st;
    aster_err e = {0};
    int v = 0;

    /* A round trip (reconnecting if need be) and the schema: /readyz gives
     * one reason, and whatever failed, the store is not ready. */
    if (pg_run(s, PG_READ, read_version_fn, &v, &e))
        return aster_err_set(err, ASTER_EUNAVAIL, FIELD, "%s", e.msg);
    if (v == 0)
        return aster_err_set(err, ASTER_EUNAVAIL, FIELD,
                             "database %s has no schema (run aster migrate)", s->where);
    return 0;
}

/* ---- batches ------------------------------------------------------------------------- */

static int pg_batch(aster_store *st, aster_store_batch_fn fn, void *arg, aster_err *err)
{
    pg_store *s = (pg_store *)st;
    aster_err e = {0};
    bool pinned;
    pg_conn *c;
    int rc;

    if ((rc = acquire(s, &c, &pinned, err)))
        return rc;
    if (pinned) {
        if ((rc = simple(c, "SAVEPOINT w", "opening a savepoint", err)))
            return rc;
        c->depth++;
        rc = fn(st, arg, err);
        c->depth--;
        return savepoint_end(c, rc, err);
    }
    /* BEGIN is safe to send twice: a connection found broken here is reset
     * and asked again, once. */
    for (int i = 0; i < 2; i++) {
        aster_err_clear(&e);
        if (broken(c) && (rc = conn_reset(c, &e)))
            break;
        if (!(rc = simple(c, "BEGIN", "starting a batch", &e)) || !broken(c))
            break;
    }
    if (rc) {
        aster_err_set(err, e.code, e.field, "%s", e.msg);
        release(s, c);
        return rc;
    }
    pin(s, c);
    rc = fn(st, arg, err);
    unpin(s, c);
    if (!rc)
        rc = commit(c, "committing a batch", err);
    else
        rollback(c);
    release(s, c);
    return rc;
}

/* ---- open and close -------------------------------------------------------------------- */

static void pg_close(aster_store *st)
{
    pg_store *s = (pg_store *)st;

    if (!s)
        return;
    pg_announce_stop(s); /* it uses the pool */
    while (s->idle) {
        pg_conn *c = s->idle;
        s->idle = c->next;
        pg_conn_close(c);
        s->nconns--;
    }
    /* Closing while another thread still runs a call is the caller's bug. */
    assert(s->nconns == 0 && !s->pinned);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    aster_free(s->where);
    aster_free(s->url);
    aster_free(s);
}

/* "db@host:port" for messages; never the password. */
static char *describe(PGconn *db)
{
    const char *host = PQhost(db), *port = PQport(db), *name = PQdb(db);
    size_t len = strlen(name ? name : "") + strlen(host ? host : "") + strlen(port ? port : "") + 4;
    char *buf = aster_malloc(len);

    snprintf(buf, len, "%s@%s:%s", name ? name : "", host ? host : "", port ? port : "");
    return buf;
}

static int pg_open(const char *url, const aster_store_opts *opts, aster_store **out, aster_err *err)
{
    pg_store *s = NULL;
    PQconninfoOption *ci;
    char *perr = NULL, line[200];
    bool pinned;
    pg_conn *c;
    int rc, v = 0;

    /* A malformed URL is the user's mistake, not an outage. */
    ci = PQconninfoParse(url, &perr);
    if (!ci) {
        first_line(line, sizeof(line), perr ? perr : "out of memory");
        PQfreemem(perr);
        return aster_err_set(err, ASTER_EINVAL, FIELD, "bad PostgreSQL URL: %s", line);
    }
    PQconninfoFree(ci);

    s = aster_calloc(1, sizeof(*s));
    s->base.ops = &aster_store_postgres_ops;
    s->url = aster_strdup(url);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if ((rc = acquire(s, &c, &pinned, err)))
        goto out;
    s->where = describe(c->db);
    rc = read_version(c, &v, err);
    release(s, c);
    if (rc)
        goto out;
    if (v > ASTER_STORE_SCHEMA_VERSION) {
        rc = too_new(s, v, err);
        goto out;
    }
    /* opts->exclusive is ignored: see the top of this file. */
    if (opts->migrate && (rc = pg_migrate(&s->base, NULL, NULL, err)))
        goto out;
    *out = &s->base;
    s = NULL;
out:
    if (s)
        pg_close(&s->base);
    return rc;
}

const struct aster_store_ops aster_store_postgres_ops = {
    .name = "postgres",
    .caps = ASTER_STORE_CAP_SHARED | ASTER_STORE_CAP_NOTIFY,
    .open = pg_open,
    .close = pg_close,
    .migrate = pg_migrate,
    .schema_version = pg_schema_version,
    .ping = pg_ping,
    .job_insert = pg_job_insert,
    .job_insert_many = pg_job_insert_many,
    .insert_lanes = 2,
    .job_get = pg_job_get,
    .job_update = pg_job_update,
    .job_delete = pg_job_delete,
    .job_list = pg_job_list,
    .job_count = pg_job_count,
    .exec_insert = pg_exec_insert,
    .exec_get = pg_exec_get,
    .exec_update = pg_exec_update,
    .exec_list = pg_exec_list,
    .job_set_next = pg_job_set_next,
    .exec_claim = pg_exec_claim,
    .exec_extend = pg_exec_extend,
    .exec_reclaim = pg_exec_reclaim,
    .job_busy = pg_job_busy,
    .exec_next_due = pg_exec_next_due,
    .queue_depth = pg_queue_depth,
    .exec_count = pg_exec_count,
    .attempt_insert = pg_attempt_insert,
    .exec_finish = pg_exec_finish,
    .attempt_list = pg_attempt_list,
    .alert_insert = pg_alert_insert,
    .alert_list = pg_alert_list,
    .batch = pg_batch,
    .alert_raise = pg_alert_raise,
    .alert_due = pg_alert_due,
    .alert_next_due = pg_alert_next_due,
    .alert_set_delivery = pg_alert_set_delivery,
    .exec_unalerted_failures = pg_exec_unalerted_failures,
    .job_fail_streak = pg_job_fail_streak,
    .job_absent = pg_job_absent,
    .prune_execs_before = pg_prune_execs_before,
    .prune_execs_keep = pg_prune_execs_keep,
    .prune_alerts_before = pg_prune_alerts_before,
    .exec_max_id = pg_exec_max_id,
    .exec_jobs_after = pg_exec_jobs_after,
    .node_heartbeat = pg_node_heartbeat,
    .leader_acquire = pg_leader_acquire,
    .leader_release = pg_leader_release,
    .leader_fence = pg_leader_fence,
    .announce_cancel = pg_announce_cancel,
    .listen = pg_listen,
    .listener_fd = pg_listener_fd,
    .listener_read = pg_listener_read,
    .listener_close = pg_listener_close,
};
