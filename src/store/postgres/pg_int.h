/* pg_int.h — shared between the files of the PostgreSQL backend only.
 *
 * conn.c           the handle: connection pool, transactions, retries and
 *                  reconnects, open/close, migrations, ping, batches
 * migrations.c     the schema, one SQL text per version
 * rows.c           jobs, executions, attempts, alerts: SQL, parameters,
 *                  row decoding
 * rows_retention.c alert delivery queue, alert identity, retention
 *
 * See the comment at the top of conn.c for who runs where. */
#ifndef ASTER_STORE_PG_INT_H
#define ASTER_STORE_PG_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store_int.h"

/* Prepared statement slots, one name per slot on each connection ("aN").
 * List queries have one slot per combination of filters present (a bit
 * mask), as in the SQLite backend, so that each variant is planned with
 * the indexes it can use. */
enum {
    PG_JOB_INSERT,
    PG_JOB_GET_ID,
    PG_JOB_GET_NAME,
    PG_JOB_UPDATE,
    PG_JOB_VERSION,
    PG_JOB_DELETE,
    PG_JOB_COUNT,
    PG_EXEC_INSERT,
    PG_EXEC_GET,
    PG_EXEC_UPDATE,
    PG_ALERT_INSERT,
    PG_JOB_SET_NEXT,
    PG_EXEC_CLAIM,
    PG_EXEC_EXTEND,
    PG_EXEC_RECLAIM_RETRY,
    PG_EXEC_RECLAIM_FAIL,
    PG_EXEC_RECLAIM_LOST,
    PG_EXEC_NEXT_DUE,
    PG_QUEUE_DEPTH,
    PG_EXEC_COUNT,
    PG_ATTEMPT_INSERT,
    PG_ATTEMPT_LIST,
    PG_JOB_LIST,                       /* + mask of 4 bits */
    PG_EXEC_LIST = PG_JOB_LIST + 16,   /* + mask of 4 bits */
    PG_ALERT_LIST = PG_EXEC_LIST + 16, /* + mask of 4 bits */
    /* rows_retention.c */
    PG_ALERT_RAISE = PG_ALERT_LIST + 16,
    PG_ALERT_DUE,
    PG_ALERT_NEXT_DUE,
    PG_ALERT_SET_DELIVERY,
    PG_EXEC_UNALERTED,
    PG_STREAK_LAST,
    PG_STREAK_COUNT,
    PG_JOB_ABSENT,
    PG_PRUNE_EXECS_BEFORE,
    PG_PRUNE_EXECS_KEEP,
    PG_PRUNE_ALERTS,
    PG_EXEC_MAX_ID,
    PG_JOBS_ALL,
    PG_JOBS_AFTER,
    /* rows_cluster.c */
    PG_JOB_BUSY,
    PG_NODE_HEARTBEAT,
    PG_NODE_FORGET,
    PG_LEADER_ACQUIRE,
    PG_LEADER_RELEASE,
    PG_LEADER_FENCE,
    PG_ANNOUNCE_CANCEL,
    PG_EXEC_FINISH,
    PG_JOB_EXISTS,
    PG_ANNOUNCE_JOBS,
    PG_EXEC_EXISTS,
    PG_JOB_INSERT_MANY,
    PG_JOB_IDS_EXIST,
    PG_STMT_COUNT
};

/* One libpq connection.  Used by one thread at a time: checked out of the
 * pool for one call, or pinned to a thread for the length of a batch. */
typedef struct pg_conn {
    PGconn *db;
    bool prepared[PG_STMT_COUNT]; /* forgotten when the connection is reset */
    /* The last failed statement's SQLSTATE, violated constraint and first
     * line of message ("" when none), for the caller to map. */
    char sqlstate[6];
    char constraint[64];
    char msg[200];
    int depth;            /* batches open on it (0: in the pool or one call) */
    pthread_t owner;      /* the batch's thread, when depth > 0 */
    struct pg_conn *next; /* free list, or the list of pinned connections */
} pg_conn;

typedef struct pg_announcer pg_announcer; /* announce.c */

typedef struct pg_store {
    struct aster_store base; /* first: store.c sees only this */
    char *url;               /* as given, for libpq (may hold a password: never logged) */
    char *where;             /* "db@host:port", for messages */

    /* The pool: idle connections on `idle`, those pinned to a batch on
     * `pinned`; `nconns` counts every open one (idle, pinned, in a call). */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pg_conn *idle;
    pg_conn *pinned;
    int nconns;
    pg_announcer *announcer; /* started by the first job created; under lock */

    /* Job creations waiting to be written together (rows_bulk.c). */
    pthread_mutex_t ins_lock;
    pthread_cond_t ins_cond;
    struct pg_ins *ins_head, **ins_tail;
    int ins_lanes; /* statements in flight */
} pg_store;

/* The columns of jobs, in the order rows.c reads and writes them. */
#define PG_JOB_COLS                                                                                \
    "id, name, schedule, timezone, delivery, target_kind, target, max_retries, "                   \
    "retry_backoff_ms, retry_backoff_max_ms, timeout_ms, overlap, misfire, misfire_grace_ms, "     \
    "dst_gap, dst_overlap, paused, alert_webhook, alert_after_failures, "                          \
    "alert_if_no_success_ms, next_fire_at, created_at, updated_at, version"

/* announce.c: queues the id of a job just committed, for listeners
 * (ASTER_STORE_EV_JOB), sent soon by a thread of the store's own; stop
 * sends what is queued and ends the thread (pg_close). */
void pg_announce_job(pg_store *s, const char *id);
void pg_announce_stop(pg_store *s);

/* Parameters of one statement, all sent as text (the server infers or the
 * SQL casts the types).  NULL values are SQL NULL. */
#define PG_MAX_PARAMS 32
typedef struct pg_params {
    int n;
    const char *v[PG_MAX_PARAMS];
    char buf[PG_MAX_PARAMS][24];
} pg_params;

void pg_p_text(pg_params *p, int i, const char *s); /* i is 1-based ($i) */
void pg_p_int(pg_params *p, int i, int64_t v);
void pg_p_time(pg_params *p, int i, int64_t t); /* 0 (absent) is NULL */
void pg_p_opt(pg_params *p, int i, int64_t v);  /* -1 (does not apply) is NULL */
void pg_p_bool(pg_params *p, int i, bool v);

/* Runs the statement in `slot` (prepared from `sql` on this connection's
 * first use; sql may be NULL when pg_is_prepared says it is).  Returns the
 * result (caller frees with PQclear) when it is PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK; otherwise NULL with the failure recorded in c
 * (sqlstate, constraint, msg), for the caller to map: a constraint it
 * expects, or else pg_fail. */
PGresult *pg_query(pg_conn *c, int slot, const char *sql, const pg_params *p);
bool pg_is_prepared(const pg_conn *c, int slot);

/* Maps the failure recorded in c to ASTER_EUNAVAIL (connection lost,
 * server shutting down, too many connections, serialization failure or
 * deadlock), ASTER_EINVAL (data the server refuses, e.g. text that is not
 * UTF-8) or ASTER_EIO (anything else), with the server's message prefixed
 * by `what`.  Field "store". */
int pg_fail(const pg_conn *c, const char *what, aster_err *err);
bool pg_state_is(const pg_conn *c, const char *sqlstate);

/* Field readers: text results.  NULL reads as 0 (times), -1 (pg_col_opt)
 * or NULL (pg_col_str, which copies). */
int64_t pg_col_int(const PGresult *r, int row, int col);
int64_t pg_col_opt(const PGresult *r, int row, int col);
char *pg_col_str(const PGresult *r, int row, int col);
bool pg_col_bool(const PGresult *r, int row, int col);
int pg_col_id(const PGresult *r, int row, int col, char out[ASTER_ID_LEN + 1], const char *table,
              aster_err *err);
int pg_col_enum(const PGresult *r, int row, int col, int (*parse)(const char *), int *out,
                const char *table, aster_err *err);
/* Row readers and finalisers shared by rows.c and rows_retention.c
 * (pg_read_row_fn and pg_list.fini; defined in rows.c). */
int pg_read_alert(const PGresult *r, int i, void *out, aster_err *err);
void pg_fini_alert(void *p);
void pg_fini_exec(void *p);

/* Rows a command changed (UPDATE, DELETE, INSERT). */
size_t pg_changes(const PGresult *r);

/* A new connection outside the pool (the listener's), and its end. */
int pg_conn_open(const pg_store *s, pg_conn **out, aster_err *err);
void pg_conn_close(pg_conn *c); /* NULL is a no-op */

/* Runs `fn` on a connection of the pool.  PG_WRITE wraps it in BEGIN ..
 * COMMIT (rolled back when fn fails); PG_READ and PG_IDEMPOTENT run it as
 * it is (each statement its own snapshot and transaction).  Inside this thread's batch, fn runs on
 * the batch's connection within a SAVEPOINT instead, so that a failing call changes nothing and the
 * batch goes on.
 *
 * Outside a batch, fn is run again when that is safe: once after the
 * connection was found broken (reset first) unless the break came during
 * COMMIT, and a few times after a serialization failure or deadlock.  So
 * fn must leave nothing allocated in ctx when it fails, and must set its
 * outputs only from what it read in this run. */
enum {
    PG_READ,      /* reads only: run again after any break */
    PG_WRITE,     /* BEGIN .. COMMIT: run again unless the break came during COMMIT */
    PG_IDEMPOTENT /* one write statement that may be applied twice: no BEGIN */
};
typedef int (*pg_fn)(pg_conn *c, void *ctx, aster_err *err);
int pg_run(pg_store *s, int kind, pg_fn fn, void *ctx, aster_err *err);

/* The common shapes of a call, as pg_fn with their context (rows.c). */

/* One statement; `changes` gets the rows it changed. */
struct pg_stmt {
    int slot;
    const char *sql;
    const char *what; /* for the error message: "deleting a job" */
    pg_params p;
    size_t changes;
};
int pg_run_stmt(pg_conn *c, void *ctx, aster_err *err);

/* Decodes row i of r into the element at `out`; on failure leaves nothing
 * owned there. */
typedef int (*pg_read_row_fn)(const PGresult *r, int i, void *out, aster_err *err);

/* A query whose rows become an array of `size`-byte elements: `arr` (the
 * caller frees it, and each element with `fini`) of `n`. */
struct pg_list {
    int slot;
    const char *sql;
    const char *what;
    pg_params p;
    pg_read_row_fn read;
    void (*fini)(void *);
    size_t size;
    void *arr;
    size_t n;
};
int pg_run_list(pg_conn *c, void *ctx, aster_err *err);

/* A query answering one number; NULL (or no row) reads as `null`. */
struct pg_scalar {
    int slot;
    const char *sql;
    const char *what;
    pg_params p;
    int64_t value, null;
};
int pg_run_scalar(pg_conn *c, void *ctx, aster_err *err);

/* rows.c: see store.h for the contracts. */
int pg_job_insert(aster_store *st, const aster_job *job, aster_err *err);
int pg_job_get(aster_store *st, const char *key, aster_job *out, aster_err *err);
int pg_job_update(aster_store *st, const aster_job *job, int64_t expect_version, aster_err *err);
int pg_job_delete(aster_store *st, const char *id, aster_err *err);
int pg_job_list(aster_store *st, const aster_job_filter *f, aster_job **out, size_t *n,
                aster_err *err);
int pg_job_count(aster_store *st, int64_t *active, int64_t *paused, aster_err *err);
int pg_exec_insert(aster_store *st, const aster_exec *execs, size_t n, bool *written,
                   aster_err *err);
int pg_exec_get(aster_store *st, const char *id, aster_exec *out, aster_err *err);
int pg_exec_update(aster_store *st, const aster_exec *ex, aster_err *err);
int pg_exec_list(aster_store *st, const aster_exec_filter *f, aster_exec **out, size_t *n,
                 aster_err *err);
int pg_job_set_next(aster_store *st, const char *id, aster_time_us next_fire_at, aster_err *err);
int pg_exec_claim(aster_store *st, const char *owner, aster_time_us now, aster_time_us lease_until,
                  size_t max, aster_exec **out, size_t *n, aster_err *err);
int pg_exec_extend(aster_store *st, const char *owner, aster_time_us lease_until, aster_err *err);
int pg_exec_reclaim(aster_store *st, const char *keep_owner, aster_time_us expired_before,
                    aster_time_us dead_before, aster_time_us now, size_t *retried, size_t *failed,
                    aster_err *err);
int pg_exec_next_due(aster_store *st, aster_time_us *out, aster_err *err);
int pg_queue_depth(aster_store *st, aster_time_us now, int64_t *out, aster_err *err);
int pg_exec_count(aster_store *st, const char *status, int64_t *out, aster_err *err);
int pg_attempt_insert(aster_store *st, const aster_attempt *a, aster_err *err);
int pg_exec_finish(aster_store *st, const aster_exec *ex, const aster_attempt *at, size_t n,
                   aster_err *err);
/* rows.c: one job INSERT, without the announcement. */
int pg_job_insert_one(pg_store *s, const aster_job *job, aster_err *err);
void pg_job_insert_many(aster_store *st, const aster_job *const *jobs, size_t n, int *rcs,
                        aster_err *errs);
int pg_attempt_list(aster_store *st, const char *execution_id, aster_attempt **out, size_t *n,
                    aster_err *err);
int pg_alert_insert(aster_store *st, const aster_alert *a, aster_err *err);
int pg_alert_list(aster_store *st, const aster_alert_filter *f, aster_alert **out, size_t *n,
                  aster_err *err);

/* rows_retention.c */
int pg_alert_raise(aster_store *st, const aster_alert *a, const char *dedupe_key, bool *inserted,
                   aster_err *err);
int pg_alert_due(aster_store *st, aster_time_us now, size_t max, aster_alert **out, size_t *n,
                 aster_err *err);
int pg_alert_next_due(aster_store *st, aster_time_us *out, aster_err *err);
int pg_alert_set_delivery(aster_store *st, const char *id, const char *state, int32_t attempts,
                          aster_time_us next_delivery_at, aster_err *err);
int pg_exec_unalerted_failures(aster_store *st, aster_time_us since, const char *key_prefix,
                               size_t max, aster_exec **out, size_t *n, aster_err *err);
int pg_job_fail_streak(aster_store *st, const char *job_id, int64_t max, int64_t *streak,
                       char last_success_id[ASTER_ID_LEN + 1], aster_err *err);
int pg_job_absent(aster_store *st, aster_time_us now, const char *key_prefix, const char *after_id,
                  int limit, aster_job_absence **out, size_t *n, aster_err *err);
int pg_prune_execs_before(aster_store *st, aster_time_us before, size_t max, size_t *deleted,
                          aster_err *err);
int pg_prune_execs_keep(aster_store *st, const char *job_id, int64_t keep, size_t max,
                        size_t *deleted, aster_err *err);
int pg_prune_alerts_before(aster_store *st, aster_time_us before, size_t max, size_t *deleted,
                           aster_err *err);
int pg_exec_max_id(aster_store *st, char out[ASTER_ID_LEN + 1], aster_err *err);
int pg_exec_jobs_after(aster_store *st, const char *since_id, const char *after_job, int limit,
                       char **ids, size_t *n, aster_err *err);

extern const char *const pg_migrations[];
extern const int pg_migration_count;
extern const struct aster_store_ops aster_store_postgres_ops;

/* rows_cluster.c: coordination between processes (see store.h). */
int pg_job_busy(aster_store *st, const char *job_id, int64_t *out, aster_err *err);
int pg_node_heartbeat(aster_store *st, const char *node, const char *role, aster_time_us at,
                      aster_err *err);
int pg_leader_acquire(aster_store *st, const char *node, aster_time_us now,
                      aster_time_us lease_until, int64_t *token, aster_err *err);
int pg_leader_release(aster_store *st, const char *node, int64_t token, aster_err *err);
int pg_leader_fence(aster_store *st, int64_t token, aster_err *err);
int pg_announce_cancel(aster_store *st, const char *job_id, aster_time_us before, aster_err *err);
int pg_listen(aster_store *st, aster_store_listener **out, aster_err *err);
int pg_listener_fd(const aster_store_listener *l);
int pg_listener_read(aster_store_listener *l, aster_store_event_fn fn, void *arg, aster_err *err);
void pg_listener_close(aster_store_listener *l);

#endif
