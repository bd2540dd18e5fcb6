/* rows_cluster.c — coordination between processes: node heartbeats,
 * the scheduler's leadership with its fencing token, and the listener
 * that turns NOTIFY into events (the triggers that send them are in
 * migrations.c, version 3). */
#include "store/postgres/pg_int.h"

#include <stdio.h>
#include <string.h>

#include "util/mem.h"

int pg_job_busy(aster_store *st, const char *job_id, int64_t *out, aster_err *err)
{
    struct pg_scalar x = {.slot = PG_JOB_BUSY,
                          .sql = "SELECT count(*) FROM executions WHERE job_id = $1 "
                                 "AND status = 'running'",
                          .what = "counting a job's executions"};
    int rc;

    pg_p_text(&x.p, 1, job_id);
    rc = pg_run((pg_store *)st, PG_READ, pg_run_scalar, &x, err);
    if (!rc)
        *out = x.value;
    return rc;
}

struct heartbeat {
    pg_params p;
    aster_time_us at;
};

static int heartbeat_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct heartbeat *x = ctx;
    PGresult *r = pg_query(c, PG_NODE_HEARTBEAT,
                           "INSERT INTO nodes (id, role, started_at, heartbeat_at) "
                           "VALUES ($1, $2, $3, $3) ON CONFLICT (id) DO UPDATE "
                           "SET role = excluded.role, heartbeat_at = excluded.heartbeat_at",
                           &x->p);
    if (!r)
        return pg_fail(c, "recording a heartbeat", err);
    PQclear(r);
    if (x->at <= 0)
        return 0;
    /* Nodes silent for a day that hold nothing: every process start
     * leaves one row behind. */
    pg_params q = {0};
    pg_p_int(&q, 1, x->at - INT64_C(86400) * ASTER_US_PER_SEC);
    r = pg_query(c, PG_NODE_FORGET,
                 "DELETE FROM nodes WHERE heartbeat_at < $1 AND NOT EXISTS "
                 "(SELECT 1 FROM executions WHERE status = 'running' AND claimed_by = nodes.id)",
                 &q);
    if (!r)
        return pg_fail(c, "forgetting silent nodes", err);
    PQclear(r);
    return 0;
}

int pg_node_heartbeat(aster_store *st, const char *node, const char *role, aster_time_us at,
                      aster_err *err)
{
    struct heartbeat x = {.at = at};

    pg_p_text(&x.p, 1, node);
    pg_p_text(&x.p, 2, role);
    pg_p_int(&x.p, 3, at);
    return pg_run((pg_store *)st, PG_WRITE, heartbeat_fn, &x, err);
}

/* The row may be locked by the leader's fenced write: wait a little, not
 * for as long as that transaction lasts (a frozen leader's lasts until the
 * server ends it), so that the caller's loop goes on. */
static int acquire_fn(pg_conn *c, void *ctx, aster_err *err)
{
    PGresult *r = PQexec(c->db, "SET LOCAL lock_timeout = 500");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

    PQclear(r);
    if (!ok)
        return aster_err_set(err, ASTER_EUNAVAIL, "store", "cannot set a lock timeout: %.150s",
                             PQerrorMessage(c->db));
    return pg_run_scalar(c, ctx, err);
}

int pg_leader_acquire(aster_store *st, const char *node, aster_time_us now,
                      aster_time_us lease_until, int64_t *token, aster_err *err)
{
    /* One statement, atomic under the row lock: take the row when it is
     * free or its lease ended, renew it when it is ours.  The token stays
     * within a term and rises at every new one, also when the same node
     * comes back after its lease ran out (it may have missed changes, and
     * writes of its old term must not pass the fence of the new one).  No
     * row back: another node leads. */
    struct pg_scalar x = {.slot = PG_LEADER_ACQUIRE,
                          .sql = "INSERT INTO leader (id, node, token, lease_until) "
                                 "VALUES (1, $1, 1, $3) "
                                 "ON CONFLICT (id) DO UPDATE SET "
                                 "token = CASE WHEN leader.node = $1 AND leader.lease_until >= $2 "
                                 "THEN leader.token ELSE leader.token + 1 END, "
                                 "node = $1, lease_until = $3 "
                                 "WHERE leader.node = $1 OR leader.lease_until < $2 "
                                 "RETURNING token",
                          .what = "taking the scheduler's leadership",
                          .null = 0};
    int rc;

    pg_p_text(&x.p, 1, node);
    pg_p_int(&x.p, 2, now);
    pg_p_int(&x.p, 3, lease_until);
    /* Not PG_IDEMPOTENT: a renewal applied twice is harmless, but a take
     * applied twice would skip a token. */
    rc = pg_run((pg_store *)st, PG_WRITE, acquire_fn, &x, err);
    if (!rc)
        *token = x.value;
    return rc;
}

int pg_leader_release(aster_store *st, const char *node, int64_t token, aster_err *err)
{
    struct pg_stmt x = {.slot = PG_LEADER_RELEASE,
                        .sql = "UPDATE leader SET lease_until = 0 WHERE node = $1 AND token = $2",
                        .what = "giving up the scheduler's leadership"};

    pg_p_text(&x.p, 1, node);
    pg_p_int(&x.p, 2, token);
    return pg_run((pg_store *)st, PG_IDEMPOTENT, pg_run_stmt, &x, err);
}

int pg_leader_fence(aster_store *st, int64_t token, aster_err *err)
{
    /* FOR SHARE: a new term's UPDATE waits for this transaction, so the
     * token cannot change between this check and the commit. */
    struct pg_scalar x = {.slot = PG_LEADER_FENCE,
                          .sql = "SELECT count(*) FROM (SELECT 1 FROM leader "
                                 "WHERE id = 1 AND token = $1 FOR SHARE) AS t",
                          .what = "checking the fencing token"};
    int rc;

    pg_p_int(&x.p, 1, token);
    rc = pg_run((pg_store *)st, PG_WRITE, pg_run_scalar, &x, err);
    if (!rc && x.value != 1)
        rc = aster_err_set(err, ASTER_ECONFLICT, "token",
                           "fencing token %lld is stale: the leadership has moved on",
                           (long long)token);
    return rc;
}

int pg_announce_cancel(aster_store *st, const char *job_id, aster_time_us before, aster_err *err)
{
    char payload[ASTER_ID_LEN + 24];
    struct pg_stmt x = {.slot = PG_ANNOUNCE_CANCEL,
                        .sql = "SELECT pg_notify('aster_cancel', $1)",
                        .what = "announcing a cancellation"};

    snprintf(payload, sizeof(payload), "%s %lld", job_id, (long long)before);
    pg_p_text(&x.p, 1, payload);
    return pg_run((pg_store *)st, PG_WRITE, pg_run_stmt, &x, err);
}

/* ---- the listener ----------------------------------------------------------- */

typedef struct pg_listener {
    struct aster_store_listener base; /* first */
    pg_conn *c;
} pg_listener;

int pg_listen(aster_store *st, aster_store_listener **out, aster_err *err)
{
    pg_listener *l = aster_calloc(1, sizeof(*l));
    PGresult *r = NULL;
    int rc;

    l->base.ops = st->ops;
    if ((rc = pg_conn_open((pg_store *)st, &l->c, err)))
        goto fail;
    r = PQexec(l->c->db, "LISTEN aster_job; LISTEN aster_exec; LISTEN aster_cancel");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = aster_err_set(err, ASTER_EUNAVAIL, "store", "cannot listen for changes: %.150s",
                           PQerrorMessage(l->c->db));
        goto fail;
    }
    PQclear(r);
    /* Reads never block the caller's loop: it polls the descriptor. */
    if (PQsetnonblocking(l->c->db, 1)) {
        rc = aster_err_set(err, ASTER_EIO, "store", "cannot make the listener non-blocking");
        r = NULL;
        goto fail;
    }
    *out = &l->base;
    return 0;
fail:
    PQclear(r);
    pg_conn_close(l->c);
    aster_free(l);
    return rc;
}

int pg_listener_fd(const aster_store_listener *lp)
{
    const pg_listener *l = (const pg_listener *)lp;
    return PQsocket(l->c->db);
}

int pg_listener_read(aster_store_listener *lp, aster_store_event_fn fn, void *arg, aster_err *err)
{
    pg_listener *l = (pg_listener *)lp;
    PGnotify *n;

    if (!PQconsumeInput(l->c->db) || PQstatus(l->c->db) != CONNECTION_OK)
        return aster_err_set(err, ASTER_EUNAVAIL, "store", "listener connection lost: %.150s",
                             PQerrorMessage(l->c->db));
    while ((n = PQnotifies(l->c->db))) {
        if (!strcmp(n->relname, "aster_job")) {
            fn(arg, ASTER_STORE_EV_JOB, n->extra, 0);
        } else if (!strcmp(n->relname, "aster_exec")) {
            fn(arg, ASTER_STORE_EV_EXEC, NULL, 0);
        } else if (!strcmp(n->relname, "aster_cancel")) {
            /* "JOB_ID BEFORE" */
            char id[ASTER_ID_LEN + 1];
            long long before = 0;
            if (sscanf(n->extra, "%36s %lld", id, &before) == 2)
                fn(arg, ASTER_STORE_EV_CANCEL, id, before);
        }
        PQfreemem(n);
    }
    return 0;
}

void pg_listener_close(aster_store_listener *lp)
{
    pg_listener *l = (pg_listener *)lp;
    pg_conn_close(l->c);
    aster_free(l);
}
