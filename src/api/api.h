/* api.h — the HTTP API server (libmicrohttpd, internal epoll thread pool).
 *
 * Handlers run on libmicrohttpd's threads; everything they touch (the store,
 * the logger) is safe from any thread. */
#ifndef ASTER_API_H
#define ASTER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/auth.h"
#include "store/store.h"
#include "util/addr.h"
#include "util/err.h"
#include "util/log.h"
#include "util/metrics.h"

typedef struct aster_api aster_api; /* opaque */

typedef struct aster_api_opts {
    const aster_logger *log; /* borrowed for the server's life */
    aster_store *store;      /* borrowed for the server's life */
    const aster_keys *keys;  /* borrowed; NULL: no key needed */
    size_t max_body;         /* request body cap in bytes */
    unsigned threads;        /* 0: one per core */
    bool allow_commands;
    bool compat; /* the seed systems' routes and field aliases (compat.c) */
    /* Serve /healthz, /readyz and /metrics only (the scheduler and worker
     * roles, which have no API of their own). */
    bool observe_only;
    /* Called (on an HTTP thread) after a job was created, changed, deleted
     * or triggered, so the scheduler learns at once; may be NULL. */
    void (*on_job_change)(void *cb_arg, const char *job_id, const aster_job *job);
    /* Attempts in flight now, for /metrics and stats; may be NULL. */
    size_t (*in_flight)(void *cb_arg);
    void *cb_arg;
    aster_metrics *metrics; /* borrowed; counts requests; may be NULL */
} aster_api_opts;

/* Binds `addr` and starts serving.  Copies `opts` (not what it points to).
 * ASTER_EIO with a message naming the address when it cannot bind. */
ASTER_MUST_CHECK
int aster_api_start(const aster_api_opts *opts, const aster_addr *addr, aster_api **out,
                    aster_err *err);
/* A metrics registry whose HTTP series are labelled with this server's
 * routes.  Free with aster_metrics_free. */
aster_metrics *aster_api_metrics_new(void);

/* The port actually bound (useful with port 0). */
int aster_api_port(const aster_api *api);
/* Stops accepting, lets in-flight requests finish for up to `grace_ms`,
 * then closes every connection and frees the server.  NULL is a no-op. */
void aster_api_stop(aster_api *api, int64_t grace_ms);

#endif
