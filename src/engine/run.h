/* run.h — the executors: run one attempt of an execution on the engine's
 * libuv loop and report its outcome.  Two kinds, one interface:
 *   HTTP    (run_http.c): libcurl multi driven by the loop; connection reuse;
 *           at most `max_in_flight` transfers, the rest queued in order.
 *   command (run_cmd.c):  uv_spawn of argv in a new process group, never a
 *           shell; stdout+stderr captured up to a cap; the timeout sends
 *           SIGTERM to the group, then SIGKILL 5 s later.
 *
 * Threads: every function here runs on the loop thread only, and callbacks
 * are called on it. */
#ifndef ASTER_ENGINE_RUN_H
#define ASTER_ENGINE_RUN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/job.h"
#include "util/err.h"

/* What one attempt needs.  Borrowed during aster_runner_submit (copied). */
typedef struct aster_run_req {
    const char *exec_id;
    const char *job_id;
    aster_target_kind kind;
    const char *target; /* the job's stored target JSON (core/job_json.c) */
    aster_time_us scheduled_at;
    int32_t attempt; /* 1-based */
    int64_t timeout_ms;
    const char *idempotency_key; /* same for every attempt of one fire */
} aster_run_req;

/* Outcome of one attempt.  Owned by the runner; valid during the callback. */
typedef struct aster_run_result {
    aster_exec_status status; /* SUCCEEDED, FAILED, TIMED_OUT or CANCELLED */
    int32_t http_status;      /* -1 when none (command, or no answer) */
    int32_t exit_code;        /* -1 when none (HTTP, or killed by a signal) */
    const char *error;        /* NULL on success; one line */
    const char *output;       /* response body / stdout+stderr, capped; may be "".
                               * Text: each NUL or byte that is not valid UTF-8
                               * became '?' (stored as TEXT, served as JSON). */
    size_t output_dropped;    /* bytes past the cap, counted and dropped */
    aster_time_us started_at;
    aster_time_us finished_at;
} aster_run_result;

typedef void (*aster_run_cb)(void *arg, const aster_run_result *res);

typedef struct aster_runner aster_runner; /* opaque */

typedef struct aster_runner_opts {
    size_t max_in_flight;  /* HTTP transfers at once (default 1000) */
    size_t output_cap;     /* bytes kept of output (default 64 KiB) */
    int64_t kill_grace_ms; /* SIGTERM -> SIGKILL (default 5000) */
} aster_runner_opts;

/* Creates a runner on `loop` (borrowed; must outlive the runner). */
ASTER_MUST_CHECK
int aster_runner_new(uv_loop_t *loop, const aster_runner_opts *opts, aster_runner **out,
                     aster_err *err);

/* Starts (or queues) one attempt; `cb(arg, result)` is called exactly once,
 * later, from the loop — never from inside this call.  Returns a handle id
 * (> 0) usable with aster_runner_cancel.  A target that cannot be run
 * (malformed JSON, no such command) still calls cb, with status FAILED and
 * the reason in error. */
uint64_t aster_runner_submit(aster_runner *r, const aster_run_req *req, aster_run_cb cb, void *arg);

/* Cancels a running or queued attempt: its cb gets status CANCELLED (a
 * command's process group is killed).  Unknown or finished ids: no-op. */
void aster_runner_cancel(aster_runner *r, uint64_t id);

/* Attempts running or queued now. */
size_t aster_runner_in_flight(const aster_runner *r);

/* Cancels everything still running (callbacks fire with CANCELLED before
 * this returns; a command's group gets SIGKILL at once, no grace), then
 * frees the runner once every handle is closed: the caller runs the loop
 * until aster_runner_free's close completes (it sets *done when finished,
 * if done is not NULL).  NULL is a no-op. */
void aster_runner_free(aster_runner *r, int *done);

#endif
