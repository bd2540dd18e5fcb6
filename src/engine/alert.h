/* alert.h — the alerter: raises alerts about jobs, stores them, and POSTs
 * them to webhooks, on a thread of its own so that a webhook that is down
 * never blocks or slows scheduling.
 *
 * Kinds (aster_alert.kind), each raised once per event:
 *   "failed"                an execution finally failed: failed or timed_out
 *                           after its retries, or lost under ATMOST_ONCE
 *                           (marked failed by a lease reclaim, which no
 *                           result reports: a periodic scan finds those);
 *   "consecutive_failures"  a job's failure streak reached its
 *                           alert_after_failures (once per streak: a
 *                           success starts a new one);
 *   "missed"                fires were recorded missed (one per report);
 *   "no_success"            an active job with alert_if_no_success_ms has
 *                           not succeeded for that long, measured from its
 *                           last success, else from its creation (once per
 *                           absence: a success starts a new one).
 * "Once" holds across paths and restarts: every alert carries a dedupe key
 * naming its event (store.h, aster_store_alert_raise).
 *
 * Every alert is stored, logged at error (component "alert"), counted
 * (aster_metrics_alert) and, when the job's alert_webhook or the global
 * webhook is set, POSTed as JSON:
 *   {"id", "job_id", "job_name", "execution_id", "kind", "message",
 *    "created_at", "delivery_attempt"}
 * with Content-Type: application/json and, when a secret is set,
 * X-Aster-Signature: sha256=HEX, HEX = HMAC-SHA256(secret, body bytes).
 * A receiver drops duplicates by "id" (a delivery may repeat when the
 * process dies between the webhook's answer and the store's update).
 *
 * Delivery state (aster_alert.delivery_state):
 *   none                        no webhook when raised (or at delivery)
 *   pending -> delivered        a 2xx answer
 *   pending -> pending          any other outcome; retried after
 *                               retry_base_ms x 2^(attempt-1), capped at
 *                               5 min, +-20% jitter
 *   pending -> failed           after max_attempts attempts
 * The queue is the store: pending alerts survive a stop or a crash and are
 * sent by the next start.  Up to 16 deliveries run at once (libcurl multi),
 * each bounded by a 10 s timeout, earliest due first: a dead webhook delays
 * no other alert's first attempt.
 *
 * Threads: start and stop from one thread (the one that owns the engine);
 * on_final and on_missed from any thread (the engine's loop).  They queue
 * and wake the alerter; they never do I/O. */
#ifndef ASTER_ENGINE_ALERT_H
#define ASTER_ENGINE_ALERT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/job.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/metrics.h"

typedef struct aster_alerter aster_alerter; /* opaque */

typedef struct aster_alerter_opts {
    const aster_logger *log;  /* borrowed for the alerter's life */
    aster_store *store;       /* borrowed for the alerter's life */
    aster_metrics *metrics;   /* borrowed for the alerter's life; may be NULL */
    const char *webhook;      /* ASTER_ALERT_WEBHOOK; may be NULL (copied) */
    const char *secret;       /* ASTER_ALERT_WEBHOOK_SECRET; may be NULL (copied; never logged) */
    int max_attempts;         /* delivery attempts per alert (0: 8) */
    int64_t retry_base_ms;    /* first retry delay (0: 1000) */
    int64_t absence_check_ms; /* period of the absence check and failure scan (0: 5000) */
    /* When set and answering false, this process raises the alerts it is
     * told of but leaves scans and deliveries to another (the scheduler
     * leader): one deliverer per database.  Called on the alerter's thread. */
    bool (*active)(void *arg);
    void *active_arg;
} aster_alerter_opts;

/* Starts the alerter thread.  Copies `o` (and its strings).  On failure
 * nothing is left to free. */
ASTER_MUST_CHECK
int aster_alerter_start(const aster_alerter_opts *o, aster_alerter **out, aster_err *err);

/* Raises the alerts still queued, stops the thread (deliveries in flight
 * are abandoned and stay pending in the store, due at once for the next
 * start), joins it, and frees the alerter.  NULL is a no-op. */
void aster_alerter_stop(aster_alerter *a);

/* An execution of `job` reached a final status.  Call once its final state
 * is committed to the store (the streak count reads it back); a failed or
 * timed_out one raises "failed" and, if the job asks, checks the streak.
 * Other statuses are ignored.  Borrows job and ex during the call; copies
 * what it keeps.  Any thread; never blocks on I/O.  NULL alerter: no-op. */
void aster_alerter_on_final(aster_alerter *a, const aster_job *job, const aster_exec *ex);

/* `n` fires of `job`, scheduled from `first_at` to `last_at`, were recorded
 * missed.  Same rules as on_final. */
void aster_alerter_on_missed(aster_alerter *a, const aster_job *job, int64_t n,
                             aster_time_us first_at, aster_time_us last_at);

#endif
