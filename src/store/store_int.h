/* store_int.h — what a store backend implements (private to src/store/).
 *
 * store.c parses the URL, checks the arguments every backend would check
 * alike (NULLs, page limits), and forwards to the backend through one table
 * of functions, as curl's vtls does for TLS libraries.  A backend's handle
 * struct begins with `struct aster_store` so that store.c can reach the
 * table from the opaque pointer it hands out.
 *
 * Backends receive arguments already checked by store.c: non-NULL handle,
 * non-NULL out parameters, filters with limit in 1..ASTER_STORE_MAX_PAGE,
 * ids of the right shape.  They own everything else: transactions, error
 * mapping (ASTER_EIO with the database's message, field "store"), threads. */
#ifndef ASTER_STORE_INT_H
#define ASTER_STORE_INT_H

#include "store/store.h"

/* Every backend migrates to the same numbered schema: version N means the
 * same tables and meaning on SQLite and PostgreSQL, so that
 * aster_store_latest_version() needs no handle.  A backend asserts at
 * compile time that its migration list has this many entries. */
#define ASTER_STORE_SCHEMA_VERSION 1

struct aster_store_ops {
    const char *name; /* "sqlite" (static) */
    unsigned caps;    /* ASTER_STORE_CAP_* */

    /* `target` is the URL with the scheme removed, as the backend wants it
     * (a path for SQLite, the whole URL for PostgreSQL). */
    int (*open)(const char *target, const aster_store_opts *opts, aster_store **out,
                aster_err *err);
    void (*close)(aster_store *st);

    int (*migrate)(aster_store *st, int *from, int *to, aster_err *err);
    int (*schema_version)(aster_store *st, int *out, aster_err *err);
    int (*ping)(aster_store *st, aster_err *err);

    int (*job_insert)(aster_store *st, const aster_job *job, aster_err *err);
    int (*job_get)(aster_store *st, const char *key, aster_job *out, aster_err *err);
    int (*job_update)(aster_store *st, const aster_job *job, int64_t expect_version,
                      aster_err *err);
    int (*job_delete)(aster_store *st, const char *id, aster_err *err);
    int (*job_list)(aster_store *st, const aster_job_filter *f, aster_job **out, size_t *n,
                    aster_err *err);
    int (*job_count)(aster_store *st, int64_t *active, int64_t *paused, aster_err *err);

    int (*exec_insert)(aster_store *st, const aster_exec *execs, size_t n, size_t *inserted,
                       aster_err *err);
    int (*exec_get)(aster_store *st, const char *id, aster_exec *out, aster_err *err);
    int (*exec_update)(aster_store *st, const aster_exec *ex, aster_err *err);
    int (*exec_list)(aster_store *st, const aster_exec_filter *f, aster_exec **out, size_t *n,
                     aster_err *err);

    int (*job_set_next)(aster_store *st, const char *id, aster_time_us next_fire_at,
                        aster_err *err);
    int (*exec_claim)(aster_store *st, const char *owner, aster_time_us now,
                      aster_time_us lease_until, size_t max, aster_exec **out, size_t *n,
                      aster_err *err);
    int (*exec_extend)(aster_store *st, const char *owner, aster_time_us lease_until,
                       aster_err *err);
    int (*exec_reclaim)(aster_store *st, const char *keep_owner, aster_time_us expired_before,
                        aster_time_us now, size_t *retried, size_t *failed, aster_err *err);
    int (*exec_next_due)(aster_store *st, aster_time_us *out, aster_err *err);
    int (*attempt_insert)(aster_store *st, const aster_attempt *a, aster_err *err);
    int (*attempt_list)(aster_store *st, const char *execution_id, aster_attempt **out, size_t *n,
                        aster_err *err);

    int (*alert_insert)(aster_store *st, const aster_alert *a, aster_err *err);
    int (*alert_list)(aster_store *st, const aster_alert_filter *f, aster_alert **out, size_t *n,
                      aster_err *err);

    int (*batch)(aster_store *st, aster_store_batch_fn fn, void *arg, aster_err *err);
};

/* The common head of every backend's handle (first member). */
struct aster_store {
    const struct aster_store_ops *ops;
};

extern const struct aster_store_ops aster_store_sqlite_ops;

#endif
