/* job.h — the job and execution values shared by the store, the engine and
 * the API.  Plain structs: the representation is the contract between those
 * modules; validation and the JSON codec live beside them in core/. */
#ifndef ASTER_CORE_JOB_H
#define ASTER_CORE_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "util/time.h"

#define ASTER_ID_LEN 36 /* UUID text, without the NUL */

typedef enum { ASTER_DELIVERY_ATLEAST_ONCE = 0, ASTER_DELIVERY_ATMOST_ONCE = 1 } aster_delivery;
typedef enum { ASTER_TARGET_HTTP = 0, ASTER_TARGET_COMMAND = 1 } aster_target_kind;
typedef enum { ASTER_OVERLAP_ALLOW = 0, ASTER_OVERLAP_FORBID, ASTER_OVERLAP_REPLACE } aster_overlap;
typedef enum {
    ASTER_MISFIRE_SKIP = 0,
    ASTER_MISFIRE_RUN_ONCE,
    ASTER_MISFIRE_RUN_ALL
} aster_misfire;

/* A job.  Strings are owned by the struct (aster_job_fini frees them).
 * `target` is the target's JSON document as stored (api/method/headers/body
 * or command/args/env/cwd); only core/ and the executors look inside it.
 * Times are 0 when absent (next_fire_at of a paused or finished job). */
typedef struct aster_job {
    char id[ASTER_ID_LEN + 1];
    char *name;
    char *schedule;
    char *timezone;
    aster_delivery delivery;
    aster_target_kind target_kind;
    char *target;
    int32_t max_retries;
    int64_t retry_backoff_ms;
    int64_t retry_backoff_max_ms;
    int64_t timeout_ms;
    aster_overlap overlap;
    aster_misfire misfire;
    int64_t misfire_grace_ms;
    int32_t dst_gap;     /* aster_dst_gap (cron/cron.h) */
    int32_t dst_overlap; /* aster_dst_overlap */
    bool paused;
    char *alert_webhook;            /* NULL: the global webhook */
    int32_t alert_after_failures;   /* 0: off */
    int64_t alert_if_no_success_ms; /* 0: off */
    aster_time_us next_fire_at;
    aster_time_us created_at;
    aster_time_us updated_at;
    int64_t version; /* bumped by every update; optimistic concurrency */
} aster_job;

typedef enum {
    ASTER_EXEC_PENDING = 0,
    ASTER_EXEC_RUNNING,
    ASTER_EXEC_SUCCEEDED,
    ASTER_EXEC_FAILED,
    ASTER_EXEC_TIMED_OUT,
    ASTER_EXEC_SKIPPED,
    ASTER_EXEC_MISSED,
    ASTER_EXEC_CANCELLED,
    ASTER_EXEC_STATUS_COUNT
} aster_exec_status;

typedef enum {
    ASTER_TRIGGER_SCHEDULE = 0,
    ASTER_TRIGGER_MANUAL,
    ASTER_TRIGGER_CATCHUP
} aster_trigger;

/* One execution: a fire or a manual trigger.  Strings owned (aster_exec_fini).
 * Numbers that do not apply (http_status for a command) are -1; times 0. */
typedef struct aster_exec {
    char id[ASTER_ID_LEN + 1];
    char job_id[ASTER_ID_LEN + 1];
    aster_time_us scheduled_at;
    aster_trigger trigger;
    aster_exec_status status;
    int32_t attempt;          /* 1-based */
    aster_time_us not_before; /* earliest start (retry backoff) */
    char *claimed_by;         /* NULL unless running */
    aster_time_us lease_until;
    aster_time_us started_at;
    aster_time_us finished_at;
    int64_t duration_ms; /* -1 until finished */
    int64_t drift_ms;    /* -1 until started */
    int32_t http_status;
    int32_t exit_code;
    char *error;
    char *output;
    aster_time_us created_at;
} aster_exec;

/* An alert raised about a job (and usually one of its executions). */
typedef struct aster_alert {
    char id[ASTER_ID_LEN + 1];
    char job_id[ASTER_ID_LEN + 1];
    char execution_id[ASTER_ID_LEN + 1]; /* "" when about no one execution */
    char *kind;                          /* "failed", "consecutive_failures", ... */
    char *message;
    aster_time_us created_at;
    char *delivery_state; /* "pending", "delivered", "failed", "none" */
    int32_t delivery_attempts;
    aster_time_us next_delivery_at;
} aster_alert;

void aster_alert_init(aster_alert *a);
void aster_alert_fini(aster_alert *a);

/* init: zero the struct with "absent" markers (-1 numbers).  fini: free the
 * owned strings; the struct may be init'ed again.  NULL-safe. */
void aster_job_init(aster_job *job);
void aster_job_fini(aster_job *job);
void aster_job_copy(aster_job *dst, const aster_job *src); /* dst is init'ed; deep copy */
void aster_exec_init(aster_exec *ex);
void aster_exec_fini(aster_exec *ex);
void aster_exec_copy(aster_exec *dst, const aster_exec *src);

/* Stable names used in JSON, SQL and metrics (static strings), and back.
 * The parsers return -1 for an unknown name. */
const char *aster_exec_status_name(aster_exec_status s);
int aster_exec_status_parse(const char *s);
const char *aster_trigger_name(aster_trigger t);
int aster_trigger_parse(const char *s);
const char *aster_delivery_name(aster_delivery d);
int aster_delivery_parse(const char *s);
const char *aster_overlap_name(aster_overlap o);
int aster_overlap_parse(const char *s);
const char *aster_misfire_name(aster_misfire m);
int aster_misfire_parse(const char *s);
const char *aster_target_kind_name(aster_target_kind k);
int aster_target_kind_parse(const char *s);
bool aster_exec_status_is_final(aster_exec_status s);

#endif
