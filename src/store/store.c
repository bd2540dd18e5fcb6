/* store.c — URL dispatch and the checks every backend would make alike.
 *
 * The public functions check their arguments here, once, so that a backend
 * only sees well-formed calls (see store_int.h), and so that both backends
 * reject the same bad input with the same field and message.  Enum values
 * are checked before a write because a row holding a name the reader cannot
 * parse back would poison every later list. */
#include "store/store.h"

#include <string.h>

#include "store/store_int.h"
#include "util/mem.h"
#include "util/uuid.h"

#define FIELD "store"

/* postgres/conn.c (declared here rather than in store_int.h beside SQLite's
 * while that header is being extended elsewhere; move it there). */
extern const struct aster_store_ops aster_store_postgres_ops;

static const aster_store_opts default_opts = {.exclusive = false, .migrate = false};

/* "sqlite:PATH" and "sqlite://PATH" (PATH as written after the slashes, so
 * sqlite:///var/lib/aster.db is absolute and sqlite://./aster.db relative). */
static int parse_sqlite(const char *url, const char **path, aster_err *err)
{
    const char *p = url + strlen("sqlite:");

    if (!strncmp(p, "//", 2))
        p += 2;
    if (!*p)
        return aster_err_set(err, ASTER_EINVAL, FIELD,
                             "store URL '%s' has no path (e.g. sqlite:./aster.db)", url);
    /* SQLite would open ":memory:" as a private in-memory database per
     * connection: readers would never see the writer's rows. */
    if (!strcmp(p, ":memory:"))
        return aster_err_set(err, ASTER_EINVAL, FIELD,
                             "in-memory SQLite databases are not supported; give a file path");
    *path = p;
    return 0;
}

/* The backend a URL names, or NULL. */
static const struct aster_store_ops *backend_of(const char *url)
{
    if (!strncmp(url, "sqlite:", strlen("sqlite:")))
        return &aster_store_sqlite_ops;
    if (!strncmp(url, "postgres://", strlen("postgres://")) ||
        !strncmp(url, "postgresql://", strlen("postgresql://")))
        return &aster_store_postgres_ops;
    return NULL;
}

int aster_store_open(const char *url, const aster_store_opts *opts, aster_store **out,
                     aster_err *err)
{
    const char *target = NULL;
    const struct aster_store_ops *ops;
    int rc;

    if (!url || !*url)
        return aster_err_set(err, ASTER_EINVAL, FIELD,
                             "no store URL (use sqlite:PATH or postgres://...)");
    if (!out)
        return aster_err_set(err, ASTER_EINVAL, FIELD, "no handle to fill");
    if (!opts)
        opts = &default_opts;
    ops = backend_of(url);
    if (ops == &aster_store_sqlite_ops) {
        rc = parse_sqlite(url, &target, err);
        if (rc)
            return rc;
    } else if (ops) {
        target = url; /* libpq parses the whole URL */
    } else {
        const char *colon = strchr(url, ':');
        int len = colon ? (int)(colon - url) : (int)strlen(url);
        if (len > 32)
            len = 32;
        return aster_err_set(err, ASTER_EINVAL, FIELD,
                             "unknown store '%.*s' (use sqlite:PATH or postgres://...)", len, url);
    }
    if ((rc = ops->open(target, opts, out, err)))
        return rc;
    aster_store_group_init(&(*out)->group);
    return 0;
}

unsigned aster_store_url_caps(const char *url)
{
    const struct aster_store_ops *ops = url ? backend_of(url) : NULL;
    return ops ? ops->caps : 0;
}

void aster_store_close(aster_store *st)
{
    if (!st)
        return;
    aster_store_group_fini(&st->group);
    st->ops->close(st);
}

unsigned aster_store_caps(const aster_store *st)
{
    return st ? st->ops->caps : 0;
}

const char *aster_store_backend(const aster_store *st)
{
    return st ? st->ops->name : "none";
}

int aster_store_latest_version(void)
{
    return ASTER_STORE_SCHEMA_VERSION;
}

/* The store whose batch this thread is inside, if any. */
static _Thread_local aster_store *in_batch;

static int no_handle(aster_err *err)
{
    return aster_err_set(err, ASTER_EINVAL, FIELD, "no store handle");
}

int aster_store_migrate(aster_store *st, int *from, int *to, aster_err *err)
{
    if (!st)
        return no_handle(err);
    return st->ops->migrate(st, from, to, err);
}

int aster_store_schema_version(aster_store *st, int *out, aster_err *err)
{
    if (!st || !out)
        return no_handle(err);
    return st->ops->schema_version(st, out, err);
}

int aster_store_ping(aster_store *st, aster_err *err)
{
    if (!st)
        return no_handle(err);
    return st->ops->ping(st, err);
}

/* ---- argument checks ------------------------------------------------------ */

static int check_id(const char *id, const char *field, aster_err *err)
{
    if (!aster_uuid_is_uuid(id))
        return aster_err_set(err, ASTER_EINVAL, field, "'%.40s' is not a UUID", id);
    return 0;
}

static int check_str(const char *s, const char *field, aster_err *err)
{
    if (!s || !*s)
        return aster_err_set(err, ASTER_EINVAL, field, "%s is required", field);
    return 0;
}

static int check_enum(int v, int count, const char *field, aster_err *err)
{
    if (v < 0 || v >= count)
        return aster_err_set(err, ASTER_EINVAL, field, "%d is not a valid %s", v, field);
    return 0;
}

static int check_job(const aster_job *job, aster_err *err)
{
    int rc;

    if (!job)
        return aster_err_set(err, ASTER_EINVAL, "job", "no job given");
    if ((rc = check_id(job->id, "id", err)) || (rc = check_str(job->name, "name", err)) ||
        (rc = check_str(job->schedule, "schedule", err)) ||
        (rc = check_str(job->timezone, "timezone", err)) ||
        (rc = check_str(job->target, "target", err)) ||
        (rc = check_enum((int)job->delivery, 2, "delivery", err)) ||
        (rc = check_enum((int)job->target_kind, 2, "target_kind", err)) ||
        (rc = check_enum((int)job->overlap, 3, "overlap", err)) ||
        (rc = check_enum((int)job->misfire, 3, "misfire", err)))
        return rc;
    return 0;
}

static int check_exec(const aster_exec *ex, aster_err *err)
{
    int rc;

    if (!ex)
        return aster_err_set(err, ASTER_EINVAL, "execution", "no execution given");
    if ((rc = check_id(ex->id, "id", err)) ||
        (rc = check_enum((int)ex->trigger, 3, "trigger", err)) ||
        (rc = check_enum((int)ex->status, ASTER_EXEC_STATUS_COUNT, "status", err)))
        return rc;
    return 0;
}

static int check_limit(int limit, aster_err *err)
{
    if (limit < 1 || limit > ASTER_STORE_MAX_PAGE)
        return aster_err_set(err, ASTER_EINVAL, "limit", "limit must be 1..%d, not %d",
                             ASTER_STORE_MAX_PAGE, limit);
    return 0;
}

static int check_list(aster_store *st, const void *f, void *out, size_t *n, aster_err *err)
{
    if (!st)
        return no_handle(err);
    if (!f || !out || !n)
        return aster_err_set(err, ASTER_EINVAL, FIELD, "no filter or result to fill");
    return 0;
}

/* ---- jobs ------------------------------------------------------------------ */

int aster_store_job_insert(aster_store *st, const aster_job *job, aster_err *err)
{
    int rc;

    if (!st)
        return no_handle(err);
    if ((rc = check_job(job, err)))
        return rc;
    /* Inside a batch the row belongs to the batch's transaction. */
    if (in_batch == st || !st->ops->job_insert_many)
        return st->ops->job_insert(st, job, err);
    return aster_store_group_insert(st, job, err);
}

int aster_store_job_get(aster_store *st, const char *key, aster_job *out, aster_err *err)
{
    if (!st || !out)
        return no_handle(err);
    if (!key || !*key)
        return aster_err_set(err, ASTER_ENOENT, "id", "no job id or name given");
    return st->ops->job_get(st, key, out, err);
}

int aster_store_job_update(aster_store *st, const aster_job *job, int64_t expect_version,
                           aster_err *err)
{
    int rc;

    if (!st)
        return no_handle(err);
    if ((rc = check_job(job, err)))
        return rc;
    return st->ops->job_update(st, job, expect_version, err);
}

int aster_store_job_delete(aster_store *st, const char *id, aster_err *err)
{
    if (!st)
        return no_handle(err);
    if (!id || !aster_uuid_is_uuid(id))
        return aster_err_set(err, ASTER_ENOENT, "id", "no job with id '%.40s'", id ? id : "");
    return st->ops->job_delete(st, id, err);
}

int aster_store_job_list(aster_store *st, const aster_job_filter *f, aster_job **out, size_t *n,
                         aster_err *err)
{
    int rc = check_list(st, f, out, n, err);

    if (rc)
        return rc;
    *out = NULL;
    *n = 0;
    if ((rc = check_limit(f->limit, err)))
        return rc;
    if (f->paused < -1 || f->paused > 1)
        return aster_err_set(err, ASTER_EINVAL, "paused", "paused filter must be -1, 0 or 1");
    return st->ops->job_list(st, f, out, n, err);
}

void aster_store_free_jobs(aster_job *jobs, size_t n)
{
    for (size_t i = 0; jobs && i < n; i++)
        aster_job_fini(&jobs[i]);
    aster_free(jobs);
}

int aster_store_job_count(aster_store *st, int64_t *active, int64_t *paused, aster_err *err)
{
    int64_t a = 0, p = 0;
    int rc;

    if (!st)
        return no_handle(err);
    rc = st->ops->job_count(st, &a, &p, err);
    if (rc)
        return rc;
    if (active)
        *active = a;
    if (paused)
        *paused = p;
    return 0;
}

/* ---- executions ------------------------------------------------------------ */

int aster_store_exec_insert(aster_store *st, const aster_exec *execs, size_t n, bool *written,
                            aster_err *err)
{
    int rc;

    for (size_t i = 0; written && i < n; i++)
        written[i] = false;
    if (!st)
        return no_handle(err);
    if (n == 0)
        return 0;
    if (!execs)
        return aster_err_set(err, ASTER_EINVAL, "execution", "no executions given");
    for (size_t i = 0; i < n; i++)
        if ((rc = check_exec(&execs[i], err)))
            return rc;
    return st->ops->exec_insert(st, execs, n, written, err);
}

int aster_store_exec_get(aster_store *st, const char *id, aster_exec *out, aster_err *err)
{
    if (!st || !out)
        return no_handle(err);
    if (!id || !aster_uuid_is_uuid(id))
        return aster_err_set(err, ASTER_ENOENT, "id", "no execution with id '%.40s'", id ? id : "");
    return st->ops->exec_get(st, id, out, err);
}

int aster_store_exec_update(aster_store *st, const aster_exec *ex, aster_err *err)
{
    int rc;

    if (!st)
        return no_handle(err);
    if ((rc = check_exec(ex, err)))
        return rc;
    return st->ops->exec_update(st, ex, err);
}

int aster_store_exec_list(aster_store *st, const aster_exec_filter *f, aster_exec **out, size_t *n,
                          aster_err *err)
{
    int rc = check_list(st, f, out, n, err);

    if (rc)
        return rc;
    *out = NULL;
    *n = 0;
    if ((rc = check_limit(f->limit, err)))
        return rc;
    if (f->status < -1 || f->status >= ASTER_EXEC_STATUS_COUNT)
        return aster_err_set(err, ASTER_EINVAL, "status", "%d is not a valid status", f->status);
    return st->ops->exec_list(st, f, out, n, err);
}

void aster_store_free_execs(aster_exec *execs, size_t n)
{
    for (size_t i = 0; execs && i < n; i++)
        aster_exec_fini(&execs[i]);
    aster_free(execs);
}

/* ---- the engine's operations ---------------------------------------------- */

int aster_store_job_set_next(aster_store *st, const char *id, aster_time_us next_fire_at,
                             aster_err *err)
{
    if (!st)
        return no_handle(err);
    if (!id || !aster_uuid_is_uuid(id))
        return aster_err_set(err, ASTER_ENOENT, "id", "no job with id '%.40s'", id ? id : "");
    return st->ops->job_set_next(st, id, next_fire_at, err);
}

int aster_store_exec_claim(aster_store *st, const char *owner, aster_time_us now,
                           aster_time_us lease_until, size_t max, aster_exec **out, size_t *n,
                           aster_err *err)
{
    int rc;

    if (!st || !out || !n)
        return no_handle(err);
    *out = NULL;
    *n = 0;
    if ((rc = check_str(owner, "owner", err)))
        return rc;
    if (max == 0)
        return 0;
    if (max > ASTER_STORE_MAX_PAGE)
        max = ASTER_STORE_MAX_PAGE; /* the caller asks again for more */
    return st->ops->exec_claim(st, owner, now, lease_until, max, out, n, err);
}

int aster_store_exec_extend(aster_store *st, const char *owner, aster_time_us lease_until,
                            aster_err *err)
{
    int rc;

    if (!st)
        return no_handle(err);
    if ((rc = check_str(owner, "owner", err)))
        return rc;
    return st->ops->exec_extend(st, owner, lease_until, err);
}

int aster_store_exec_reclaim(aster_store *st, const char *keep_owner, aster_time_us expired_before,
                             aster_time_us dead_before, aster_time_us now, size_t *retried,
                             size_t *failed, aster_err *err)
{
    size_t r = 0, f = 0;
    int rc;

    if (!st)
        return no_handle(err);
    rc = st->ops->exec_reclaim(st, keep_owner, expired_before, dead_before, now, &r, &f, err);
    if (rc)
        return rc;
    if (retried)
        *retried = r;
    if (failed)
        *failed = f;
    return 0;
}

int aster_store_exec_next_due(aster_store *st, aster_time_us *out, aster_err *err)
{
    if (!st || !out)
        return no_handle(err);
    *out = 0;
    return st->ops->exec_next_due(st, out, err);
}

int aster_store_queue_depth(aster_store *st, aster_time_us now, int64_t *out, aster_err *err)
{
    if (!st || !out)
        return no_handle(err);
    *out = 0;
    return st->ops->queue_depth(st, now, out, err);
}

int aster_store_exec_count(aster_store *st, int status, int64_t *out, aster_err *err)
{
    if (!st || !out)
        return no_handle(err);
    if (status < 0 || status >= ASTER_EXEC_STATUS_COUNT)
        return aster_err_set(err, ASTER_EINVAL, "status", "unknown status %d", status);
    *out = 0;
    return st->ops->exec_count(st, aster_exec_status_name((aster_exec_status)status), out, err);
}

int aster_store_attempt_insert(aster_store *st, const aster_attempt *a, aster_err *err)
{
    int rc;

    if (!st)
        return no_handle(err);
    if (!a)
        return aster_err_set(err, ASTER_EINVAL, "attempt", "no attempt given");
    if ((rc = check_id(a->execution_id, "execution_id", err)) ||
        (rc = check_enum((int)a->status, ASTER_EXEC_STATUS_COUNT, "status", err)))
        return rc;
    if (a->attempt < 1)
        return aster_err_set(err, ASTER_EINVAL, "attempt", "attempt must be 1 or more, not %d",
                             (int)a->attempt);
    return st->ops->attempt_insert(st, a, err);
}

int aster_store_attempt_list(aster_store *st, const char *execution_id, aster_attempt **out,
                             size_t *n, aster_err *err)
{
    if (!st || !out || !n)
        return no_handle(err);
    *out = NULL;
    *n = 0;
    if (!execution_id || !aster_uuid_is_uuid(execution_id))
        return 0; /* no such execution, so no attempts */
    return st->ops->attempt_list(st, execution_id, out, n, err);
}

void aster_store_free_attempts(aster_attempt *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++)
        aster_free(a[i].error);
    aster_free(a);
}

/* ---- alerts ---------------------------------------------------------------- */

int aster_store_alert_insert(aster_store *st, const aster_alert *a, aster_err *err)
{
    int rc;

    if (!st)
        return no_handle(err);
    if (!a)
        return aster_err_set(err, ASTER_EINVAL, "alert", "no alert given");
    if ((rc = check_id(a->id, "id", err)) || (rc = check_str(a->kind, "kind", err)) ||
        (rc = check_str(a->message, "message", err)) ||
        (rc = check_str(a->delivery_state, "delivery_state", err)))
        return rc;
    if (a->execution_id[0] && (rc = check_id(a->execution_id, "execution_id", err)))
        return rc;
    return st->ops->alert_insert(st, a, err);
}

int aster_store_alert_list(aster_store *st, const aster_alert_filter *f, aster_alert **out,
                           size_t *n, aster_err *err)
{
    int rc = check_list(st, f, out, n, err);

    if (rc)
        return rc;
    *out = NULL;
    *n = 0;
    if ((rc = check_limit(f->limit, err)))
        return rc;
    return st->ops->alert_list(st, f, out, n, err);
}

void aster_store_free_alerts(aster_alert *alerts, size_t n)
{
    for (size_t i = 0; alerts && i < n; i++)
        aster_alert_fini(&alerts[i]);
    aster_free(alerts);
}

/* ---- batches --------------------------------------------------------------- */

int aster_store_batch(aster_store *st, aster_store_batch_fn fn, void *arg, aster_err *err)
{
    if (!st)
        return no_handle(err);
    if (!fn)
        return aster_err_set(err, ASTER_EINVAL, FIELD, "no batch function given");
    aster_store *outer = in_batch;
    in_batch = st;
    int rc = st->ops->batch(st, fn, arg, err);
    in_batch = outer;
    return rc;
}

/* ---- alerts delivery and retention -------------------------------------------- */

static int check_max(size_t max, aster_err *err)
{
    if (max < 1 || max > ASTER_STORE_MAX_PAGE)
        return aster_err_set(err, ASTER_EINVAL, "limit", "limit must be 1..%d, not %zu",
                             ASTER_STORE_MAX_PAGE, max);
    return 0;
}

int aster_store_alert_raise(aster_store *st, const aster_alert *a, const char *dedupe_key,
                            bool *inserted, aster_err *err)
{
    bool dummy = false;
    int rc;

    if (!inserted)
        inserted = &dummy;
    *inserted = false;
    if (!st)
        return no_handle(err);
    if (!a)
        return aster_err_set(err, ASTER_EINVAL, "alert", "no alert given");
    if ((rc = check_id(a->id, "id", err)) || (rc = check_id(a->job_id, "job_id", err)) ||
        (rc = check_str(a->kind, "kind", err)) || (rc = check_str(a->message, "message", err)) ||
        (rc = check_str(a->delivery_state, "delivery_state", err)))
        return rc;
    if (a->execution_id[0] && (rc = check_id(a->execution_id, "execution_id", err)))
        return rc;
    return st->ops->alert_raise(st, a, dedupe_key && *dedupe_key ? dedupe_key : NULL, inserted,
                                err);
}

int aster_store_alert_due(aster_store *st, aster_time_us now, size_t max, aster_alert **out,
                          size_t *n, aster_err *err)
{
    int rc;

    if (!st || !out || !n)
        return no_handle(err);
    *out = NULL;
    *n = 0;
    if ((rc = check_max(max, err)))
        return rc;
    return st->ops->alert_due(st, now, max, out, n, err);
}

int aster_store_alert_next_due(aster_store *st, aster_time_us *out, aster_err *err)
{
    if (!st || !out)
        return no_handle(err);
    *out = 0;
    return st->ops->alert_next_due(st, out, err);
}

int aster_store_alert_set_delivery(aster_store *st, const char *id, const char *state,
                                   int32_t attempts, aster_time_us next_delivery_at, aster_err *err)
{
    int rc;

    if (!st)
        return no_handle(err);
    if (!id || !aster_uuid_is_uuid(id))
        return aster_err_set(err, ASTER_ENOENT, "id", "no alert with id '%.40s'", id ? id : "");
    if ((rc = check_str(state, "delivery_state", err)))
        return rc;
    return st->ops->alert_set_delivery(st, id, state, attempts, next_delivery_at, err);
}

int aster_store_exec_unalerted_failures(aster_store *st, aster_time_us since,
                                        const char *key_prefix, size_t max, aster_exec **out,
                                        size_t *n, aster_err *err)
{
    int rc;

    if (!st || !out || !n)
        return no_handle(err);
    *out = NULL;
    *n = 0;
    if ((rc = check_str(key_prefix, "key_prefix", err)) || (rc = check_max(max, err)))
        return rc;
    return st->ops->exec_unalerted_failures(st, since, key_prefix, max, out, n, err);
}

int aster_store_job_fail_streak(aster_store *st, const char *job_id, int64_t max, int64_t *streak,
                                char last_success_id[ASTER_ID_LEN + 1], aster_err *err)
{
    if (!st || !streak || !last_success_id)
        return no_handle(err);
    *streak = 0;
    last_success_id[0] = '\0';
    if (!job_id || !aster_uuid_is_uuid(job_id) || max < 1)
        return 0; /* no such job, or nothing asked: no streak */
    return st->ops->job_fail_streak(st, job_id, max, streak, last_success_id, err);
}

int aster_store_job_absent(aster_store *st, aster_time_us now, const char *key_prefix,
                           const char *after_id, int limit, aster_job_absence **out, size_t *n,
                           aster_err *err)
{
    int rc;

    if (!st || !out || !n)
        return no_handle(err);
    *out = NULL;
    *n = 0;
    if ((rc = check_str(key_prefix, "key_prefix", err)) || (rc = check_limit(limit, err)))
        return rc;
    return st->ops->job_absent(st, now, key_prefix, after_id && *after_id ? after_id : NULL, limit,
                               out, n, err);
}

int aster_store_prune_execs_before(aster_store *st, aster_time_us before, size_t max,
                                   size_t *deleted, aster_err *err)
{
    size_t dummy = 0;
    int rc;

    if (!deleted)
        deleted = &dummy;
    *deleted = 0;
    if (!st)
        return no_handle(err);
    if ((rc = check_max(max, err)))
        return rc;
    return st->ops->prune_execs_before(st, before, max, deleted, err);
}

int aster_store_prune_execs_keep(aster_store *st, const char *job_id, int64_t keep, size_t max,
                                 size_t *deleted, aster_err *err)
{
    size_t dummy = 0;
    int rc;

    if (!deleted)
        deleted = &dummy;
    *deleted = 0;
    if (!st)
        return no_handle(err);
    if ((rc = check_max(max, err)))
        return rc;
    if (keep < 1)
        return aster_err_set(err, ASTER_EINVAL, "keep", "keep must be 1 or more, not %lld",
                             (long long)keep);
    if (!job_id || !aster_uuid_is_uuid(job_id))
        return 0; /* no such job: nothing to prune */
    return st->ops->prune_execs_keep(st, job_id, keep, max, deleted, err);
}

int aster_store_prune_alerts_before(aster_store *st, aster_time_us before, size_t max,
                                    size_t *deleted, aster_err *err)
{
    size_t dummy = 0;
    int rc;

    if (!deleted)
        deleted = &dummy;
    *deleted = 0;
    if (!st)
        return no_handle(err);
    if ((rc = check_max(max, err)))
        return rc;
    return st->ops->prune_alerts_before(st, before, max, deleted, err);
}

int aster_store_exec_max_id(aster_store *st, char out[ASTER_ID_LEN + 1], aster_err *err)
{
    if (!st || !out)
        return no_handle(err);
    out[0] = '\0';
    return st->ops->exec_max_id(st, out, err);
}

int aster_store_exec_jobs_after(aster_store *st, const char *since_id, const char *after_job,
                                int limit, char **ids, size_t *n, aster_err *err)
{
    int rc;

    if (!st || !ids || !n)
        return no_handle(err);
    *ids = NULL;
    *n = 0;
    if ((rc = check_limit(limit, err)))
        return rc;
    return st->ops->exec_jobs_after(st, since_id && *since_id ? since_id : NULL,
                                    after_job && *after_job ? after_job : NULL, limit, ids, n, err);
}

int aster_store_job_busy(aster_store *st, const char *job_id, int64_t *out, aster_err *err)
{
    int rc;

    if (!st || !out)
        return no_handle(err);
    *out = 0;
    if ((rc = check_str(job_id, "job_id", err)))
        return rc;
    return st->ops->job_busy(st, job_id, out, err);
}

/* ---- coordination ---------------------------------------------------------- */

int aster_store_node_heartbeat(aster_store *st, const char *node, const char *role,
                               aster_time_us at, aster_err *err)
{
    int rc;

    if (!st)
        return no_handle(err);
    if ((rc = check_str(node, "node", err)) || (rc = check_str(role, "role", err)))
        return rc;
    return st->ops->node_heartbeat(st, node, role, at, err);
}

int aster_store_leader_acquire(aster_store *st, const char *node, aster_time_us now,
                               aster_time_us lease_until, int64_t *token, aster_err *err)
{
    int rc;

    if (!st || !token)
        return no_handle(err);
    *token = 0;
    if ((rc = check_str(node, "node", err)))
        return rc;
    return st->ops->leader_acquire(st, node, now, lease_until, token, err);
}

int aster_store_leader_release(aster_store *st, const char *node, int64_t token, aster_err *err)
{
    int rc;

    if (!st)
        return no_handle(err);
    if ((rc = check_str(node, "node", err)))
        return rc;
    return st->ops->leader_release(st, node, token, err);
}

int aster_store_leader_fence(aster_store *st, int64_t token, aster_err *err)
{
    if (!st)
        return no_handle(err);
    return st->ops->leader_fence(st, token, err);
}

int aster_store_announce_cancel(aster_store *st, const char *job_id, aster_time_us before,
                                aster_err *err)
{
    int rc;

    if (!st)
        return no_handle(err);
    if ((rc = check_str(job_id, "job_id", err)))
        return rc;
    return st->ops->announce_cancel ? st->ops->announce_cancel(st, job_id, before, err) : 0;
}

int aster_store_listen(aster_store *st, aster_store_listener **out, aster_err *err)
{
    if (!st || !out)
        return no_handle(err);
    if (!st->ops->listen)
        return aster_err_set(err, ASTER_EINVAL, "store",
                             "the %s store cannot notify other processes", st->ops->name);
    return st->ops->listen(st, out, err);
}

int aster_store_listener_fd(const aster_store_listener *l)
{
    return l ? l->ops->listener_fd(l) : -1;
}

int aster_store_listener_read(aster_store_listener *l, aster_store_event_fn fn, void *arg,
                              aster_err *err)
{
    if (!l || !fn)
        return no_handle(err);
    return l->ops->listener_read(l, fn, arg, err);
}

void aster_store_listener_close(aster_store_listener *l)
{
    if (l)
        l->ops->listener_close(l);
}

int aster_store_exec_finish(aster_store *st, const aster_exec *ex, const aster_attempt *at,
                            size_t n, aster_err *err)
{
    if (!st || (n && (!ex || !at)))
        return no_handle(err);
    if (!n)
        return 0;
    if (st->ops->exec_finish)
        return st->ops->exec_finish(st, ex, at, n, err);
    for (size_t i = 0; i < n; i++) {
        aster_err e = {0};
        int rc = st->ops->exec_update(st, &ex[i], &e);
        if (!rc)
            rc = st->ops->attempt_insert(st, &at[i], &e);
        if (rc == ASTER_ENOENT || rc == ASTER_EEXIST)
            continue; /* gone with its job, or recorded already */
        if (rc)
            return aster_err_set(err, e.code, e.field, "%s", e.msg);
    }
    return 0;
}
