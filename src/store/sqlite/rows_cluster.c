/* rows_cluster.c — coordination between processes, on SQLite.
 *
 * `aster serve` holds a SQLite file alone, so it elects no leader and
 * counts its own running attempts; these functions exist so that the
 * store's contract is whole on both backends (and tested on both), not
 * because serve needs them. */
#include "store/sqlite/sqlite_int.h"

int sq_job_busy(aster_store *st, const char *job_id, int64_t *out, aster_err *err)
{
    return sq_read_int64((sq_store *)st, SQ_JOB_BUSY,
                         "SELECT count(*) FROM executions INDEXED BY executions_busy "
                         "WHERE job_id = ?1 AND status = 'running'",
                         job_id, 0, "counting a job's executions", out, err);
}

int sq_node_heartbeat(aster_store *stp, const char *node, const char *role, aster_time_us at,
                      aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK;

    if (rc)
        return rc;
    rc = sq_prepare(c, SQ_NODE_HEARTBEAT,
                    "INSERT INTO nodes (id, role, started_at, heartbeat_at) "
                    "VALUES (?1, ?2, ?3, ?3) ON CONFLICT (id) DO UPDATE "
                    "SET role = excluded.role, heartbeat_at = excluded.heartbeat_at",
                    &st, err);
    if (!rc) {
        sq_bind_text(st, 1, node, &b);
        sq_bind_text(st, 2, role, &b);
        sq_bind_int(st, 3, at, &b);
        rc = sq_step_done(c, st, b, "recording a heartbeat", err);
    }
    if (!rc && at > 0) {
        rc = sq_prepare(c, SQ_NODE_FORGET,
                        "DELETE FROM nodes WHERE heartbeat_at < ?1 AND NOT EXISTS "
                        "(SELECT 1 FROM executions WHERE status = 'running' "
                        "AND claimed_by = nodes.id)",
                        &st, err);
        if (!rc) {
            sq_bind_int(st, 1, at - INT64_C(86400) * ASTER_US_PER_SEC, &b);
            rc = sq_step_done(c, st, b, "forgetting silent nodes", err);
        }
    }
    return sq_write_end(s, c, rc, err);
}

int sq_leader_acquire(aster_store *stp, const char *node, aster_time_us now,
                      aster_time_us lease_until, int64_t *token, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK, step;

    if (rc)
        return rc;
    /* The same statement as on PostgreSQL: see postgres/rows_cluster.c. */
    rc = sq_prepare(c, SQ_LEADER_ACQUIRE,
                    "INSERT INTO leader (id, node, token, lease_until) VALUES (1, ?1, 1, ?3) "
                    "ON CONFLICT (id) DO UPDATE SET "
                    "token = CASE WHEN leader.node = ?1 AND leader.lease_until >= ?2 "
                    "THEN leader.token ELSE leader.token + 1 END, "
                    "node = ?1, lease_until = ?3 "
                    "WHERE leader.node = ?1 OR leader.lease_until < ?2 "
                    "RETURNING token",
                    &st, err);
    if (!rc) {
        sq_bind_text(st, 1, node, &b);
        sq_bind_int(st, 2, now, &b);
        sq_bind_int(st, 3, lease_until, &b);
        step = b == SQLITE_OK ? sqlite3_step(st) : b;
        if (step == SQLITE_ROW) {
            *token = sqlite3_column_int64(st, 0);
            step = sqlite3_step(st);
        }
        if (step != SQLITE_DONE)
            rc = sq_dberr(c->db, step, "taking the scheduler's leadership", err);
        sqlite3_reset(st);
    }
    return sq_write_end(s, c, rc, err);
}

int sq_leader_release(aster_store *stp, const char *node, int64_t token, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK;

    if (rc)
        return rc;
    rc = sq_prepare(c, SQ_LEADER_RELEASE,
                    "UPDATE leader SET lease_until = 0 WHERE node = ?1 AND token = ?2", &st, err);
    if (!rc) {
        sq_bind_text(st, 1, node, &b);
        sq_bind_int(st, 2, token, &b);
        rc = sq_step_done(c, st, b, "giving up the scheduler's leadership", err);
    }
    return sq_write_end(s, c, rc, err);
}

int sq_leader_fence(aster_store *stp, int64_t token, aster_err *err)
{
    sq_store *s = (sq_store *)stp;
    sqlite3_stmt *st;
    sq_conn *c;
    int rc = sq_write_begin(s, &c, err), b = SQLITE_OK, step;

    if (rc)
        return rc;
    /* Inside a batch this runs on the writer, whose write lock already
     * keeps every other leadership change out until the commit. */
    rc = sq_prepare(c, SQ_LEADER_FENCE, "SELECT 1 FROM leader WHERE id = 1 AND token = ?1", &st,
                    err);
    if (!rc) {
        sq_bind_int(st, 1, token, &b);
        step = b == SQLITE_OK ? sqlite3_step(st) : b;
        if (step == SQLITE_DONE)
            rc = aster_err_set(err, ASTER_ECONFLICT, "token",
                               "fencing token %lld is stale: the leadership has moved on",
                               (long long)token);
        else if (step != SQLITE_ROW)
            rc = sq_dberr(c->db, step, "checking the fencing token", err);
        sqlite3_reset(st);
    }
    return sq_write_end(s, c, rc, err);
}
