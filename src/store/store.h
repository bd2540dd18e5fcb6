/* store.h — the one interface to Aster's database, whatever the backend.
 *
 * The URL chooses the backend: "sqlite:PATH" (one process) or
 * "postgres://..." (any number of processes).  Backend differences travel as
 * capability bits (ASTER_STORE_CAP_*), never as "is it postgres?" outside
 * src/store/.  store_int.h (the backend table) and sqlite/, postgres/ stay
 * private to this folder.
 *
 * Threads: a store handle may be used from any number of threads at once.
 * Every call is atomic: it commits before it returns (durably: an
 * acknowledged write survives kill -9 and power loss), or changes nothing.
 * Batches (aster_store_exec_insert with n > 1, aster_store_batch) commit in
 * one transaction: that is the group commit later work relies on.
 *
 * Ownership: structs passed in are borrowed for the call; structs filled for
 * the caller (out parameters) own their strings, freed with
 * aster_job_fini / aster_exec_fini / aster_alert_fini, and arrays with
 * aster_store_free_jobs / _execs / _alerts. */
#ifndef ASTER_STORE_H
#define ASTER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/job.h"
#include "util/err.h"

typedef struct aster_store aster_store; /* opaque */

/* Several processes may share the database (roles on many machines). */
#define ASTER_STORE_CAP_SHARED 0x1u
/* The backend can wake other processes on change (LISTEN/NOTIFY). */
#define ASTER_STORE_CAP_NOTIFY 0x2u

typedef struct aster_store_opts {
    /* Take the database for this process alone, and fail with ASTER_EBUSY
     * (and a message naming the holder's path) when another process has it.
     * `aster serve` on SQLite sets this: two servers on one file would fire
     * every job twice. */
    bool exclusive;
    /* Apply pending migrations on open (serve does; tests may not). */
    bool migrate;
} aster_store_opts;

/* Opens the store at `url`.  ASTER_EINVAL (field "store") for a malformed
 * URL or unknown scheme; ASTER_EBUSY when exclusive and held elsewhere;
 * ASTER_EIO / ASTER_EUNAVAIL when the database cannot be opened or reached.
 * On failure *out is untouched and nothing is left to free. */
ASTER_MUST_CHECK
int aster_store_open(const char *url, const aster_store_opts *opts, aster_store **out,
                     aster_err *err);
void aster_store_close(aster_store *st); /* NULL is a no-op */
/* The capabilities of the backend `url` names, without opening it (0 for
 * a URL no backend takes). */
unsigned aster_store_url_caps(const char *url);
unsigned aster_store_caps(const aster_store *st);
const char *aster_store_backend(const aster_store *st); /* "sqlite", for logs (static) */

/* Migrations: the schema is versioned; each migration runs once, in order,
 * in its own transaction.  *from / *to (may be NULL) report the versions. */
int aster_store_migrate(aster_store *st, int *from, int *to, aster_err *err);
int aster_store_schema_version(aster_store *st, int *out, aster_err *err);
int aster_store_latest_version(void); /* the version this binary migrates to */

/* Readiness: a real round trip to the database.  0 or ASTER_EUNAVAIL/EIO
 * with a message fit for /readyz. */
int aster_store_ping(aster_store *st, aster_err *err);

/* ---- jobs ---------------------------------------------------------------- */

/* Inserts `job` as given (the caller sets id, times, version 1).
 * ASTER_EEXIST with field "name" when the name is taken. */
ASTER_MUST_CHECK
int aster_store_job_insert(aster_store *st, const aster_job *job, aster_err *err);

/* Fills *out (init'ed by the caller) with the job whose id, or else name, is
 * `key`.  ASTER_ENOENT when there is none. */
ASTER_MUST_CHECK
int aster_store_job_get(aster_store *st, const char *key, aster_job *out, aster_err *err);

/* Replaces every column of the job with id job->id.  When
 * `expect_version` > 0 the row must still have that version (else
 * ASTER_ECONFLICT).  The stored version becomes job->version (the caller
 * increments it).  ASTER_ENOENT, or ASTER_EEXIST (field "name"). */
ASTER_MUST_CHECK
int aster_store_job_update(aster_store *st, const aster_job *job, int64_t expect_version,
                           aster_err *err);

/* Deletes the job with its executions and alerts, in one transaction.
 * ASTER_ENOENT when there is none. */
ASTER_MUST_CHECK
int aster_store_job_delete(aster_store *st, const char *id, aster_err *err);

typedef struct aster_job_filter {
    int paused;              /* -1 any, 0 active only, 1 paused only */
    const char *name_prefix; /* NULL: any (matched literally, no wildcards) */
    const char *after_id;    /* cursor: ids strictly greater; NULL: from the start */
    int limit;               /* 1..ASTER_STORE_MAX_PAGE */
} aster_job_filter;

#define ASTER_STORE_MAX_PAGE 1000

/* Jobs in id order (creation order, ids being UUIDv7).  *out is an array of
 * *n jobs; free with aster_store_free_jobs. */
ASTER_MUST_CHECK
int aster_store_job_list(aster_store *st, const aster_job_filter *f, aster_job **out, size_t *n,
                         aster_err *err);
void aster_store_free_jobs(aster_job *jobs, size_t n);

/* Counts for metrics and stats. */
int aster_store_job_count(aster_store *st, int64_t *active, int64_t *paused, aster_err *err);

/* ---- executions ----------------------------------------------------------- */

/* Inserts n executions in one transaction.  A fire (trigger schedule or
 * catchup) whose (job_id, scheduled_at) already exists is skipped, not an
 * error: creating a fire is idempotent.  written (may be NULL; else n
 * flags, the caller's) says which rows were written: a row claimed in its
 * insert may start only when it was.  ASTER_ENOENT (field "job_id") when a
 * job is gone. */
ASTER_MUST_CHECK
int aster_store_exec_insert(aster_store *st, const aster_exec *execs, size_t n, bool *written,
                            aster_err *err);

ASTER_MUST_CHECK
int aster_store_exec_get(aster_store *st, const char *id, aster_exec *out, aster_err *err);

/* Replaces the mutable columns (status, attempt, not_before, claimed_by,
 * lease_until, started/finished, duration, drift, http_status, exit_code,
 * error, output) of the execution with id ex->id.  ASTER_ENOENT. */
ASTER_MUST_CHECK
int aster_store_exec_update(aster_store *st, const aster_exec *ex, aster_err *err);

typedef struct aster_exec_filter {
    const char *job_id;    /* NULL: every job */
    int status;            /* -1 any, else aster_exec_status */
    aster_time_us since;   /* 0: any; else scheduled_at >= since */
    const char *before_id; /* cursor: ids strictly smaller; NULL: newest */
    int limit;             /* 1..ASTER_STORE_MAX_PAGE */
} aster_exec_filter;

/* Newest first (descending id).  Free with aster_store_free_execs. */
ASTER_MUST_CHECK
int aster_store_exec_list(aster_store *st, const aster_exec_filter *f, aster_exec **out, size_t *n,
                          aster_err *err);
void aster_store_free_execs(aster_exec *execs, size_t n);

/* ---- the engine's operations ------------------------------------------------
 *
 * Execution state machine (docs/architecture.md draws it):
 *   pending -> running            aster_store_exec_claim   (lease set)
 *   running -> pending            retry after a failed attempt (exec_update)
 *   running -> succeeded|failed|timed_out|cancelled   exec_update
 *   running -> pending | failed   aster_store_exec_reclaim (lease lost:
 *                                 ATLEAST_ONCE runs again, ATMOST_ONCE fails)
 * Invariant: running <=> claimed_by and lease_until set. */

/* Sets a job's next_fire_at without touching its version (the scheduler's
 * bookkeeping must not conflict with a user's concurrent update).
 * ASTER_ENOENT when the job is gone. */
ASTER_MUST_CHECK
int aster_store_job_set_next(aster_store *st, const char *id, aster_time_us next_fire_at,
                             aster_err *err);

/* Claims up to `max` pending executions with not_before <= now, oldest
 * first: each becomes running, claimed by `owner` until `lease_until`.
 * *out: array of *n (aster_store_free_execs). */
ASTER_MUST_CHECK
int aster_store_exec_claim(aster_store *st, const char *owner, aster_time_us now,
                           aster_time_us lease_until, size_t max, aster_exec **out, size_t *n,
                           aster_err *err);

/* Extends the lease of every execution `owner` has running. */
ASTER_MUST_CHECK
int aster_store_exec_extend(aster_store *st, const char *owner, aster_time_us lease_until,
                            aster_err *err);

/* Takes back running executions not claimed by `keep_owner` (NULL: any)
 * whose lease ends before `expired_before`, or whose claimer is a node
 * (aster_store_node_heartbeat) last heard of before `dead_before` (0: no
 * such test): ATLEAST_ONCE ones become pending again with attempt + 1
 * (not_before = now); ATMOST_ONCE ones become failed with the error "lost:
 * executor died".  Counts go to *retried / *failed (may be NULL). */
ASTER_MUST_CHECK
int aster_store_exec_reclaim(aster_store *st, const char *keep_owner, aster_time_us expired_before,
                             aster_time_us dead_before, aster_time_us now, size_t *retried,
                             size_t *failed, aster_err *err);

/* Executions of `job_id` running now, in all processes (the scheduler's
 * overlap test when other processes run the work). */
int aster_store_job_busy(aster_store *st, const char *job_id, int64_t *out, aster_err *err);

/* The earliest not_before of a pending execution, or 0 when none. */
int aster_store_exec_next_due(aster_store *st, aster_time_us *out, aster_err *err);

/* Pending executions with not_before <= now (the queue depth gauge). */
int aster_store_queue_depth(aster_store *st, aster_time_us now, int64_t *out, aster_err *err);

/* Executions with status `status` (an aster_exec_status), in all. */
int aster_store_exec_count(aster_store *st, int status, int64_t *out, aster_err *err);

/* One attempt of an execution, kept as history. */
struct aster_attempt;

/* Records n finished attempts in one transaction (or in the caller's
 * batch): ex[i] replaces its row's mutable columns, as
 * aster_store_exec_update, and at[i] joins the history, as
 * aster_store_attempt_insert, unless that attempt is already recorded.
 * Rows that are gone (their job was deleted) are skipped, not an error.
 * The engine's result path: one round trip on PostgreSQL, whatever n. */
ASTER_MUST_CHECK
int aster_store_exec_finish(aster_store *st, const aster_exec *ex, const struct aster_attempt *at,
                            size_t n, aster_err *err);

typedef struct aster_attempt {
    char execution_id[ASTER_ID_LEN + 1];
    int32_t attempt;
    aster_exec_status status;
    aster_time_us started_at, finished_at;
    int64_t duration_ms;
    int32_t http_status, exit_code; /* -1: none */
    char *error;                    /* owned; may be NULL */
} aster_attempt;

ASTER_MUST_CHECK
int aster_store_attempt_insert(aster_store *st, const aster_attempt *a, aster_err *err);
/* Attempts of one execution, in order.  Free with aster_store_free_attempts. */
ASTER_MUST_CHECK
int aster_store_attempt_list(aster_store *st, const char *execution_id, aster_attempt **out,
                             size_t *n, aster_err *err);
void aster_store_free_attempts(aster_attempt *a, size_t n);

/* ---- alerts ---------------------------------------------------------------- */

ASTER_MUST_CHECK
int aster_store_alert_insert(aster_store *st, const aster_alert *a, aster_err *err);

typedef struct aster_alert_filter {
    const char *job_id;    /* NULL: every job */
    const char *kind;      /* NULL: any */
    aster_time_us since;   /* 0: any; else created_at >= since */
    const char *before_id; /* cursor, newest first */
    int limit;
} aster_alert_filter;

ASTER_MUST_CHECK
int aster_store_alert_list(aster_store *st, const aster_alert_filter *f, aster_alert **out,
                           size_t *n, aster_err *err);
void aster_store_free_alerts(aster_alert *alerts, size_t n);

/* ---- coordination between processes ------------------------------------------
 *
 * Times are the callers' wall clocks: processes sharing a database must
 * keep their clocks in step (NTP); skew eats into the leases below. */

/* Records that `node` (the owner name it claims executions with) is alive
 * at `at`; `role` is free text for operators.  `at` = 0 declares it gone
 * (a graceful stop), so that what it still holds is taken back at once.
 * Nodes silent for a day and holding nothing are forgotten. */
ASTER_MUST_CHECK
int aster_store_node_heartbeat(aster_store *st, const char *node, const char *role,
                               aster_time_us at, aster_err *err);

/* Leadership of the scheduler: one holder at a time, for a lease.  Takes
 * it for `node` until `lease_until` when it is free or its lease ended
 * before `now`, or renews it when `node` holds it.  *token is the fencing
 * token of `node`'s term (renewing keeps it; a new term, also one taken
 * back by the same node after its lease ran out, gets the last token + 1),
 * or 0 when another node holds the lease. */
ASTER_MUST_CHECK
int aster_store_leader_acquire(aster_store *st, const char *node, aster_time_us now,
                               aster_time_us lease_until, int64_t *token, aster_err *err);

/* Gives the lease up at once (a graceful stop), if `token` is still the
 * current term. */
ASTER_MUST_CHECK
int aster_store_leader_release(aster_store *st, const char *node, int64_t token, aster_err *err);

/* The fencing check: ASTER_ECONFLICT unless `token` is the current term.
 * Call it first inside a batch (aster_store_batch): it also holds the
 * leadership row until the batch commits, so that no new term can begin
 * between the check and the commit.  A leader that was paused or cut off
 * past its lease can therefore never commit a write. */
ASTER_MUST_CHECK
int aster_store_leader_fence(aster_store *st, int64_t token, aster_err *err);

/* Notifications from other processes (backends with
 * ASTER_STORE_CAP_NOTIFY): a connection of its own whose descriptor the
 * caller polls for reading.  Every committed change of a job (created,
 * updated, paused, resumed, deleted; not the scheduler's next_fire_at)
 * announces the job's id; every execution that becomes pending announces
 * itself without an id.  Announcements are hints: some may be lost while
 * the connection is down, so a listener resynchronises after it opens
 * again. */
typedef struct aster_store_listener aster_store_listener; /* opaque */
typedef enum {
    ASTER_STORE_EV_JOB = 1,   /* job_id changed */
    ASTER_STORE_EV_EXEC = 2,  /* an execution became pending */
    ASTER_STORE_EV_CANCEL = 3 /* stop job_id's attempts of fires before `at` */
} aster_store_event;
typedef void (*aster_store_event_fn)(void *arg, aster_store_event ev, const char *job_id,
                                     aster_time_us at);

/* Asks every listener to stop the attempts of `job_id` whose fire is
 * older than `before` (overlap=replace when the work runs elsewhere).
 * Inside a batch it is sent when the batch commits, with the new fire.
 * A no-op on backends without ASTER_STORE_CAP_NOTIFY. */
ASTER_MUST_CHECK
int aster_store_announce_cancel(aster_store *st, const char *job_id, aster_time_us before,
                                aster_err *err);

/* ASTER_EINVAL (field "store") when the backend cannot notify;
 * ASTER_EUNAVAIL when the database cannot be reached. */
ASTER_MUST_CHECK
int aster_store_listen(aster_store *st, aster_store_listener **out, aster_err *err);
int aster_store_listener_fd(const aster_store_listener *l);
/* Reads what arrived, without blocking, and calls fn for each event.
 * ASTER_EUNAVAIL when the connection is lost: close and listen again. */
int aster_store_listener_read(aster_store_listener *l, aster_store_event_fn fn, void *arg,
                              aster_err *err);
void aster_store_listener_close(aster_store_listener *l); /* NULL is a no-op */

/* ---- batches ---------------------------------------------------------------- */

/* Runs `fn` inside one transaction: every store call `fn` makes on `st`
 * from this thread joins it, and all of it commits once (one fsync) or, when
 * fn returns non-zero, rolls back.  Other threads' writes wait meanwhile.
 * Returns fn's code, or the commit's error. */
typedef int (*aster_store_batch_fn)(aster_store *st, void *arg, aster_err *err);
ASTER_MUST_CHECK
int aster_store_batch(aster_store *st, aster_store_batch_fn fn, void *arg, aster_err *err);

/* ---- alerts delivery and retention ------------------------------------------
 *
 * For the alerter (engine/alert.c) and the pruner (engine/prune.c), each on
 * its own thread.  Alert identity: an alert may carry a dedupe key naming
 * the event it is about; (job_id, dedupe_key) is unique, so raising the
 * same event twice (from two paths, or again after a restart) stores one
 * alert.  Queries that look for events without an alert take the key's
 * prefix and append the event's own part as stated below. */

/* Inserts `a` unless the job already has an alert with `dedupe_key` (NULL:
 * always inserts).  *inserted (may be NULL) tells which.  ASTER_ENOENT
 * (field "job_id") when the job is gone. */
ASTER_MUST_CHECK
int aster_store_alert_raise(aster_store *st, const aster_alert *a, const char *dedupe_key,
                            bool *inserted, aster_err *err);

/* Up to `max` alerts in delivery_state "pending" whose next_delivery_at <=
 * now, earliest first.  Free with aster_store_free_alerts. */
ASTER_MUST_CHECK
int aster_store_alert_due(aster_store *st, aster_time_us now, size_t max, aster_alert **out,
                          size_t *n, aster_err *err);

/* The earliest next_delivery_at of a pending alert, or 0 when none. */
int aster_store_alert_next_due(aster_store *st, aster_time_us *out, aster_err *err);

/* Sets an alert's delivery columns ("pending", "delivered", "failed",
 * "none"; next_delivery_at 0 for none).  ASTER_ENOENT when it is gone (its
 * job was deleted, or it was pruned). */
ASTER_MUST_CHECK
int aster_store_alert_set_delivery(aster_store *st, const char *id, const char *state,
                                   int32_t attempts, aster_time_us next_delivery_at,
                                   aster_err *err);

/* Final failures (status failed or timed_out) with finished_at >= since
 * whose job has no alert with dedupe key `key_prefix` + execution id;
 * oldest first, at most `max`.  Only id, job_id, status, attempt,
 * finished_at and error are filled.  Free with aster_store_free_execs. */
ASTER_MUST_CHECK
int aster_store_exec_unalerted_failures(aster_store *st, aster_time_us since,
                                        const char *key_prefix, size_t max, aster_exec **out,
                                        size_t *n, aster_err *err);

/* A job's failure streak: the final failures among its executions newer
 * (in id order: fire order) than its newest success, counted up to `max`.
 * last_success_id gets that success's id, "" when it never succeeded. */
ASTER_MUST_CHECK
int aster_store_job_fail_streak(aster_store *st, const char *job_id, int64_t max, int64_t *streak,
                                char last_success_id[ASTER_ID_LEN + 1], aster_err *err);

/* A job whose absence alert is due (see aster_store_job_absent). */
typedef struct aster_job_absence {
    char job_id[ASTER_ID_LEN + 1];
    int64_t no_success_ms; /* the job's alert_if_no_success_ms */
    aster_time_us since;   /* its newest success's finished_at, else its created_at */
} aster_job_absence;

/* Active jobs with alert_if_no_success_ms > 0 that have had no success for
 * that long at `now` (since + no_success_ms <= now) and no alert with
 * dedupe key `key_prefix` + since (decimal microseconds); in id order after
 * `after_id` (NULL: from the start), at most `limit` (1..ASTER_STORE_MAX_PAGE).
 * *out: array of *n, caller frees with aster_free. */
ASTER_MUST_CHECK
int aster_store_job_absent(aster_store *st, aster_time_us now, const char *key_prefix,
                           const char *after_id, int limit, aster_job_absence **out, size_t *n,
                           aster_err *err);

/* Retention.  Each call is one short transaction deleting at most `max`
 * rows (1..ASTER_STORE_MAX_PAGE), so that writers queue behind it briefly;
 * callers loop while *deleted == max.  Pending and running executions are
 * never deleted; an execution's attempts go with it.  *deleted counts the
 * rows of the table named. */

/* Executions created before `before` and not finished after it. */
ASTER_MUST_CHECK
int aster_store_prune_execs_before(aster_store *st, aster_time_us before, size_t max,
                                   size_t *deleted, aster_err *err);
/* Executions of `job_id` older (in id order) than its `keep` (>= 1) newest. */
ASTER_MUST_CHECK
int aster_store_prune_execs_keep(aster_store *st, const char *job_id, int64_t keep, size_t max,
                                 size_t *deleted, aster_err *err);
/* Alerts created before `before`, except those still pending delivery. */
ASTER_MUST_CHECK
int aster_store_prune_alerts_before(aster_store *st, aster_time_us before, size_t max,
                                    size_t *deleted, aster_err *err);

/* The greatest execution id, "" when there is none: a watermark for
 * aster_store_exec_jobs_after. */
int aster_store_exec_max_id(aster_store *st, char out[ASTER_ID_LEN + 1], aster_err *err);

/* The ids of jobs that have executions with id > `since_id` ("" or NULL:
 * every job), in id order after `after_job` (NULL: from the start), at
 * most `limit` (1..ASTER_STORE_MAX_PAGE).  *ids is one buffer of *n ids,
 * the i-th at *ids + i * (ASTER_ID_LEN + 1); caller frees with aster_free. */
ASTER_MUST_CHECK
int aster_store_exec_jobs_after(aster_store *st, const char *since_id, const char *after_job,
                                int limit, char **ids, size_t *n, aster_err *err);

#endif
