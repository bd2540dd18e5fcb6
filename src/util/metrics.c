#include "util/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/job.h"
#include "util/mem.h"
#include "util/time.h"

/* Bucket bounds in seconds.  Drift: a scheduler that is on time sits in the
 * first buckets; duration: from a fast local call to a long batch job. */
static const double drift_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25,  0.5,   1,    2.5,   5,    10};
static const double dur_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                    1,     2.5,  5,     10,   30,  60,   300};
static const double http_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,   0.1,   0.25,   0.5,   1,    2.5};

#define NDRIFT ASTER_NELEM(drift_bounds)
#define NDUR   ASTER_NELEM(dur_bounds)
#define NHTTP  ASTER_NELEM(http_bounds)
#define NCODES 500 /* HTTP status 100..599 */

static const char *const alert_kinds[] = {"failed", "consecutive_failures", "missed", "no_success",
                                          "other"};
#define NKINDS ASTER_NELEM(alert_kinds)

typedef atomic_uint_fast64_t counter;

typedef struct histo {
    counter *buckets; /* n + 1 (the last is +Inf) */
    counter sum_us;   /* microseconds: an integer sum stays exact */
    counter count;
} histo;

typedef struct route_stats {
    counter codes[NCODES];
    histo latency;
} route_stats;

#define WINDOW_SECS   3600
#define RECENT_DRIFTS 4096

typedef struct second_slot {
    _Atomic int64_t sec;
    counter status[ASTER_EXEC_STATUS_COUNT];
    counter dur_us, dur_n;
} second_slot;

struct aster_metrics {
    const char *const *routes;
    const char *const *methods;
    size_t nroutes;
    route_stats *per_route; /* nroutes + 1 */
    counter exec_status[ASTER_EXEC_STATUS_COUNT];
    histo drift, duration;
    counter alerts[NKINDS];
    counter deliveries_ok, deliveries_failed;
    counter pruned;
    atomic_int leader;
    second_slot window[WINDOW_SECS];
    _Atomic int64_t drifts_us[RECENT_DRIFTS];
    counter ndrifts;
};

static void histo_init(histo *h, size_t n)
{
    h->buckets = aster_calloc(n + 1, sizeof(counter));
}

static void histo_add(histo *h, const double *bounds, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)(v * 1e6), memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

aster_metrics *aster_metrics_new(const char *const *routes, const char *const *methods,
                                 size_t nroutes)
{
    aster_metrics *m = aster_calloc(1, sizeof(*m));
    m->routes = routes;
    m->methods = methods;
    m->nroutes = nroutes;
    m->per_route = aster_calloc(nroutes + 1, sizeof(route_stats));
    for (size_t i = 0; i <= nroutes; i++)
        histo_init(&m->per_route[i].latency, NHTTP);
    histo_init(&m->drift, NDRIFT);
    histo_init(&m->duration, NDUR);
    return m;
}

void aster_metrics_free(aster_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i <= m->nroutes; i++)
        aster_free(m->per_route[i].latency.buckets);
    aster_free(m->per_route);
    aster_free(m->drift.buckets);
    aster_free(m->duration.buckets);
    aster_free(m);
}

void aster_metrics_exec_final(aster_metrics *m, int status, double drift_s, double duration_s)
{
    if (!m || status < 0 || status >= ASTER_EXEC_STATUS_COUNT)
        return;
    atomic_fetch_add_explicit(&m->exec_status[status], 1, memory_order_relaxed);
    if (drift_s >= 0)
        histo_add(&m->drift, drift_bounds, NDRIFT, drift_s);
    if (duration_s >= 0)
        histo_add(&m->duration, dur_bounds, NDUR, duration_s);

    int64_t now = (int64_t)(aster_time_now() / ASTER_US_PER_SEC);
    second_slot *sl = &m->window[now % WINDOW_SECS];
    if (atomic_load(&sl->sec) != now) { /* a slot from an hour ago: reuse it */
        for (int i = 0; i < ASTER_EXEC_STATUS_COUNT; i++)
            atomic_store(&sl->status[i], 0);
        atomic_store(&sl->dur_us, 0);
        atomic_store(&sl->dur_n, 0);
        atomic_store(&sl->sec, now);
    }
    atomic_fetch_add_explicit(&sl->status[status], 1, memory_order_relaxed);
    if (duration_s >= 0) {
        atomic_fetch_add_explicit(&sl->dur_us, (uint64_t)(duration_s * 1e6), memory_order_relaxed);
        atomic_fetch_add_explicit(&sl->dur_n, 1, memory_order_relaxed);
    }
    if (drift_s >= 0) {
        uint64_t i = atomic_fetch_add_explicit(&m->ndrifts, 1, memory_order_relaxed);
        atomic_store_explicit(&m->drifts_us[i % RECENT_DRIFTS], (int64_t)(drift_s * 1e6),
                              memory_order_relaxed);
    }
}

void aster_metrics_http(aster_metrics *m, size_t route, int code, double seconds)
{
    if (!m)
        return;
    if (route > m->nroutes)
        route = m->nroutes;
    if (code >= 100 && code < 600)
        atomic_fetch_add_explicit(&m->per_route[route].codes[code - 100], 1, memory_order_relaxed);
    histo_add(&m->per_route[route].latency, http_bounds, NHTTP, seconds < 0 ? 0 : seconds);
}

void aster_metrics_alert(aster_metrics *m, const char *kind)
{
    size_t i = 0;
    if (!m)
        return;
    while (i < NKINDS - 1 && (!kind || strcmp(kind, alert_kinds[i])))
        i++;
    atomic_fetch_add_explicit(&m->alerts[i], 1, memory_order_relaxed);
}

void aster_metrics_alert_delivery(aster_metrics *m, bool ok)
{
    if (m)
        atomic_fetch_add_explicit(ok ? &m->deliveries_ok : &m->deliveries_failed, 1,
                                  memory_order_relaxed);
}

void aster_metrics_pruned(aster_metrics *m, uint64_t n)
{
    if (m)
        atomic_fetch_add_explicit(&m->pruned, n, memory_order_relaxed);
}

void aster_metrics_set_leader(aster_metrics *m, bool leader)
{
    if (m)
        atomic_store(&m->leader, leader ? 1 : 0);
}

static uint64_t ld(const counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void aster_metrics_window_read(const aster_metrics *m, int64_t now_sec, aster_metrics_window *out)
{
    uint64_t dur_us = 0, dur_n = 0;
    memset(out, 0, sizeof(*out));
    out->drift_p50_ms = out->drift_p99_ms = out->duration_avg_ms = -1;
    if (!m)
        return;
    for (int64_t s = now_sec - WINDOW_SECS + 1; s <= now_sec; s++) {
        const second_slot *sl = &m->window[((s % WINDOW_SECS) + WINDOW_SECS) % WINDOW_SECS];
        if (atomic_load(&sl->sec) != s)
            continue;
        for (int i = 0; i < ASTER_EXEC_STATUS_COUNT && i < 8; i++) {
            int64_t v = (int64_t)ld(&sl->status[i]);
            out->last_hour[i] += v;
            if (s > now_sec - 60)
                out->last_minute[i] += v;
        }
        dur_us += ld(&sl->dur_us);
        dur_n += ld(&sl->dur_n);
    }
    out->duration_avg_ms = dur_n ? (double)dur_us / (double)dur_n / 1000.0 : -1;
    uint64_t n = ld(&m->ndrifts);
    if (n > RECENT_DRIFTS)
        n = RECENT_DRIFTS;
    out->drift_p50_ms = out->drift_p99_ms = -1;
    if (n) {
        int64_t *v = aster_malloc(n * sizeof(*v));
        for (uint64_t i = 0; i < n; i++)
            v[i] = atomic_load_explicit(&m->drifts_us[i], memory_order_relaxed);
        qsort(v, n, sizeof(*v), cmp_i64);
        /* Nearest rank: the smallest value with at least p of the set at
         * or below it. */
        out->drift_p50_ms = (double)v[(n * 50 + 99) / 100 - 1] / 1000.0;
        out->drift_p99_ms = (double)v[(n * 99 + 99) / 100 - 1] / 1000.0;
        aster_free(v);
    }
}

/* ---- rendering ------------------------------------------------------------ */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void bprintf(buf *b, const char *fmt, ...) ASTER_PRINTF(2, 3);
static void bprintf(buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (n > 0 ? (size_t)n : 0) + 256;
        b->p = aster_realloc(b->p, b->cap);
    }
}

static void render_histo(buf *b, const char *name, const char *labels, const histo *h,
                         const double *bounds, size_t n)
{
    uint64_t cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (size_t i = 0; i < n; i++) {
        cum += ld(&h->buckets[i]);
        bprintf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i],
                (unsigned long long)cum);
    }
    cum += ld(&h->buckets[n]);
    bprintf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    const char *open = labels[0] ? "{" : "", *close = labels[0] ? "}" : "";
    bprintf(b, "%s_sum%s%s%s %.6f\n", name, open, labels, close, (double)ld(&h->sum_us) / 1e6);
    /* _count equals the +Inf bucket; read once so the two never disagree. */
    bprintf(b, "%s_count%s%s%s %llu\n", name, open, labels, close, (unsigned long long)cum);
}

char *aster_metrics_render(const aster_metrics *m, const aster_metrics_gauges *g)
{
    buf b = {aster_malloc(16384), 0, 16384};
    char labels[256];

    bprintf(&b, "# HELP aster_executions_total Executions that reached a final status.\n"
                "# TYPE aster_executions_total counter\n");
    for (int s = 0; s < ASTER_EXEC_STATUS_COUNT; s++)
        if (aster_exec_status_is_final((aster_exec_status)s))
            bprintf(&b, "aster_executions_total{status=\"%s\"} %llu\n",
                    aster_exec_status_name((aster_exec_status)s),
                    (unsigned long long)ld(&m->exec_status[s]));
    bprintf(&b, "# HELP aster_execution_drift_seconds Start of an execution minus its "
                "scheduled time.\n# TYPE aster_execution_drift_seconds histogram\n");
    render_histo(&b, "aster_execution_drift_seconds", "", &m->drift, drift_bounds, NDRIFT);
    bprintf(&b, "# HELP aster_execution_duration_seconds Duration of the final attempt.\n"
                "# TYPE aster_execution_duration_seconds histogram\n");
    render_histo(&b, "aster_execution_duration_seconds", "", &m->duration, dur_bounds, NDUR);
    bprintf(&b,
            "# HELP aster_executions_in_flight Attempts running now.\n"
            "# TYPE aster_executions_in_flight gauge\naster_executions_in_flight %lld\n"
            "# HELP aster_queue_depth Pending executions that are due.\n"
            "# TYPE aster_queue_depth gauge\naster_queue_depth %lld\n"
            "# HELP aster_jobs Jobs by state.\n# TYPE aster_jobs gauge\n"
            "aster_jobs{state=\"active\"} %lld\naster_jobs{state=\"paused\"} %lld\n",
            (long long)g->in_flight, (long long)g->queue_depth, (long long)g->jobs_active,
            (long long)g->jobs_paused);

    bprintf(&b, "# HELP aster_http_requests_total HTTP requests answered, by route pattern.\n"
                "# TYPE aster_http_requests_total counter\n");
    for (size_t r = 0; r <= m->nroutes; r++) {
        const char *route = r < m->nroutes ? m->routes[r] : "unmatched";
        const char *method = r < m->nroutes ? m->methods[r] : "any";
        for (int c = 0; c < NCODES; c++) {
            uint64_t v = ld(&m->per_route[r].codes[c]);
            if (v)
                bprintf(&b,
                        "aster_http_requests_total{route=\"%s\",method=\"%s\",code=\"%d\"} "
                        "%llu\n",
                        route, method, c + 100, (unsigned long long)v);
        }
    }
    bprintf(&b, "# HELP aster_http_request_duration_seconds HTTP request latency, by route.\n"
                "# TYPE aster_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r <= m->nroutes; r++) {
        if (!ld(&m->per_route[r].latency.count))
            continue;
        snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\"",
                 r < m->nroutes ? m->routes[r] : "unmatched",
                 r < m->nroutes ? m->methods[r] : "any");
        render_histo(&b, "aster_http_request_duration_seconds", labels, &m->per_route[r].latency,
                     http_bounds, NHTTP);
    }
    bprintf(&b, "# HELP aster_alerts_total Alerts raised, by kind.\n"
                "# TYPE aster_alerts_total counter\n");
    for (size_t k = 0; k < NKINDS; k++)
        bprintf(&b, "aster_alerts_total{kind=\"%s\"} %llu\n", alert_kinds[k],
                (unsigned long long)ld(&m->alerts[k]));
    bprintf(&b,
            "# HELP aster_alert_deliveries_total Webhook delivery attempts, by result.\n"
            "# TYPE aster_alert_deliveries_total counter\n"
            "aster_alert_deliveries_total{result=\"delivered\"} %llu\n"
            "aster_alert_deliveries_total{result=\"failed\"} %llu\n"
            "# HELP aster_history_pruned_total Execution and alert rows removed by retention.\n"
            "# TYPE aster_history_pruned_total counter\naster_history_pruned_total %llu\n"
            "# HELP aster_scheduler_leader 1 when this process is the scheduler leader.\n"
            "# TYPE aster_scheduler_leader gauge\naster_scheduler_leader %d\n"
            "# HELP aster_build_info Build information.\n# TYPE aster_build_info gauge\n"
            "aster_build_info{version=\"%s\"} 1\n",
            (unsigned long long)ld(&m->deliveries_ok),
            (unsigned long long)ld(&m->deliveries_failed), (unsigned long long)ld(&m->pruned),
            atomic_load(&m->leader), ASTER_VERSION);
    return b.p;
}
