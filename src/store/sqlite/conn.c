/* conn.c — the SQLite backend's handle: connections, transactions, locks.
 *
 * Who runs where
 * --------------
 * A handle is called from many threads at once: libmicrohttpd's pool runs
 * API handlers, the engine thread writes fires and results.  SQLite in WAL
 * mode lets readers proceed while one writer writes, so the handle keeps
 *
 * - one writer connection, guarded by `wlock`.  Every write takes wlock,
 *   runs BEGIN IMMEDIATE .. COMMIT, and releases it.  Writes are serialised
 *   in this process anyway (SQLite has one write lock per file); taking our
 *   mutex first means threads queue on a condition variable instead of
 *   spinning in SQLite's busy handler.
 * - reader connections, checked out by one thread per call from a free list
 *   (`plock`), opened on demand up to SQ_MAX_READERS; a thread waits for
 *   one when all are out.  A read never waits for a write.
 *
 * Each connection is used by one thread at a time, so connections are
 * opened SQLITE_OPEN_NOMUTEX and SQLite's own per-connection mutex is not
 * paid for.  Statements are prepared once per connection and cached.
 *
 * Batches: aster_store_batch takes wlock for the whole of fn and records
 * the calling thread in batch_owner.  A store call from that thread sees
 * itself as the owner: writes join the open transaction (each inside a
 * SAVEPOINT, so that a failing call still changes nothing, as the
 * interface promises), reads use the writer so they see the batch's rows.
 * Other threads' writes wait on wlock; their reads see the state before the
 * batch.  A nested aster_store_batch is a savepoint too.
 *
 * Durability: journal_mode=WAL with synchronous=FULL fsyncs the WAL at every
 * commit, so an acknowledged write survives power loss; a batch is one
 * commit and one fsync (group commit).
 *
 * Exclusive open: flock(LOCK_EX|LOCK_NB) on PATH.lock, kept for the life of
 * the handle.  The lock is tied to the open file description, so the kernel
 * drops it when the process dies, however it dies, and a second open in the
 * same process conflicts too. */
#include "store/sqlite/sqlite_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/mem.h"
#include "util/time.h"

#define FIELD "store"

/* Long enough to ride out another process's checkpoint or a migration;
 * short enough that /readyz reports a stuck database while it matters. */
#define SQ_BUSY_TIMEOUT_MS 5000
/* More readers than cores buys nothing; a few cover the HTTP pool's
 * concurrent reads while the engine writes. */
#define SQ_MAX_READERS 8

/* ---- errors ----------------------------------------------------------------- */

int sq_dberr(sqlite3 *db, int rc, const char *what, aster_err *err)
{
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);

    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
        return aster_err_set(err, ASTER_EUNAVAIL, FIELD,
                             "%s: the database stayed locked for more than %d ms (%s)", what,
                             SQ_BUSY_TIMEOUT_MS, msg);
    return aster_err_set(err, ASTER_EIO, FIELD, "%s: %s", what, msg);
}

/* ---- statements -------------------------------------------------------------- */

bool sq_cached(const sq_conn *c, int slot)
{
    return c->stmt[slot] != NULL;
}

int sq_prepare(sq_conn *c, int slot, const char *sql, sqlite3_stmt **out, aster_err *err)
{
    sqlite3_stmt *st = c->stmt[slot];
    int rc;

    if (!st) {
        rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (rc != SQLITE_OK)
            return sq_dberr(c->db, rc, "preparing a statement", err);
        c->stmt[slot] = st;
    }
    /* Reset by the previous user already; clearing bindings here means a
     * variant that leaves a parameter unbound gets NULL, not stale data. */
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    *out = st;
    return 0;
}

/* Runs a cached statement that returns no rows. */
static int run(sq_conn *c, int slot, const char *sql, const char *what, aster_err *err)
{
    sqlite3_stmt *st;
    int rc = sq_prepare(c, slot, sql, &st, err);

    if (rc)
        return rc;
    rc = sqlite3_step(st);
    rc = rc == SQLITE_DONE ? 0 : sq_dberr(c->db, rc, what, err);
    sqlite3_reset(st);
    return rc;
}

/* ---- connections ------------------------------------------------------------- */

static void conn_close(sq_conn *c)
{
    if (!c)
        return;
    for (int i = 0; i < SQ_STMT_COUNT; i++)
        sqlite3_finalize(c->stmt[i]);
    /* Every statement is finalized, so close cannot be left pending. */
    sqlite3_close(c->db);
    aster_free(c);
}

static int pragma(sq_conn *c, const char *sql, aster_err *err)
{
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_dberr(c->db, rc, sql, err);
}

static int set_wal(sq_conn *c, const char *path, aster_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        rc = sq_dberr(c->db, rc, "setting journal_mode=WAL", err);
    } else if (sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
        /* Happens on file systems without shared memory for the WAL index
         * (some network mounts): refuse rather than run without WAL. */
        rc = aster_err_set(err, ASTER_EIO, FIELD,
                           "database %s cannot use write-ahead logging (journal mode %s)", path,
                           (const char *)sqlite3_column_text(st, 0));
    } else {
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

/* SQLite counts every allocation under one global mutex unless told not
 * to; with dozens of API threads reading at once that mutex was the most
 * contended lock in the process.  Must precede SQLite's initialisation;
 * if something else initialised it first, the counting stays on. */
static void configure_sqlite(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int conn_open(const char *path, bool writer, sq_conn **out, aster_err *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, configure_sqlite);
    sq_conn *c = aster_calloc(1, sizeof(*c));
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);

    if (rc != SQLITE_OK) {
        int sys = c->db ? sqlite3_system_errno(c->db) : 0;
        rc = aster_err_set(err, ASTER_EIO, FIELD, "cannot open database %s: %s%s%s%s", path,
                           c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc), sys ? " (" : "",
                           sys ? strerror(sys) : "", sys ? ")" : "");
        goto out;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
    if (writer && (rc = set_wal(c, path, err)))
        goto out;
    if ((rc = pragma(c, "PRAGMA synchronous=FULL", err)) ||
        (rc = pragma(c, "PRAGMA foreign_keys=ON", err)) ||
        /* Up to 128 MiB (default 2): the executions indexes outgrow 2 MiB
         * within seconds at thousands of executions a second, and each
         * write then read its pages back from the kernel. */
        (writer && (rc = pragma(c, "PRAGMA cache_size=-131072", err))))
        goto out;
    /* A reader that writes by mistake would take the write lock behind the
     * writer's back; make that an error instead. */
    if (!writer && (rc = pragma(c, "PRAGMA query_only=ON", err)))
        goto out;
    *out = c;
    c = NULL;
out:
    conn_close(c);
    return rc;
}

/* ---- transactions ------------------------------------------------------------ */

static bool owns_batch(sq_store *s)
{
    return atomic_load_explicit(&s->batch_active, memory_order_acquire) &&
           pthread_equal(atomic_load_explicit(&s->batch_owner, memory_order_relaxed),
                         pthread_self());
}

static int savepoint(sq_conn *c, aster_err *err)
{
    /* An earlier failure (disk full, I/O error) can make SQLite roll the
     * whole transaction back by itself; carrying on would commit the rest
     * of the batch piecemeal in autocommit mode. */
    if (sqlite3_get_autocommit(c->db))
        return aster_err_set(err, ASTER_EIO, FIELD,
                             "the batch's transaction was lost to an earlier error");
    return run(c, SQ_SAVEPOINT, "SAVEPOINT w", "opening a savepoint", err);
}

static int savepoint_end(sq_conn *c, int rc, aster_err *err)
{
    if (sqlite3_get_autocommit(c->db))
        return rc ? rc
                  : aster_err_set(err, ASTER_EIO, FIELD,
                                  "the batch's transaction was lost to an earlier error");
    if (rc) {
        /* Both must run: ROLLBACK TO keeps the savepoint open. */
        (void)run(c, SQ_ROLLBACK_TO, "ROLLBACK TO w", "rolling back", NULL);
        (void)run(c, SQ_RELEASE, "RELEASE w", "rolling back", NULL);
        return rc;
    }
    rc = run(c, SQ_RELEASE, "RELEASE w", "releasing a savepoint", err);
    if (rc && !sqlite3_get_autocommit(c->db)) {
        /* Not released: undo it, so that a call reported failed leaves no
         * change behind for the group to commit. */
        (void)run(c, SQ_ROLLBACK_TO, "ROLLBACK TO w", "rolling back", NULL);
        (void)run(c, SQ_RELEASE, "RELEASE w", "rolling back", NULL);
    }
    return rc;
}

/* Group commit.  A write (one store call, or a whole aster_store_batch) is
 * an operation inside a SAVEPOINT of the open group transaction; the first
 * operation of a group opens it with BEGIN IMMEDIATE.  The thread that
 * finishes the first operation becomes the group's committer: while other
 * threads are queued to write it lets them in (up to GROUP_MAX operations or
 * GROUP_WAIT_US), then COMMITs once, for everyone, and wakes them.  Every
 * caller returns only after the COMMIT of its group: acknowledged writes are
 * as durable as before, but N concurrent writers cost one fsync, not N.  A
 * lone writer (the engine thread) finds nobody queued and commits at once. */
#define GROUP_MAX     1024
#define GROUP_WAIT_US 2000

static int op_begin(sq_store *s, aster_err *err)
{
    int rc = 0;

    atomic_fetch_add(&s->queued, 1);
    pthread_mutex_lock(&s->wlock);
    atomic_fetch_sub(&s->queued, 1);
    /* SQLite may have rolled an open group back by itself (I/O error, disk
     * full).  With a committer at work, joining fails and its COMMIT reports
     * the loss to the group; with none, nobody waits on it: start afresh. */
    if (s->tx_open && !s->committing && sqlite3_get_autocommit(s->writer->db))
        s->tx_open = false;
    if (!s->tx_open) {
        /* The slot of the generation about to start must have been read
         * by every waiter of the generation that used it before. */
        while (s->waiting[(s->tx_gen + 1) % SQ_GROUP_RING] > 0)
            pthread_cond_wait(&s->gcond, &s->wlock);
    }
    if (!s->tx_open) {
        rc = run(s->writer, SQ_BEGIN, "BEGIN IMMEDIATE", "starting a write", err);
        if (!rc) {
            s->tx_open = true;
            s->tx_gen++;
            s->group_ops = 0;
        }
    }
    if (!rc)
        rc = savepoint(s->writer, err);
    if (rc)
        pthread_mutex_unlock(&s->wlock);
    return rc;
}

/* Commits the open group (wlock held) and publishes the result. */
static int group_commit(sq_store *s, aster_err *err)
{
    sq_conn *c = s->writer;
    uint64_t gen = s->tx_gen;
    aster_err e = {0};
    int rc = run(c, SQ_COMMIT, "COMMIT", "committing", &e);

    if (rc && !sqlite3_get_autocommit(c->db))
        (void)run(c, SQ_ROLLBACK, "ROLLBACK", "rolling back", NULL);
    s->tx_open = false;
    s->done_gen = gen;
    s->done_rc[gen % SQ_GROUP_RING] = rc;
    s->done_err[gen % SQ_GROUP_RING] = e;
    pthread_cond_broadcast(&s->gcond);
    if (rc && err && !err->code)
        *err = e;
    return rc;
}

/* Ends an operation begun with op_begin; returns only once its group has
 * committed (or with the operation's own error, which changed nothing). */
static int op_end(sq_store *s, int rc, aster_err *err)
{
    uint64_t gen = s->tx_gen;

    rc = savepoint_end(s->writer, rc, err);
    if (rc && !sqlite3_get_autocommit(s->writer->db)) {
        /* This operation failed and was rolled back to its savepoint; the
         * group goes on without it.  Still commit the group if nobody
         * else will. */
        if (!s->committing && s->group_ops == 0) {
            (void)group_commit(s, NULL);
        }
        pthread_mutex_unlock(&s->wlock);
        return rc;
    }
    if (!rc)
        s->group_ops++;
    if (!s->committing) {
        aster_mono_us deadline = aster_mono_now() + GROUP_WAIT_US;
        s->committing = true;
        while (atomic_load(&s->queued) > 0 && s->group_ops < GROUP_MAX &&
               aster_mono_now() < deadline) {
            /* Let the queued writers add their operations to this group. */
            pthread_mutex_unlock(&s->wlock);
            sched_yield();
            pthread_mutex_lock(&s->wlock);
        }
        int crc = s->tx_open ? group_commit(s, rc ? NULL : err) : rc;
        s->committing = false;
        pthread_mutex_unlock(&s->wlock);
        return rc ? rc : crc;
    }
    s->waiting[gen % SQ_GROUP_RING]++;
    while (s->done_gen < gen)
        pthread_cond_wait(&s->gcond, &s->wlock);
    if (!rc && s->done_rc[gen % SQ_GROUP_RING]) {
        rc = s->done_rc[gen % SQ_GROUP_RING];
        if (err && !err->code)
            *err = s->done_err[gen % SQ_GROUP_RING];
    }
    if (--s->waiting[gen % SQ_GROUP_RING] == 0)
        pthread_cond_broadcast(&s->gcond); /* a new group may take the slot */
    pthread_mutex_unlock(&s->wlock);
    return rc;
}

int sq_write_begin(sq_store *s, sq_conn **c, aster_err *err)
{
    *c = s->writer;
    return owns_batch(s) ? savepoint(s->writer, err) : op_begin(s, err);
}

int sq_write_end(sq_store *s, sq_conn *c, int rc, aster_err *err)
{
    return owns_batch(s) ? savepoint_end(c, rc, err) : op_end(s, rc, err);
}

int sq_read_begin(sq_store *s, sq_conn **out, aster_err *err)
{
    sq_conn *c = NULL;
    int rc;

    if (owns_batch(s)) {
        *out = s->writer;
        return 0;
    }
    pthread_mutex_lock(&s->plock);
    while (!s->free_readers && s->nreaders >= SQ_MAX_READERS)
        pthread_cond_wait(&s->pcond, &s->plock);
    if (s->free_readers) {
        c = s->free_readers;
        s->free_readers = c->next;
        pthread_mutex_unlock(&s->plock);
        *out = c;
        return 0;
    }
    s->nreaders++; /* reserve the slot; open outside the lock */
    pthread_mutex_unlock(&s->plock);
    rc = conn_open(s->file, false, &c, err);
    if (rc) {
        pthread_mutex_lock(&s->plock);
        s->nreaders--;
        pthread_cond_signal(&s->pcond);
        pthread_mutex_unlock(&s->plock);
        return rc;
    }
    *out = c;
    return 0;
}

void sq_read_end(sq_store *s, sq_conn *c)
{
    if (c == s->writer)
        return;
    pthread_mutex_lock(&s->plock);
    c->next = s->free_readers;
    s->free_readers = c;
    pthread_cond_signal(&s->pcond);
    pthread_mutex_unlock(&s->plock);
}

/* ---- schema version and migrations ----------------------------------------- */

static int read_version(sq_conn *c, int *out, aster_err *err)
{
    sqlite3_stmt *st;
    int rc, step, has;

    rc = sq_prepare(c, SQ_HAS_MIGRATIONS,
                    "SELECT count(*) FROM sqlite_master"
                    " WHERE type = 'table' AND name = 'schema_migrations'",
                    &st, err);
    if (rc)
        return rc;
    step = sqlite3_step(st);
    has = step == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
    if (step != SQLITE_ROW)
        rc = sq_dberr(c->db, step, "reading the schema version", err);
    sqlite3_reset(st);
    if (rc || !has) {
        *out = 0;
        return rc;
    }
    rc = sq_prepare(c, SQ_VERSION, "SELECT coalesce(max(version), 0) FROM schema_migrations", &st,
                    err);
    if (rc)
        return rc;
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    else
        rc = sq_dberr(c->db, step, "reading the schema version", err);
    sqlite3_reset(st);
    return rc;
}

static int too_new(const sq_store *s, int version, aster_err *err)
{
    return aster_err_set(err, ASTER_EINVAL, FIELD,
                         "database %s: schema version %d is newer than this aster (%d)", s->path,
                         version, ASTER_STORE_SCHEMA_VERSION);
}

/* Applies migration `to` (1-based) inside the caller's transaction. */
static int apply(sq_conn *c, int to, aster_err *err)
{
    char when[ASTER_TIME_BUFSZ], sql[160];
    int rc = sqlite3_exec(c->db, sq_migrations[to - 1], NULL, NULL, NULL);

    if (rc != SQLITE_OK)
        return sq_dberr(c->db, rc, "migrating the schema", err);
    aster_time_format_ms(aster_time_now(), when, sizeof(when));
    snprintf(sql, sizeof(sql),
             "INSERT INTO schema_migrations (version, applied_at) VALUES (%d, '%s')", to, when);
    rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_dberr(c->db, rc, "recording a migration", err);
}

static int sq_migrate(aster_store *st, int *from, int *to, aster_err *err)
{
    sq_store *s = (sq_store *)st;
    int rc, first = -1, v = 0;

    if (owns_batch(s))
        return aster_err_set(err, ASTER_EINVAL, FIELD, "cannot migrate inside a batch");
    /* One transaction per step, and the version read again inside it: a
     * second process migrating the same file at once finds the work done. */
    for (;;) {
        if ((rc = op_begin(s, err)))
            return rc;
        rc = pragma(s->writer,
                    "CREATE TABLE IF NOT EXISTS schema_migrations"
                    " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
                    err);
        if (!rc)
            rc = read_version(s->writer, &v, err);
        if (!rc && first < 0)
            first = v;
        if (!rc && v > ASTER_STORE_SCHEMA_VERSION)
            rc = too_new(s, v, err);
        if (!rc && v < ASTER_STORE_SCHEMA_VERSION)
            rc = apply(s->writer, ++v, err);
        if ((rc = op_end(s, rc, err)))
            return rc;
        if (v >= ASTER_STORE_SCHEMA_VERSION)
            break;
    }
    if (from)
        *from = first;
    if (to)
        *to = v;
    return 0;
}

static int sq_schema_version(aster_store *st, int *out, aster_err *err)
{
    sq_store *s = (sq_store *)st;
    sq_conn *c;
    int rc = sq_read_begin(s, &c, err);

    if (rc)
        return rc;
    rc = read_version(c, out, err);
    sq_read_end(s, c);
    return rc;
}

static int sq_ping(aster_store *st, aster_err *err)
{
    sq_store *s = (sq_store *)st;
    aster_err e = {0};
    struct stat sb;
    sq_conn *c;
    int v = 0, rc;

    /* A database deleted or replaced under a running server still answers
     * from the old inode, and every write would be lost with it. */
    if (stat(s->file, &sb) != 0)
        return aster_err_set(err, ASTER_EUNAVAIL, FIELD, "database %s: %s", s->path,
                             strerror(errno));
    if (sb.st_dev != s->dev || sb.st_ino != s->ino)
        return aster_err_set(err, ASTER_EUNAVAIL, FIELD,
                             "database %s was replaced since it was opened", s->path);
    rc = sq_read_begin(s, &c, &e);
    if (!rc) {
        rc = read_version(c, &v, &e);
        sq_read_end(s, c);
    }
    /* /readyz gives one reason: whatever failed, the store is unreachable. */
    if (rc)
        return aster_err_set(err, ASTER_EUNAVAIL, FIELD, "%s", e.msg);
    if (v == 0)
        return aster_err_set(err, ASTER_EUNAVAIL, FIELD,
                             "database %s has no schema (run aster migrate)", s->path);
    return 0;
}

/* ---- batches --------------------------------------------------------------- */

static int sq_batch(aster_store *st, aster_store_batch_fn fn, void *arg, aster_err *err)
{
    sq_store *s = (sq_store *)st;
    int rc;

    if (owns_batch(s)) {
        if ((rc = savepoint(s->writer, err)))
            return rc;
        rc = fn(st, arg, err);
        return savepoint_end(s->writer, rc, err);
    }
    if ((rc = op_begin(s, err)))
        return rc;
    atomic_store_explicit(&s->batch_owner, pthread_self(), memory_order_relaxed);
    atomic_store_explicit(&s->batch_active, true, memory_order_release);
    rc = fn(st, arg, err);
    atomic_store_explicit(&s->batch_active, false, memory_order_release);
    return op_end(s, rc, err);
}

/* ---- open and close ---------------------------------------------------------- */

static int take_lock(sq_store *s, aster_err *err)
{
    size_t len = strlen(s->path) + sizeof(".lock");
    char *lp = aster_malloc(len), buf[32];
    int fd, rc = 0;
    ssize_t n;

    snprintf(lp, len, "%s.lock", s->path);
    fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = aster_err_set(err, ASTER_EIO, FIELD, "cannot open database %s: lock file %s: %s",
                           s->path, lp, strerror(errno));
        goto out;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        long pid = 0;
        int e = errno;
        n = pread(fd, buf, sizeof(buf) - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            pid = strtol(buf, NULL, 10);
        }
        if (e != EWOULDBLOCK)
            rc = aster_err_set(err, ASTER_EIO, FIELD, "cannot lock %s: %s", lp, strerror(e));
        else if (pid > 0)
            rc = aster_err_set(err, ASTER_EBUSY, FIELD,
                               "database %s is in use by another aster process (pid %ld)", s->path,
                               pid);
        else
            rc = aster_err_set(err, ASTER_EBUSY, FIELD,
                               "database %s is in use by another aster process", s->path);
        close(fd);
        goto out;
    }
    /* The pid is for the message above only; the lock is the flock. */
    /* The pid only makes the other side's message clearer: a failure to
     * write it is not worth refusing to start over. */
    n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0)
        n = pwrite(fd, buf, (size_t)n, 0);
    s->lock_fd = fd;
out:
    aster_free(lp);
    return rc;
}

static void sq_close(aster_store *st)
{
    sq_store *s = (sq_store *)st;

    if (!s)
        return;
    while (s->free_readers) {
        sq_conn *c = s->free_readers;
        s->free_readers = c->next;
        conn_close(c);
        s->nreaders--;
    }
    /* Closing while another thread still reads is the caller's bug. */
    assert(s->nreaders == 0);
    /* The writer last: the last connection to close checkpoints the WAL. */
    conn_close(s->writer);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_cond_destroy(&s->pcond);
    pthread_mutex_destroy(&s->plock);
    pthread_mutex_destroy(&s->wlock);
    pthread_cond_destroy(&s->gcond);
    aster_free(s->file);
    aster_free(s->path);
    aster_free(s);
}

static int sq_open(const char *path, const aster_store_opts *opts, aster_store **out,
                   aster_err *err)
{
    sq_store *s = aster_calloc(1, sizeof(*s));
    struct stat sb;
    int rc, v = 0;

    s->base.ops = &aster_store_sqlite_ops;
    s->path = aster_strdup(path);
    s->lock_fd = -1;
    atomic_init(&s->batch_active, false);
    pthread_mutex_init(&s->wlock, NULL);
    pthread_cond_init(&s->gcond, NULL);
    pthread_mutex_init(&s->plock, NULL);
    pthread_cond_init(&s->pcond, NULL);

    /* Lock before opening: a second server must not even set pragmas. */
    if (opts->exclusive && (rc = take_lock(s, err)))
        goto out;
    if ((rc = conn_open(path, true, &s->writer, err)))
        goto out;
    /* SQLite's absolute name: readers opened later, and ping, must reach
     * this file even if the process changes directory meanwhile. */
    s->file = aster_strdup(sqlite3_db_filename(s->writer->db, "main"));
    if (stat(s->file, &sb) != 0) {
        rc = aster_err_set(err, ASTER_EIO, FIELD, "database %s: %s", path, strerror(errno));
        goto out;
    }
    s->dev = sb.st_dev;
    s->ino = sb.st_ino;
    if ((rc = read_version(s->writer, &v, err)))
        goto out;
    if (v > ASTER_STORE_SCHEMA_VERSION) {
        rc = too_new(s, v, err);
        goto out;
    }
    if (opts->migrate && (rc = sq_migrate(&s->base, NULL, NULL, err)))
        goto out;
    *out = &s->base;
    s = NULL;
out:
    if (s)
        sq_close(&s->base);
    return rc;
}

const struct aster_store_ops aster_store_sqlite_ops = {
    .name = "sqlite",
    .caps = 0, /* one process; no cross-process wake-ups */
    .open = sq_open,
    .close = sq_close,
    .migrate = sq_migrate,
    .schema_version = sq_schema_version,
    .ping = sq_ping,
    .job_insert = sq_job_insert,
    .job_insert_many = sq_job_insert_many,
    .insert_lanes = 1,
    .job_get = sq_job_get,
    .job_update = sq_job_update,
    .job_delete = sq_job_delete,
    .job_list = sq_job_list,
    .job_count = sq_job_count,
    .exec_insert = sq_exec_insert,
    .exec_get = sq_exec_get,
    .exec_update = sq_exec_update,
    .exec_list = sq_exec_list,
    .job_set_next = sq_job_set_next,
    .exec_claim = sq_exec_claim,
    .exec_extend = sq_exec_extend,
    .exec_reclaim = sq_exec_reclaim,
    .job_busy = sq_job_busy,
    .exec_next_due = sq_exec_next_due,
    .queue_depth = sq_queue_depth,
    .exec_count = sq_exec_count,
    .attempt_insert = sq_attempt_insert,
    .attempt_list = sq_attempt_list,
    .alert_insert = sq_alert_insert,
    .alert_list = sq_alert_list,
    .batch = sq_batch,
    .alert_raise = sq_alert_raise,
    .alert_due = sq_alert_due,
    .alert_next_due = sq_alert_next_due,
    .alert_set_delivery = sq_alert_set_delivery,
    .exec_unalerted_failures = sq_exec_unalerted_failures,
    .job_fail_streak = sq_job_fail_streak,
    .job_absent = sq_job_absent,
    .prune_execs_before = sq_prune_execs_before,
    .prune_execs_keep = sq_prune_execs_keep,
    .prune_alerts_before = sq_prune_alerts_before,
    .exec_max_id = sq_exec_max_id,
    .exec_jobs_after = sq_exec_jobs_after,
    .node_heartbeat = sq_node_heartbeat,
    .leader_acquire = sq_leader_acquire,
    .leader_release = sq_leader_release,
    .leader_fence = sq_leader_fence,
};
