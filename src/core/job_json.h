/* job_json.h — the job document: validation of what clients send and the
 * JSON form of jobs, executions and alerts that the API answers with.
 *
 * Pure: no I/O but the zoneinfo files read through cron/tz.h. */
#ifndef ASTER_CORE_JOB_JSON_H
#define ASTER_CORE_JOB_JSON_H

#include <jansson.h>
#include <stdbool.h>

#include "core/job.h"
#include "util/err.h"

struct aster_jw;

typedef struct aster_job_rules {
    bool allow_commands; /* command targets allowed (--allow-commands) */
} aster_job_rules;

/* Validates the job document `doc` and fills the user-settable fields of
 * `job` (caller's init'ed struct), with defaults for absent fields.  Does
 * not touch id, times, version or next_fire_at.  Unknown fields are an error.
 * Read-only fields (id, created_at, updated_at, next_fire_at) are accepted
 * and ignored, so a document read with GET can be sent back with PUT.
 * When `doc` has no name, job->name is left as it is (the caller generates
 * one, or keeps the current one).  ASTER_EINVAL naming the field, or
 * ASTER_EPERM for a command job when commands are not allowed. */
ASTER_MUST_CHECK
int aster_job_from_json(const json_t *doc, const aster_job_rules *rules, aster_job *job,
                        aster_err *err);

/* Applies an RFC 7396 merge patch to `job`: the job's document, with the
 * patch's keys replacing (or, when null, removing) its own, is validated as
 * a whole.  On failure `job` is untouched. */
ASTER_MUST_CHECK
int aster_job_patch(const json_t *patch, const aster_job_rules *rules, aster_job *job,
                    aster_err *err);

/* Recomputes job->next_fire_at: the first fire strictly after `after`, or 0
 * when paused or when the schedule has no fire left. */
void aster_job_update_next(aster_job *job, aster_time_us after);

/* The job's response form, written to `w` (the API's hot path), and the
 * same as a tree (a new reference; NULL when a stored string is not valid
 * UTF-8, which only an edit behind Aster's back can cause). */
void aster_job_write(const aster_job *job, struct aster_jw *w);
json_t *aster_job_to_json(const aster_job *job);

/* Response forms (new references). */
json_t *aster_exec_to_json(const aster_exec *ex, bool with_output);
json_t *aster_alert_to_json(const aster_alert *a);
/* Needs store.h's aster_attempt: declared with a forward struct. */
struct aster_attempt;
json_t *aster_attempt_to_json(const struct aster_attempt *a);

/* "2026-11-22T18:00:00.000Z" as a JSON string, or null when t is 0. */
json_t *aster_json_time(aster_time_us t);

/* "1h30m", "90s" -> "1m30s": the canonical text of a duration. */
char *aster_duration_format(int64_t us, char *buf, size_t n);

#endif
