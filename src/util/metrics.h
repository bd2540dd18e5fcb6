/* metrics.h — the process's counters, gauges and histograms, rendered in the
 * Prometheus text format (GET /metrics).  The names are a contract with
 * dashboards and alert rules; docs/operations.md lists them.
 *
 * Every update is a relaxed atomic add on a fixed slot (no lock, no
 * allocation), so any thread may count on a hot path.  Label sets are
 * closed: statuses, route indexes and alert kinds are known in advance; no
 * per-job label (cardinality). */
#ifndef ASTER_UTIL_METRICS_H
#define ASTER_UTIL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct aster_metrics aster_metrics; /* opaque */

/* `routes` names the HTTP route patterns by index (borrowed, static); the
 * index `nroutes` itself counts requests that matched no route. */
aster_metrics *aster_metrics_new(const char *const *routes, const char *const *methods,
                                 size_t nroutes);
void aster_metrics_free(aster_metrics *m); /* NULL-safe */

/* An execution reached a final status (aster_exec_status).  drift_s and
 * duration_s < 0 when unknown. */
void aster_metrics_exec_final(aster_metrics *m, int status, double drift_s, double duration_s);
/* One HTTP request answered on route `route` (nroutes: no route). */
void aster_metrics_http(aster_metrics *m, size_t route, int code, double seconds);
/* Alert kinds: "failed", "consecutive_failures", "missed", "no_success"; others
 * are counted as "other". */
void aster_metrics_alert(aster_metrics *m, const char *kind);
void aster_metrics_alert_delivery(aster_metrics *m, bool ok);
void aster_metrics_pruned(aster_metrics *m, uint64_t n);
void aster_metrics_set_leader(aster_metrics *m, bool leader);

/* The recent window behind GET /api/v1/stats: final statuses counted per
 * second of the last hour, and the drift of the most recent executions.
 * Recording is single-writer (the engine's loop thread calls
 * aster_metrics_exec_final); readers see a consistent-enough snapshot. */
typedef struct aster_metrics_window {
    int64_t last_minute[8], last_hour[8]; /* by aster_exec_status */
    double drift_p50_ms, drift_p99_ms;    /* -1 when no execution yet */
    double duration_avg_ms;               /* last hour; -1 when none */
} aster_metrics_window;

void aster_metrics_window_read(const aster_metrics *m, int64_t now_sec, aster_metrics_window *out);

/* Values read at render time, from the engine and the store. */
typedef struct aster_metrics_gauges {
    int64_t in_flight;
    int64_t queue_depth; /* pending executions that are due */
    int64_t jobs_active, jobs_paused;
} aster_metrics_gauges;

/* The whole exposition, NUL-terminated; caller frees with aster_free. */
char *aster_metrics_render(const aster_metrics *m, const aster_metrics_gauges *g);

#endif
