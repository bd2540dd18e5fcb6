#include "core/job.h"

#include <string.h>

#include "util/mem.h"

void aster_job_init(aster_job *job)
{
    memset(job, 0, sizeof(*job));
}

void aster_job_fini(aster_job *job)
{
    if (!job)
        return;
    aster_free(job->name);
    aster_free(job->schedule);
    aster_free(job->timezone);
    aster_free(job->target);
    aster_free(job->alert_webhook);
    aster_job_init(job);
}

void aster_job_copy(aster_job *dst, const aster_job *src)
{
    *dst = *src;
    dst->name = aster_strdup(src->name);
    dst->schedule = aster_strdup(src->schedule);
    dst->timezone = aster_strdup(src->timezone);
    dst->target = aster_strdup(src->target);
    dst->alert_webhook = aster_strdup(src->alert_webhook);
}

void aster_exec_init(aster_exec *ex)
{
    memset(ex, 0, sizeof(*ex));
    ex->attempt = 1;
    ex->duration_ms = -1;
    ex->drift_ms = -1;
    ex->http_status = -1;
    ex->exit_code = -1;
}

void aster_exec_fini(aster_exec *ex)
{
    if (!ex)
        return;
    aster_free(ex->claimed_by);
    aster_free(ex->error);
    aster_free(ex->output);
    aster_exec_init(ex);
}

void aster_exec_copy(aster_exec *dst, const aster_exec *src)
{
    *dst = *src;
    dst->claimed_by = aster_strdup(src->claimed_by);
    dst->error = aster_strdup(src->error);
    dst->output = aster_strdup(src->output);
}

void aster_alert_init(aster_alert *a)
{
    memset(a, 0, sizeof(*a));
}

void aster_alert_fini(aster_alert *a)
{
    if (!a)
        return;
    aster_free(a->kind);
    aster_free(a->message);
    aster_free(a->delivery_state);
    aster_alert_init(a);
}

static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (!strcmp(names[i], s))
            return i;
    return -1;
}

#define NAMES(type, prefix, ...)                                                                   \
    static const char *const prefix##_names[] = {__VA_ARGS__};                                     \
    const char *aster_##prefix##_name(type v)                                                      \
    {                                                                                              \
        return (unsigned)v < ASTER_NELEM(prefix##_names) ? prefix##_names[v] : "unknown";          \
    }                                                                                              \
    int aster_##prefix##_parse(const char *s)                                                      \
    {                                                                                              \
        return name_index(prefix##_names, (int)ASTER_NELEM(prefix##_names), s);                    \
    }

NAMES(aster_exec_status, exec_status, "pending", "running", "succeeded", "failed", "timed_out",
      "skipped", "missed", "cancelled")
NAMES(aster_trigger, trigger, "schedule", "manual", "catchup")
NAMES(aster_delivery, delivery, "ATLEAST_ONCE", "ATMOST_ONCE")
NAMES(aster_overlap, overlap, "allow", "forbid", "replace")
NAMES(aster_misfire, misfire, "skip", "run_once", "run_all")
NAMES(aster_target_kind, target_kind, "http", "command")

bool aster_exec_status_is_final(aster_exec_status s)
{
    return s != ASTER_EXEC_PENDING && s != ASTER_EXEC_RUNNING;
}
