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

#include <pthread.h>

#include "store/store.h"

/* Every backend migrates to the same numbered schema: version N means the
 * same tables and meaning on SQLite and PostgreSQL, so that
 * aster_store_latest_version() needs no handle.  A backend asserts at
 * compile time that its migration list has this many entries. */
#define ASTER_STORE_SCHEMA_VERSION 3

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
    /* Writes jobs[0..n) (2 <= n <= 256) at once, each with its own outcome
     * in rcs[i] and errs[i] (as job_insert would give it): a row refused
     * spoils no other.  Never called inside a batch.  Optional. */
    void (*job_insert_many)(aster_store *st, const aster_job *const *jobs, size_t n, int *rcs,
                            aster_err *errs);
    /* How many job_insert_many may run at once: 1 where writes serialise
     * anyway (SQLite), more where they overlap on several connections. */
    unsigned insert_lanes;
    int (*job_get)(aster_store *st, const char *key, aster_job *out, aster_err *err);
    int (*job_update)(aster_store *st, const aster_job *job, int64_t expect_version,
                      aster_err *err);
    int (*job_delete)(aster_store *st, const char *id, aster_err *err);
    int (*job_list)(aster_store *st, const aster_job_filter *f, aster_job **out, size_t *n,
                    aster_err *err);
    int (*job_count)(aster_store *st, int64_t *active, int64_t *paused, aster_err *err);

    int (*exec_insert)(aster_store *st, const aster_exec *execs, size_t n, bool *written,
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
                        aster_time_us dead_before, aster_time_us now, size_t *retried,
                        size_t *failed, aster_err *err);
    int (*job_busy)(aster_store *st, const char *job_id, int64_t *out, aster_err *err);
    int (*exec_next_due)(aster_store *st, aster_time_us *out, aster_err *err);
    int (*queue_depth)(aster_store *st, aster_time_us now, int64_t *out, aster_err *err);
    int (*exec_count)(aster_store *st, const char *status, int64_t *out, aster_err *err);
    int (*attempt_insert)(aster_store *st, const aster_attempt *a, aster_err *err);
    /* NULL: store.c loops over exec_update and attempt_insert. */
    int (*exec_finish)(aster_store *st, const aster_exec *ex, const aster_attempt *at, size_t n,
                       aster_err *err);
    int (*attempt_list)(aster_store *st, const char *execution_id, aster_attempt **out, size_t *n,
                        aster_err *err);

    int (*alert_insert)(aster_store *st, const aster_alert *a, aster_err *err);
    int (*alert_list)(aster_store *st, const aster_alert_filter *f, aster_alert **out, size_t *n,
                      aster_err *err);

    int (*batch)(aster_store *st, aster_store_batch_fn fn, void *arg, aster_err *err);

    /* alerts delivery and retention */
    int (*alert_raise)(aster_store *st, const aster_alert *a, const char *dedupe_key,
                       bool *inserted, aster_err *err);
    int (*alert_due)(aster_store *st, aster_time_us now, size_t max, aster_alert **out, size_t *n,
                     aster_err *err);
    int (*alert_next_due)(aster_store *st, aster_time_us *out, aster_err *err);
    int (*alert_set_delivery)(aster_store *st, const char *id, const char *state, int32_t attempts,
                              aster_time_us next_delivery_at, aster_err *err);
    int (*exec_unalerted_failures)(aster_store *st, aster_time_us since, const char *key_prefix,
                                   size_t max, aster_exec **out, size_t *n, aster_err *err);
    int (*job_fail_streak)(aster_store *st, const char *job_id, int64_t max, int64_t *streak,
                           char last_success_id[ASTER_ID_LEN + 1], aster_err *err);
    int (*job_absent)(aster_store *st, aster_time_us now, const char *key_prefix,
                      const char *after_id, int limit, aster_job_absence **out, size_t *n,
                      aster_err *err);
    int (*prune_execs_before)(aster_store *st, aster_time_us before, size_t max, size_t *deleted,
                              aster_err *err);
    int (*prune_execs_keep)(aster_store *st, const char *job_id, int64_t keep, size_t max,
                            size_t *deleted, aster_err *err);
    int (*prune_alerts_before)(aster_store *st, aster_time_us before, size_t max, size_t *deleted,
                               aster_err *err);
    int (*exec_max_id)(aster_store *st, char out[ASTER_ID_LEN + 1], aster_err *err);
    int (*exec_jobs_after)(aster_store *st, const char *since_id, const char *after_job, int limit,
                           char **ids, size_t *n, aster_err *err);

    /* coordination between processes */
    int (*node_heartbeat)(aster_store *st, const char *node, const char *role, aster_time_us at,
                          aster_err *err);
    int (*leader_acquire)(aster_store *st, const char *node, aster_time_us now,
                          aster_time_us lease_until, int64_t *token, aster_err *err);
    int (*leader_release)(aster_store *st, const char *node, int64_t token, aster_err *err);
    int (*leader_fence)(aster_store *st, int64_t token, aster_err *err);
    /* NULL without ASTER_STORE_CAP_NOTIFY. */
    int (*announce_cancel)(aster_store *st, const char *job_id, aster_time_us before,
                           aster_err *err);
    int (*listen)(aster_store *st, aster_store_listener **out, aster_err *err);
    int (*listener_fd)(const aster_store_listener *l);
    int (*listener_read)(aster_store_listener *l, aster_store_event_fn fn, void *arg,
                         aster_err *err);
    void (*listener_close)(aster_store_listener *l);
};

/* The common head of every backend's listener (first member). */
struct aster_store_listener {
    const struct aster_store_ops *ops;
};

/* Job creations of many threads waiting to be written together (group.c). */
typedef struct aster_store_group {
    pthread_mutex_t lock;
    struct group_ins *head, **tail;
    unsigned lanes; /* writes in flight */
} aster_store_group;

void aster_store_group_init(aster_store_group *g);
void aster_store_group_fini(aster_store_group *g);
/* aster_store_job_insert outside a batch, for a backend with
 * job_insert_many. */
int aster_store_group_insert(aster_store *st, const aster_job *job, aster_err *err);

/* The common head of every backend's handle (first member). */
struct aster_store {
    const struct aster_store_ops *ops;
    aster_store_group group; /* store.c's; backends leave it alone */
};

extern const struct aster_store_ops aster_store_sqlite_ops;

#endif
