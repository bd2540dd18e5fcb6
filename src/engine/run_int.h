/* run_int.h — private to src/engine/run*.c: the runner's struct and one
 * attempt ("entry").  run.c owns the life cycle shared by both kinds (ids,
 * the result, delivery, teardown); run_http.c and run_cmd.c each own their
 * kind's handles.
 *
 * Life of an entry:
 *   QUEUED  -> ACTIVE     HTTP only: a transfer slot came free (run_http.c)
 *   ACTIVE  -> DONE       aster__run_finish: the outcome is decided; the
 *                         entry leaves the id table (cancel is a no-op now)
 *                         and waits on r->done for delivery
 *   DONE    -> REPORTED   deliver(): cb called exactly once
 *   REPORTED -> freed     once its uv handles (e->handles) are all closed
 * Invariants: an entry is in r->all from submit until freed; on r->queue
 * only while QUEUED; on r->done only while DONE; in the id table only while
 * QUEUED or ACTIVE.  r->refs counts the runner's own open handles plus every
 * live entry; the runner is freed when it is closing and refs drops to 0. */
#ifndef ASTER_ENGINE_RUN_INT_H
#define ASTER_ENGINE_RUN_INT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>

#include "engine/run.h"
#include "util/err.h"

/* Intrusive circular doubly linked list: O(1) unlink from any position,
 * which cancel and teardown need. */
typedef struct run_link {
    struct run_link *prev, *next;
} run_link;

static inline void link_init(run_link *l)
{
    l->prev = l->next = l;
}
static inline bool link_empty(const run_link *l)
{
    return l->next == l;
}
static inline void link_push(run_link *head, run_link *l) /* at the tail */
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}
static inline void link_del(run_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    link_init(l);
}

#define RUN_CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

typedef enum { RUN_QUEUED, RUN_ACTIVE, RUN_DONE, RUN_REPORTED } run_state;

typedef struct run_http {
    char *url;
    const char *method; /* static: one of job_json.c's method names */
    char *body;         /* NULL: none */
    size_t body_len;
    struct curl_slist *headers;
    CURL *easy; /* while ACTIVE */
    char errbuf[CURL_ERROR_SIZE];
} run_http;

typedef struct run_cmd {
    uv_process_t proc;
    uv_pipe_t out;     /* read end of the one pipe behind stdout and stderr */
    uv_timer_t timer;  /* timeout, then the SIGTERM -> SIGKILL grace */
    uv_timer_t linger; /* after exit: how long we wait for the pipe's EOF */
    bool proc_open, out_open, timer_open, linger_open;
    int pgid; /* == pid: UV_PROCESS_DETACHED makes the child a session leader */
    bool exited, eof;
    bool term_sent, kill_sent;
    aster_exec_status kill_status; /* 0 unless a timeout or cancel is killing */
    int64_t exit_status;
    int term_signal;
} run_cmd;

typedef struct run_entry run_entry;
struct run_entry {
    aster_runner *r;
    uint64_t id;
    run_entry *hnext; /* id table chain */
    run_link all;     /* r->all */
    run_link q;       /* r->queue (QUEUED) or r->done (DONE) */
    run_state state;
    aster_target_kind kind;
    aster_run_cb cb;
    void *arg;
    int64_t timeout_ms;
    int handles; /* uv handles of this entry not yet closed */
    aster_run_result res;
    char error[256];
    char *out; /* capped output, NUL-terminated at finish */
    size_t out_len, out_alloc;
    union {
        run_http http;
        run_cmd cmd;
    } u;
};

/* A uv_poll_t for one of curl's sockets (curl_multi_assign'ed to it). */
typedef struct run_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    aster_runner *r;
    run_link link; /* r->socks */
} run_sock;

#define RUN_READ_BUF (64 * 1024)

struct aster_runner {
    uv_loop_t *loop;
    size_t max_in_flight;
    size_t output_cap;
    int64_t kill_grace_ms;

    uint64_t next_id;
    run_entry **buckets; /* id -> entry, power-of-two size */
    size_t nbuckets, nhashed;
    run_link all;
    run_link done;
    size_t pending;  /* submitted, cb not yet called */
    uv_idle_t defer; /* delivers r->done: one batch per loop iteration */
    bool delivering;

    /* HTTP (run_http.c) */
    CURLM *multi;
    uv_timer_t curl_timer;
    bool in_curl_timer;
    run_link queue; /* QUEUED entries, FIFO */
    size_t http_active;
    CURL **pool; /* idle easy handles for reuse */
    size_t npool, pool_cap;
    run_link socks;

    /* command (run_cmd.c): libuv reads into one buffer, then calls on_read
     * before it allocates again, so one scratch buffer serves every pipe. */
    char *rdbuf;

    bool closing;
    int *done_flag;
    size_t refs;
};

/* run.c: shared by both kinds. */
/* Sets e->error unless already set (the first reason wins). */
void aster__run_error(run_entry *e, const char *fmt, ...) ASTER_PRINTF(2, 3);
/* Appends to the capped output; bytes past r->output_cap are counted. */
void aster__run_output(run_entry *e, const char *p, size_t n);
/* Decides the outcome (QUEUED/ACTIVE -> DONE) and schedules delivery on the
 * loop; never calls cb itself.  A no-op if already decided. */
void aster__run_finish(run_entry *e, aster_exec_status status);
/* Called when one of e's uv handles is closed; frees e when due. */
void aster__run_handle_closed(run_entry *e);
/* The runner's own handle closed (curl timer, poll): drops a ref. */
void aster__run_unref(aster_runner *r);

/* run_http.c */
int aster__run_http_init(aster_runner *r, aster_err *err);
void aster__run_http_submit(run_entry *e, const aster_run_req *req, const json_t *target);
void aster__run_http_cancel(run_entry *e);   /* QUEUED or ACTIVE -> CANCELLED */
void aster__run_http_close(aster_runner *r); /* teardown: every entry already cancelled */
void aster__run_http_fini_entry(run_entry *e);

/* run_cmd.c */
void aster__run_cmd_submit(run_entry *e, const aster_run_req *req, const json_t *target);
void aster__run_cmd_cancel(run_entry *e); /* SIGTERM, then SIGKILL after the grace */
void aster__run_cmd_abort(run_entry *e);  /* teardown: SIGKILL now, close what can be closed */

#endif
