/* sqlite_int.h — shared between the files of the SQLite backend only.
 *
 * conn.c       the handle: connections, statement cache, transactions,
 *              open/close, exclusive lock, migrations, ping, batches
 * migrations.c the schema, one SQL text per version
 * rows.c       jobs, executions, alerts: SQL, binding, row decoding
 * rows_retention.c  alert delivery queue, alert identity, retention
 *
 * See the comment at the top of conn.c for who runs where. */
#ifndef ASTER_STORE_SQLITE_INT_H
#define ASTER_STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "store/store_int.h"

/* Statement cache slots.  List queries have one slot per combination of
 * filters present (a bit mask), so that each variant is planned with the
 * indexes it can use instead of one catch-all "(? IS NULL OR col = ?)". */
enum {
    SQ_BEGIN,
    SQ_COMMIT,
    SQ_ROLLBACK,
    SQ_SAVEPOINT,
    SQ_RELEASE,
    SQ_ROLLBACK_TO,
    SQ_HAS_MIGRATIONS,
    SQ_VERSION,
    SQ_JOB_INSERT,
    SQ_JOB_GET_ID,
    SQ_JOB_GET_NAME,
    SQ_JOB_UPDATE,
    SQ_JOB_VERSION,
    SQ_JOB_DELETE,
    SQ_JOB_COUNT,
    SQ_EXEC_INSERT,
    SQ_EXEC_GET,
    SQ_EXEC_UPDATE,
    SQ_ALERT_INSERT,
    SQ_JOB_SET_NEXT,
    SQ_EXEC_CLAIM,
    SQ_EXEC_EXTEND,
    SQ_EXEC_RECLAIM_RETRY,
    SQ_EXEC_RECLAIM_FAIL,
    SQ_EXEC_RECLAIM_LOST,
    SQ_EXEC_NEXT_DUE,
    SQ_QUEUE_DEPTH,
    SQ_EXEC_COUNT,
    SQ_ATTEMPT_INSERT,
    SQ_ATTEMPT_LIST,
    SQ_JOB_LIST,                       /* + mask of 4 bits */
    SQ_EXEC_LIST = SQ_JOB_LIST + 16,   /* + mask of 4 bits */
    SQ_ALERT_LIST = SQ_EXEC_LIST + 16, /* + mask of 4 bits */
    /* rows_retention.c */
    SQ_ALERT_RAISE = SQ_ALERT_LIST + 16,
    SQ_ALERT_DUE,
    SQ_ALERT_NEXT_DUE,
    SQ_ALERT_SET_DELIVERY,
    SQ_EXEC_UNALERTED,
    SQ_STREAK_LAST,
    SQ_STREAK_COUNT,
    SQ_JOB_ABSENT,
    SQ_PRUNE_EXECS_BEFORE,
    SQ_PRUNE_EXECS_KEEP,
    SQ_PRUNE_ALERTS,
    SQ_EXEC_MAX_ID,
    SQ_JOBS_ALL,
    SQ_JOBS_AFTER,
    SQ_JOB_BUSY,
    SQ_NODE_HEARTBEAT,
    SQ_NODE_FORGET,
    SQ_LEADER_ACQUIRE,
    SQ_LEADER_RELEASE,
    SQ_LEADER_FENCE,
    SQ_STMT_COUNT
};

/* One SQLite connection and its prepared statements.  Used by one thread
 * at a time (the connection is opened with SQLITE_OPEN_NOMUTEX). */
typedef struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *stmt[SQ_STMT_COUNT];
    struct sq_conn *next; /* reader free list */
} sq_conn;

/* Results of the last few group commits, kept until their waiters have
 * read them: a new group never reuses a slot that still has waiters. */
#define SQ_GROUP_RING 8

typedef struct sq_store {
    struct aster_store base; /* first: store.c sees only this */
    char *path;              /* as the user wrote it, for messages */
    char *file;              /* absolute, for opening readers and for ping */
    int lock_fd;             /* PATH.lock held with flock(LOCK_EX), or -1 */
    dev_t dev;               /* identity of the file opened, to notice it replaced */
    ino_t ino;

    /* The writer connection and the right to use it. */
    pthread_mutex_t wlock;
    sq_conn *writer;
    /* The thread inside aster_store_batch, if any.  Written only by that
     * thread while it holds wlock; read by any thread to ask "is it me?",
     * hence atomic.  A thread can only ever see its own id here when it
     * set it itself. */
    atomic_bool batch_active;
    _Atomic pthread_t batch_owner;

    /* Group commit (conn.c, "transactions"): writes from many threads share
     * one transaction and one fsync.  All under wlock except `queued`. */
    atomic_int queued;          /* threads waiting to take wlock to write */
    bool tx_open;               /* a group transaction is open on the writer */
    bool committing;            /* its committer is gathering or committing */
    uint64_t tx_gen;            /* generation of the open (or last) group */
    uint64_t done_gen;          /* last generation whose commit has finished */
    int done_rc[SQ_GROUP_RING]; /* commit result by generation */
    aster_err done_err[SQ_GROUP_RING];
    int waiting[SQ_GROUP_RING]; /* waiters yet to read each slot */
    size_t group_ops;           /* operations in the open group */
    pthread_cond_t gcond;       /* with wlock: "a group has committed" */

    /* Reader connections, opened on demand up to SQ_MAX_READERS. */
    pthread_mutex_t plock;
    pthread_cond_t pcond;
    sq_conn *free_readers;
    int nreaders;
} sq_store;

/* Maps a SQLite result code to ASTER_EUNAVAIL (busy beyond the timeout) or
 * ASTER_EIO with the connection's message, prefixed by `what`. */
int sq_dberr(sqlite3 *db, int rc, const char *what, aster_err *err);

/* The cached statement in `slot`, prepared from `sql` on first use (sql is
 * only read then; it may be NULL when the caller knows the slot is filled,
 * see sq_cached).  The statement is reset and unbound when handed out. */
int sq_prepare(sq_conn *c, int slot, const char *sql, sqlite3_stmt **out, aster_err *err);
bool sq_cached(const sq_conn *c, int slot);

/* Writes: begin takes the writer (or joins this thread's batch through a
 * savepoint), end commits when rc == 0 or rolls back, releases the writer,
 * and returns the final code.  Every write is one begin/end pair. */
int sq_write_begin(sq_store *s, sq_conn **c, aster_err *err);
int sq_write_end(sq_store *s, sq_conn *c, int rc, aster_err *err);

/* Reads: a reader connection from the pool, or the writer when this thread
 * is inside a batch (so that it sees its own uncommitted rows). */
int sq_read_begin(sq_store *s, sq_conn **c, aster_err *err);
void sq_read_end(sq_store *s, sq_conn *c);

/* rows.c: the table's row operations (see store.h for their contracts). */
int sq_job_insert(aster_store *st, const aster_job *job, aster_err *err);
void sq_job_insert_many(aster_store *st, const aster_job *const *jobs, size_t n, int *rcs,
                        aster_err *errs);
int sq_job_get(aster_store *st, const char *key, aster_job *out, aster_err *err);
int sq_job_update(aster_store *st, const aster_job *job, int64_t expect_version, aster_err *err);
int sq_job_delete(aster_store *st, const char *id, aster_err *err);
int sq_job_list(aster_store *st, const aster_job_filter *f, aster_job **out, size_t *n,
                aster_err *err);
int sq_job_count(aster_store *st, int64_t *active, int64_t *paused, aster_err *err);
int sq_exec_insert(aster_store *st, const aster_exec *execs, size_t n, bool *written,
                   aster_err *err);
int sq_exec_get(aster_store *st, const char *id, aster_exec *out, aster_err *err);
int sq_exec_update(aster_store *st, const aster_exec *ex, aster_err *err);
int sq_exec_list(aster_store *st, const aster_exec_filter *f, aster_exec **out, size_t *n,
                 aster_err *err);
int sq_job_set_next(aster_store *st, const char *id, aster_time_us next_fire_at, aster_err *err);
int sq_exec_claim(aster_store *st, const char *owner, aster_time_us now, aster_time_us lease_until,
                  size_t max, aster_exec **out, size_t *n, aster_err *err);
int sq_exec_extend(aster_store *st, const char *owner, aster_time_us lease_until, aster_err *err);
int sq_exec_reclaim(aster_store *st, const char *keep_owner, aster_time_us expired_before,
                    aster_time_us dead_before, aster_time_us now, size_t *retried, size_t *failed,
                    aster_err *err);
/* Steps a statement that returns no row and resets it; bind_rc is the
 * folded result of its binds. */
int sq_step_done(sq_conn *c, sqlite3_stmt *st, int bind_rc, const char *what, aster_err *err);
/* Binding and decoding helpers shared by rows.c and rows_retention.c
 * (rows.c).  Bind results are folded into *rc: binds only fail on absurd
 * sizes, and the step that follows reports the statement's own failure. */
void sq_bind_text(sqlite3_stmt *st, int i, const char *s, int *rc);
void sq_bind_int(sqlite3_stmt *st, int i, int64_t v, int *rc);
void sq_bind_time(sqlite3_stmt *st, int i, aster_time_us t, int *rc); /* 0 is NULL */
int sq_col_id(sqlite3_stmt *st, int i, char out[ASTER_ID_LEN + 1], const char *table,
              aster_err *err);
void *sq_grow(void *arr, size_t n, size_t *cap, size_t size);
/* Decodes an alerts row (ALERT_COLS) into the aster_alert at `out`. */
int sq_read_alert(sqlite3_stmt *st, void *out, aster_err *err);
/* Runs a one-value SELECT on a reader (cached in `slot`); its ?1, if any,
 * is bound to `text` when not NULL, else to `num`.  NULL reads as 0. */
int sq_read_int64(sq_store *s, int slot, const char *sql, const char *text, int64_t num,
                  const char *what, int64_t *out, aster_err *err);

int sq_exec_next_due(aster_store *st, aster_time_us *out, aster_err *err);
int sq_queue_depth(aster_store *st, aster_time_us now, int64_t *out, aster_err *err);
int sq_exec_count(aster_store *st, const char *status, int64_t *out, aster_err *err);
int sq_attempt_insert(aster_store *st, const aster_attempt *a, aster_err *err);
int sq_attempt_list(aster_store *st, const char *execution_id, aster_attempt **out, size_t *n,
                    aster_err *err);
int sq_alert_insert(aster_store *st, const aster_alert *a, aster_err *err);
int sq_alert_list(aster_store *st, const aster_alert_filter *f, aster_alert **out, size_t *n,
                  aster_err *err);

/* rows_retention.c: alerts delivery and retention (see store.h). */
int sq_alert_raise(aster_store *st, const aster_alert *a, const char *dedupe_key, bool *inserted,
                   aster_err *err);
int sq_alert_due(aster_store *st, aster_time_us now, size_t max, aster_alert **out, size_t *n,
                 aster_err *err);
int sq_alert_next_due(aster_store *st, aster_time_us *out, aster_err *err);
int sq_alert_set_delivery(aster_store *st, const char *id, const char *state, int32_t attempts,
                          aster_time_us next_delivery_at, aster_err *err);
int sq_exec_unalerted_failures(aster_store *st, aster_time_us since, const char *key_prefix,
                               size_t max, aster_exec **out, size_t *n, aster_err *err);
int sq_job_fail_streak(aster_store *st, const char *job_id, int64_t max, int64_t *streak,
                       char last_success_id[ASTER_ID_LEN + 1], aster_err *err);
int sq_job_absent(aster_store *st, aster_time_us now, const char *key_prefix, const char *after_id,
                  int limit, aster_job_absence **out, size_t *n, aster_err *err);
int sq_prune_execs_before(aster_store *st, aster_time_us before, size_t max, size_t *deleted,
                          aster_err *err);
int sq_prune_execs_keep(aster_store *st, const char *job_id, int64_t keep, size_t max,
                        size_t *deleted, aster_err *err);
int sq_prune_alerts_before(aster_store *st, aster_time_us before, size_t max, size_t *deleted,
                           aster_err *err);
int sq_exec_max_id(aster_store *st, char out[ASTER_ID_LEN + 1], aster_err *err);
int sq_exec_jobs_after(aster_store *st, const char *since_id, const char *after_job, int limit,
                       char **ids, size_t *n, aster_err *err);

/* rows_cluster.c: coordination between processes (see store.h). */
int sq_job_busy(aster_store *st, const char *job_id, int64_t *out, aster_err *err);
int sq_node_heartbeat(aster_store *st, const char *node, const char *role, aster_time_us at,
                      aster_err *err);
int sq_leader_acquire(aster_store *st, const char *node, aster_time_us now,
                      aster_time_us lease_until, int64_t *token, aster_err *err);
int sq_leader_release(aster_store *st, const char *node, int64_t token, aster_err *err);
int sq_leader_fence(aster_store *st, int64_t token, aster_err *err);

extern const char *const sq_migrations[];
extern const int sq_migration_count;

#endif
