/* engine.h — the scheduler and the dispatcher: turns schedules into
 * executions and executions into attempts, on one libuv loop thread.
 *
 *   API thread --aster_engine_job_changed--> inbox --uv_async--> loop
 *   other processes --NOTIFY (store listener)--> loop
 *   loop: timer heap of next fires -> fires written in one transaction
 *         -> claim pending executions (lease) -> runner (HTTP / command)
 *         -> results batched into one transaction per loop turn
 *
 * The engine talks to the database only through store.h, so the same code
 * runs on SQLite (aster serve) and on PostgreSQL. */
#ifndef ASTER_ENGINE_H
#define ASTER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/metrics.h"

typedef struct aster_engine aster_engine; /* opaque */

typedef struct aster_engine_opts {
    const aster_logger *log;       /* borrowed for the engine's life */
    aster_store *store;            /* borrowed for the engine's life */
    size_t concurrency;            /* attempts in flight at most */
    size_t output_cap;             /* bytes of output kept per attempt */
    int64_t lease_ms;              /* claim lease; extended every lease_ms / 3 */
    int64_t kill_grace_ms;         /* SIGTERM -> SIGKILL for commands */
    aster_metrics *metrics;        /* borrowed; may be NULL */
    struct aster_alerter *alerter; /* borrowed; told of final statuses and misses; may be NULL */

    /* Roles (docs/operations.md).  `aster serve` sets both; `aster
     * scheduler` schedules only, `aster worker` works only. */
    bool schedule; /* turns schedules into executions */
    bool work;     /* claims executions and runs them */
    /* Schedule only while holding the leadership (stores other processes
     * share): every write of fires is fenced with the term's token. */
    bool elect;
    int64_t leader_lease_ms; /* default 5000; renewed every third of it */
    int64_t heartbeat_ms;    /* default 2000 (shared stores, when working) */
    int64_t dead_ms;         /* a node silent this long is dead; default 6000 */
    const char *role;        /* recorded with the heartbeat ("worker"); static */
} aster_engine_opts;

/* Loads the active jobs, recovers what a previous process left running, and
 * starts the loop thread.  Copies `opts`. */
ASTER_MUST_CHECK
int aster_engine_start(const aster_engine_opts *opts, aster_engine **out, aster_err *err);

/* A job was created, changed, paused, resumed, deleted or triggered: the
 * scheduler takes it at once.  `job` is the job as just stored (copied), or
 * NULL to make the engine read it from the store.  Any thread; cheap (one
 * queue append and a coalesced wake-up). */
void aster_engine_job_changed(aster_engine *e, const char *job_id, const aster_job *job);

/* Stops taking new work, lets attempts in flight finish for up to
 * `grace_ms`, and leaves the rest running in the store, to be recovered by
 * the next start.  Joins the loop thread and frees the engine.  Call from
 * the thread that started it.  NULL is a no-op. */
void aster_engine_stop(aster_engine *e, int64_t grace_ms);

/* Attempts in flight now (for metrics).  Any thread. */
size_t aster_engine_in_flight(const aster_engine *e);

/* Whether this engine creates fires now: it schedules and, when elected,
 * holds the leadership.  Any thread (an atomic read); NULL is false. */
bool aster_engine_is_leader(const aster_engine *e);

#endif
