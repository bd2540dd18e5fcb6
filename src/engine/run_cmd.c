/* run_cmd.c — command attempts: uv_spawn of argv, never a shell.
 *
 * The child runs in its own session (UV_PROCESS_DETACHED: setsid), so its
 * pid is also its process group and a timeout or cancel reaches everything
 * it started: SIGTERM to the group, then SIGKILL kill_grace_ms later.  Only
 * a timeout, a cancel or the runner's teardown kill; a command that exits
 * and leaves background processes behind keeps them (as cron does).
 *
 * Environment: exactly
 *   PATH=/usr/local/bin:/usr/bin:/bin   unless the job sets PATH
 *   the job's `env`
 *   ASTER_JOB_ID, ASTER_EXECUTION_ID, ASTER_SCHEDULED_AT (RFC 3339, ms),
 *   ASTER_ATTEMPT, ASTER_IDEMPOTENCY_KEY   (ours win over the job's)
 * and nothing of Aster's own environment, which may hold secrets (store
 * URL, API keys).  A `command` without '/' is searched in that PATH.
 *
 * stdin is /dev/null.  stdout and stderr are one pipe (both fds 1 and 2 of
 * the child are its write end), so the capture keeps their interleaving.
 * The outcome is reported when the process has exited and the pipe is at
 * EOF; a grandchild that keeps the pipe open gets LINGER_MS after the exit,
 * then the pipe is closed and the rest of its output is lost. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/run_int.h"
#include "util/mem.h"

#define LINGER_MS        1000
#define DEFAULT_PATH_ENV "PATH=/usr/local/bin:/usr/bin:/bin"

static void complete(run_entry *e);

/* ---- handle closing: each closed handle drops one of e->handles ---- */

static void on_closed(uv_handle_t *h)
{
    aster__run_handle_closed(h->data);
}

static void close_handle(uv_handle_t *h, bool *open)
{
    if (!*open)
        return;
    *open = false;
    uv_close(h, on_closed);
}

/* kill(2) on the group.  After the leader is reaped its pid stays reserved
 * as long as a member of its group lives; once none does, ESRCH. */
static void signal_group(run_cmd *c, int sig)
{
    if (c->pgid > 0)
        kill(-c->pgid, sig);
}

static bool group_alive(const run_cmd *c)
{
    return c->pgid > 0 && (kill(-c->pgid, 0) == 0 || errno == EPERM);
}

/* ---- the kill sequence ---- */

static void on_timer(uv_timer_t *t);

/* SIGTERM now, SIGKILL after the grace: the timer's second phase. */
static void begin_kill(run_entry *e, aster_exec_status why)
{
    run_cmd *c = &e->u.cmd;

    c->kill_status = why;
    c->term_sent = true;
    signal_group(c, SIGTERM);
    uv_timer_start(&c->timer, on_timer, (uint64_t)e->r->kill_grace_ms, 0);
}

static void on_timer(uv_timer_t *t)
{
    run_entry *e = t->data;
    run_cmd *c = &e->u.cmd;

    if (!c->term_sent) { /* phase 1: the timeout */
        aster__run_error(e, "timed out after %lld ms", (long long)e->timeout_ms);
        begin_kill(e, ASTER_EXEC_TIMED_OUT);
        return;
    }
    /* phase 2: the grace is over.  It may run after the outcome was
     * reported, when the leader died of SIGTERM but the group lives on. */
    c->kill_sent = true;
    signal_group(c, SIGKILL);
    if (e->state != RUN_ACTIVE)
        close_handle((uv_handle_t *)&c->timer, &c->timer_open);
}

/* ---- output and exit ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    run_entry *e = h->data;
    (void)hint;
    *buf = uv_buf_init(e->r->rdbuf, RUN_READ_BUF);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    run_entry *e = s->data;
    run_cmd *c = &e->u.cmd;

    if (n > 0) {
        aster__run_output(e, buf->base, (size_t)n);
        return;
    }
    if (n == 0) /* EAGAIN */
        return;
    /* UV_EOF, or a read error: either way nothing more will come. */
    c->eof = true;
    close_handle((uv_handle_t *)&c->out, &c->out_open);
    complete(e);
}

static void on_linger(uv_timer_t *t)
{
    run_entry *e = t->data;
    run_cmd *c = &e->u.cmd;

    c->eof = true;
    close_handle((uv_handle_t *)&c->out, &c->out_open);
    complete(e);
}

static void on_child_exit(uv_process_t *p, int64_t status, int sig)
{
    run_entry *e = p->data;
    run_cmd *c = &e->u.cmd;

    c->exited = true;
    c->exit_status = status;
    c->term_signal = sig;
    if (e->r->closing) { /* teardown: the outcome is already CANCELLED */
        close_handle((uv_handle_t *)&c->proc, &c->proc_open);
        return;
    }
    /* Exited in time: the timeout no longer applies, even if a
     * grandchild keeps the pipe open a while (the linger bounds that). */
    if (!c->term_sent)
        uv_timer_stop(&c->timer);
    if (!c->eof)
        uv_timer_start(&c->linger, on_linger, LINGER_MS, 0);
    complete(e);
}

/* Reports once the process has exited and the pipe is done, then closes
 * what is no longer needed. */
static void complete(run_entry *e)
{
    run_cmd *c = &e->u.cmd;

    if (!c->exited || !c->eof || e->state != RUN_ACTIVE)
        return;
    e->res.exit_code = c->term_signal ? -1 : (int32_t)c->exit_status;
    if (c->kill_status) {
        aster__run_finish(e, c->kill_status); /* error set by the timer or cancel */
    } else if (c->term_signal) {
        aster__run_error(e, "killed by signal %d", c->term_signal);
        aster__run_finish(e, ASTER_EXEC_FAILED);
    } else if (c->exit_status) {
        aster__run_error(e, "exit status %lld", (long long)c->exit_status);
        aster__run_finish(e, ASTER_EXEC_FAILED);
    } else {
        aster__run_finish(e, ASTER_EXEC_SUCCEEDED);
    }
    close_handle((uv_handle_t *)&c->proc, &c->proc_open);
    close_handle((uv_handle_t *)&c->linger, &c->linger_open);
    /* Keep the timer while a SIGKILL is still owed to a living group. */
    if (!c->term_sent || c->kill_sent || !group_alive(c))
        close_handle((uv_handle_t *)&c->timer, &c->timer_open);
}

/* ---- submit ---- */

static char *fmt_dup(const char *fmt, ...) ASTER_PRINTF(1, 2);

static char *fmt_dup(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    s = aster_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static bool ours(const char *k)
{
    static const char *const names[] = {"ASTER_JOB_ID", "ASTER_EXECUTION_ID", "ASTER_SCHEDULED_AT",
                                        "ASTER_ATTEMPT", "ASTER_IDEMPOTENCY_KEY"};
    for (size_t i = 0; i < ASTER_NELEM(names); i++)
        if (!strcmp(k, names[i]))
            return true;
    return false;
}

/* NULL-terminated "K=V" array; caller frees with free_vec. */
static char **build_env(const aster_run_req *req, const json_t *env)
{
    size_t n = 0, cap = json_object_size(env) + 8;
    char **v = aster_calloc(cap, sizeof(*v));
    char when[ASTER_TIME_BUFSZ];
    const char *k;
    const json_t *val;

    if (!json_is_string(json_object_get(env, "PATH")))
        v[n++] = aster_strdup(DEFAULT_PATH_ENV);
    json_object_foreach((json_t *)env, k, val)
    {
        if (json_is_string(val) && !ours(k))
            v[n++] = fmt_dup("%s=%s", k, json_string_value(val));
    }
    v[n++] = fmt_dup("ASTER_JOB_ID=%s", req->job_id ? req->job_id : "");
    v[n++] = fmt_dup("ASTER_EXECUTION_ID=%s", req->exec_id ? req->exec_id : "");
    v[n++] = fmt_dup("ASTER_SCHEDULED_AT=%s",
                     aster_time_format_ms(req->scheduled_at, when, sizeof(when)));
    v[n++] = fmt_dup("ASTER_ATTEMPT=%d", (int)req->attempt);
    v[n++] = fmt_dup("ASTER_IDEMPOTENCY_KEY=%s", req->idempotency_key ? req->idempotency_key : "");
    return v;
}

static char **build_argv(const char *cmd, const json_t *args)
{
    size_t n = 0;
    char **v = aster_calloc(json_array_size(args) + 2, sizeof(*v));
    size_t i;
    const json_t *a;

    v[n++] = aster_strdup(cmd);
    json_array_foreach(args, i, a)
    {
        if (json_is_string(a))
            v[n++] = aster_strdup(json_string_value(a));
    }
    return v;
}

static void free_vec(char **v)
{
    for (char **p = v; p && *p; p++)
        aster_free(*p);
    aster_free(v);
}

static bool well_formed(run_entry *e, const json_t *t)
{
    const json_t *cmd = json_object_get(t, "command"), *args = json_object_get(t, "args"),
                 *env = json_object_get(t, "env"), *cwd = json_object_get(t, "cwd");

    if (!json_is_string(cmd) || !*json_string_value(cmd))
        aster__run_error(e, "invalid target: no 'command'");
    else if (args && !json_is_null(args) && !json_is_array(args))
        aster__run_error(e, "invalid target: 'args' is not an array");
    else if (env && !json_is_null(env) && !json_is_object(env))
        aster__run_error(e, "invalid target: 'env' is not an object");
    else if (cwd && !json_is_null(cwd) && !json_is_string(cwd))
        aster__run_error(e, "invalid target: 'cwd' is not a string");
    return !e->error[0];
}

void aster__run_cmd_submit(run_entry *e, const aster_run_req *req, const json_t *target)
{
    aster_runner *r = e->r;
    run_cmd *c = &e->u.cmd;
    const char *file, *cwd;
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    uv_file fds[2];
    char **argv, **envp;
    int rc;

    if (!well_formed(e, target)) {
        aster__run_finish(e, ASTER_EXEC_FAILED);
        return;
    }
    file = json_string_value(json_object_get(target, "command"));
    cwd = json_string_value(json_object_get(target, "cwd")); /* NULL if absent */
    e->res.started_at = aster_time_now();

    /* Both ends are O_CLOEXEC: no other child inherits the write end. */
    rc = uv_pipe(fds, 0, 0);
    if (rc) {
        aster__run_error(e, "cannot run %s: %s", file, uv_strerror(rc));
        aster__run_finish(e, ASTER_EXEC_FAILED);
        return;
    }
    /* From here the entry owns four handles, closed one by one. */
    uv_pipe_init(r->loop, &c->out, 0);
    uv_pipe_open(&c->out, fds[0]);
    uv_timer_init(r->loop, &c->timer);
    uv_timer_init(r->loop, &c->linger);
    c->out.data = c->timer.data = c->linger.data = c->proc.data = e;
    c->out_open = c->timer_open = c->linger_open = true;
    e->handles = 3;

    argv = build_argv(file, json_object_get(target, "args"));
    envp = build_env(req, json_object_get(target, "env"));
    memset(&o, 0, sizeof(o));
    stdio[0].flags = UV_IGNORE; /* libuv opens /dev/null for it */
    stdio[1].flags = stdio[2].flags = UV_INHERIT_FD;
    stdio[1].data.fd = stdio[2].data.fd = fds[1];
    o.file = file;
    o.args = argv;
    o.env = envp;
    o.cwd = cwd;
    o.flags = UV_PROCESS_DETACHED;
    o.stdio_count = 3;
    o.stdio = stdio;
    o.exit_cb = on_child_exit;
    rc = uv_spawn(r->loop, &c->proc, &o);
    close(fds[1]); /* the child has its copies; EOF comes when they close */
    free_vec(argv);
    free_vec(envp);
    /* uv_spawn initialises the handle even when it fails: close it too. */
    c->proc.data = e;
    c->proc_open = true;
    e->handles++;
    if (rc) {
        if (cwd)
            aster__run_error(e, "cannot run %s in %s: %s", file, cwd, uv_strerror(rc));
        else
            aster__run_error(e, "cannot run %s: %s", file, uv_strerror(rc));
        aster__run_finish(e, ASTER_EXEC_FAILED);
        close_handle((uv_handle_t *)&c->proc, &c->proc_open);
        close_handle((uv_handle_t *)&c->out, &c->out_open);
        close_handle((uv_handle_t *)&c->timer, &c->timer_open);
        close_handle((uv_handle_t *)&c->linger, &c->linger_open);
        return;
    }
    c->pgid = c->proc.pid;
    uv_read_start((uv_stream_t *)&c->out, on_alloc, on_read);
    if (e->timeout_ms > 0)
        uv_timer_start(&c->timer, on_timer, (uint64_t)e->timeout_ms, 0);
}

void aster__run_cmd_cancel(run_entry *e)
{
    run_cmd *c = &e->u.cmd;

    if (e->state != RUN_ACTIVE || c->term_sent)
        return; /* finished, or already being killed (a timeout stays a timeout) */
    aster__run_error(e, "cancelled");
    begin_kill(e, ASTER_EXEC_CANCELLED);
}

void aster__run_cmd_abort(run_entry *e)
{
    run_cmd *c = &e->u.cmd;

    if (e->state == RUN_ACTIVE)
        aster__run_error(e, "cancelled: the runner is shutting down");
    /* The group dies now; its leader is reaped by on_child_exit, which closes
     * the process handle (closing it first would leave a zombie). */
    if (c->pgid > 0 && (!c->exited || (c->term_sent && !c->kill_sent)))
        signal_group(c, SIGKILL);
    aster__run_finish(e, ASTER_EXEC_CANCELLED);
    close_handle((uv_handle_t *)&c->out, &c->out_open);
    close_handle((uv_handle_t *)&c->timer, &c->timer_open);
    close_handle((uv_handle_t *)&c->linger, &c->linger_open);
    if (c->exited || c->pgid <= 0)
        close_handle((uv_handle_t *)&c->proc, &c->proc_open);
}
