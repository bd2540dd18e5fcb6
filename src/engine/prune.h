/* prune.h — history retention: a background thread that deletes old
 * executions (with their attempts) and old alerts, in small batches.
 *
 * Each run (every interval_ms):
 *   1. alerts created more than max_age ago, except those still pending
 *      delivery;
 *   2. executions created and finished more than max_age ago;
 *   3. per job, executions older than the job's per_job newest (in id
 *      order: creation order).  Only jobs that got executions since the
 *      previous run are visited (the first run visits every job), so a run
 *      costs what happened since the last one, not the whole history.
 * Pending and running executions are never deleted (they count among the
 * per_job newest all the same).  Deletes go PRUNE_BATCH (500) rows per
 * transaction with a short pause between batches, so the scheduler's and
 * the API's writes wait for one small batch at most.  Every row deleted is
 * counted with aster_metrics_pruned.
 *
 * Threads: start, stop and run_once from one thread; the pruner's own
 * thread does the periodic runs.  run_once may be called whether or not the
 * thread was started (tests call it on a pruner started with a long
 * interval). */
#ifndef ASTER_ENGINE_PRUNE_H
#define ASTER_ENGINE_PRUNE_H

#include <stdint.h>

#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/metrics.h"

typedef struct aster_pruner aster_pruner; /* opaque */

typedef struct aster_pruner_opts {
    const aster_logger *log; /* borrowed for the pruner's life */
    aster_store *store;      /* borrowed for the pruner's life */
    aster_metrics *metrics;  /* borrowed for the pruner's life; may be NULL */
    int64_t interval_ms;     /* ASTER_HISTORY_PRUNE_INTERVAL (0: 60 s) */
    int64_t max_age_ms;      /* ASTER_HISTORY_MAX_AGE (0: 30 d) */
    int64_t per_job;         /* ASTER_HISTORY_PER_JOB (0: 1000) */
    /* When set, a run happens only while it answers true (the scheduler
     * leader prunes for the whole cluster).  Called on the pruner's thread. */
    bool (*active)(void *arg);
    void *active_arg;
} aster_pruner_opts;

/* Starts the pruner thread; its first run is one interval after start.
 * Copies `o`.  On failure nothing is left to free. */
ASTER_MUST_CHECK
int aster_pruner_start(const aster_pruner_opts *o, aster_pruner **out, aster_err *err);

/* Stops the thread, waiting for at most the batch in progress, and frees
 * the pruner.  NULL is a no-op. */
void aster_pruner_stop(aster_pruner *p);

/* One run now, on the calling thread (serialised with the thread's runs).
 * *pruned (may be NULL) gets the rows deleted (executions + alerts).
 * 0, or the store's error (what was deleted before it stays deleted). */
int aster_pruner_run_once(aster_pruner *p, uint64_t *pruned);

#endif
