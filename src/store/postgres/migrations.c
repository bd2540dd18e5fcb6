/* migrations.c — the PostgreSQL schema, one entry per version, in order.
 *
 * Entry i (0-based) takes the schema from version i to i + 1, and version N
 * means the same tables and meaning as the SQLite backend's version N
 * (sqlite/migrations.c, which explains each column and index).  An entry is
 * never edited once released; change the schema by appending an entry here
 * and there (ASTER_STORE_SCHEMA_VERSION).
 *
 * Types, chosen to mirror SQLite's conventions:
 * - ids are TEXT (UUID strings, as the API shows them), COLLATE "C" like
 *   names: ordering and cursors compare bytes, as on SQLite, whatever the
 *   database's locale, and the btree indexes serve the range scans;
 * - times are BIGINT microseconds since the Unix epoch (UTC), NULL when
 *   absent; numbers that do not apply are NULL;
 * - enums are their names from core/job.h, without CHECK (adding a value
 *   must not need a table rewrite);
 * - paused is BOOLEAN.
 * Each entry runs in one transaction (PostgreSQL's DDL is transactional),
 * under an advisory lock taken by conn.c, so concurrent processes migrate
 * once. */
#include "store/postgres/pg_int.h"

#include "util/err.h"

static const char v1[] =
    "CREATE TABLE jobs (\n"
    "  id TEXT COLLATE \"C\" PRIMARY KEY,\n"
    "  name TEXT COLLATE \"C\" NOT NULL,\n"
    "  schedule TEXT NOT NULL,\n"
    "  timezone TEXT NOT NULL,\n"
    "  delivery TEXT NOT NULL,\n"
    "  target_kind TEXT NOT NULL,\n"
    "  target TEXT NOT NULL,\n"
    "  max_retries INTEGER NOT NULL,\n"
    "  retry_backoff_ms BIGINT NOT NULL,\n"
    "  retry_backoff_max_ms BIGINT NOT NULL,\n"
    "  timeout_ms BIGINT NOT NULL,\n"
    "  overlap TEXT NOT NULL,\n"
    "  misfire TEXT NOT NULL,\n"
    "  misfire_grace_ms BIGINT NOT NULL,\n"
    "  dst_gap INTEGER NOT NULL,\n"
    "  dst_overlap INTEGER NOT NULL,\n"
    "  paused BOOLEAN NOT NULL,\n"
    "  alert_webhook TEXT,\n"
    "  alert_after_failures INTEGER NOT NULL,\n"
    "  alert_if_no_success_ms BIGINT NOT NULL,\n"
    "  next_fire_at BIGINT,\n"
    "  created_at BIGINT NOT NULL,\n"
    "  updated_at BIGINT NOT NULL,\n"
    "  version BIGINT NOT NULL,\n"
    "  CONSTRAINT jobs_name_key UNIQUE (name)\n"
    ");\n"
    "CREATE INDEX jobs_next_fire ON jobs (next_fire_at) WHERE NOT paused;\n"
    "\n"
    "CREATE TABLE executions (\n"
    "  id TEXT COLLATE \"C\" PRIMARY KEY,\n"
    "  job_id TEXT COLLATE \"C\" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,\n"
    "  scheduled_at BIGINT NOT NULL,\n"
    "  \"trigger\" TEXT NOT NULL,\n"
    "  status TEXT NOT NULL,\n"
    "  attempt INTEGER NOT NULL,\n"
    "  not_before BIGINT NOT NULL,\n"
    "  claimed_by TEXT COLLATE \"C\",\n"
    "  lease_until BIGINT,\n"
    "  started_at BIGINT,\n"
    "  finished_at BIGINT,\n"
    "  duration_ms BIGINT,\n"
    "  drift_ms BIGINT,\n"
    "  http_status INTEGER,\n"
    "  exit_code INTEGER,\n"
    "  error TEXT,\n"
    "  output TEXT,\n"
    "  created_at BIGINT NOT NULL\n"
    ");\n"
    /* Fires are created once (see sqlite/migrations.c); inserts name this
     * index as their ON CONFLICT target, with the same WHERE. */
    "CREATE UNIQUE INDEX executions_fire ON executions (job_id, scheduled_at)\n"
    "  WHERE \"trigger\" <> 'manual';\n"
    "CREATE INDEX executions_queue ON executions (not_before, id) WHERE status = 'pending';\n"
    "CREATE INDEX executions_job ON executions (job_id, id);\n"
    "CREATE INDEX executions_status ON executions (status, id);\n"
    "CREATE INDEX executions_scheduled ON executions (scheduled_at);\n"
    "CREATE INDEX executions_owner ON executions (claimed_by) WHERE status = 'running';\n"
    "\n"
    "CREATE TABLE attempts (\n"
    "  execution_id TEXT COLLATE \"C\" NOT NULL REFERENCES executions (id) ON DELETE CASCADE,\n"
    "  attempt INTEGER NOT NULL,\n"
    "  status TEXT NOT NULL,\n"
    "  started_at BIGINT,\n"
    "  finished_at BIGINT,\n"
    "  duration_ms BIGINT,\n"
    "  http_status INTEGER,\n"
    "  exit_code INTEGER,\n"
    "  error TEXT,\n"
    "  PRIMARY KEY (execution_id, attempt)\n"
    ");\n"
    "\n"
    "CREATE TABLE alerts (\n"
    "  id TEXT COLLATE \"C\" PRIMARY KEY,\n"
    "  job_id TEXT COLLATE \"C\" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,\n"
    "  execution_id TEXT COLLATE \"C\",\n"
    "  kind TEXT NOT NULL,\n"
    "  message TEXT NOT NULL,\n"
    "  created_at BIGINT NOT NULL,\n"
    "  delivery_state TEXT NOT NULL,\n"
    "  delivery_attempts INTEGER NOT NULL,\n"
    "  next_delivery_at BIGINT\n"
    ");\n"
    "CREATE INDEX alerts_job ON alerts (job_id, id);\n"
    "CREATE INDEX alerts_created ON alerts (created_at);\n"
    "CREATE INDEX alerts_delivery ON alerts (next_delivery_at)\n"
    "  WHERE delivery_state = 'pending';\n";

/* Version 2: alerts delivery and retention (see sqlite/migrations.c). */
static const char v2[] =
    "ALTER TABLE alerts ADD COLUMN dedupe_key TEXT;\n"
    "CREATE UNIQUE INDEX alerts_dedupe ON alerts (job_id, dedupe_key)\n"
    "  WHERE dedupe_key IS NOT NULL;\n"
    "CREATE INDEX executions_failed ON executions (finished_at)\n"
    "  WHERE status IN ('failed', 'timed_out');\n"
    "CREATE INDEX executions_success ON executions (job_id, id) WHERE status = 'succeeded';\n"
    "CREATE INDEX executions_created ON executions (created_at);\n"
    "CREATE INDEX jobs_absence ON jobs (id) WHERE alert_if_no_success_ms > 0;\n";

/* Version 3: coordination between processes (see sqlite/migrations.c).
 * Triggers announce changes to listeners (store.h, aster_store_listen):
 * a job's id on channel aster_job when a user changed or deleted it (its
 * version moves; the scheduler's next_fire_at does not), and an empty
 * payload on aster_exec when an execution becomes pending.  New jobs are
 * announced by the store after their commit instead (announce.c: a NOTIFY
 * in every INSERT would serialise their commits).  PostgreSQL folds equal
 * notifications of one transaction into one. */
static const char v3[] =
    "CREATE TABLE nodes (\n"
    "  id TEXT COLLATE \"C\" PRIMARY KEY,\n"
    "  role TEXT NOT NULL,\n"
    "  started_at BIGINT NOT NULL,\n"
    "  heartbeat_at BIGINT NOT NULL\n"
    ");\n"
    "CREATE TABLE leader (\n"
    "  id INTEGER PRIMARY KEY CHECK (id = 1),\n"
    "  node TEXT COLLATE \"C\" NOT NULL,\n"
    "  token BIGINT NOT NULL,\n"
    "  lease_until BIGINT NOT NULL\n"
    ");\n"
    "CREATE INDEX executions_busy ON executions (job_id) WHERE status = 'running';\n"
    "CREATE FUNCTION aster_notify_job() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "  IF TG_OP = 'DELETE' THEN\n"
    "    PERFORM pg_notify('aster_job', OLD.id);\n"
    "  ELSE\n"
    "    PERFORM pg_notify('aster_job', NEW.id);\n"
    "  END IF;\n"
    "  RETURN NULL;\n"
    "END $$;\n"
    "CREATE TRIGGER jobs_notify_delete AFTER DELETE ON jobs\n"
    "  FOR EACH ROW EXECUTE FUNCTION aster_notify_job();\n"
    "CREATE TRIGGER jobs_notify_update AFTER UPDATE ON jobs\n"
    "  FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)\n"
    "  EXECUTE FUNCTION aster_notify_job();\n"
    "CREATE FUNCTION aster_notify_exec() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "  PERFORM pg_notify('aster_exec', '');\n"
    "  RETURN NULL;\n"
    "END $$;\n"
    "CREATE TRIGGER executions_notify_insert AFTER INSERT ON executions\n"
    "  FOR EACH ROW WHEN (NEW.status = 'pending')\n"
    "  EXECUTE FUNCTION aster_notify_exec();\n"
    "CREATE TRIGGER executions_notify_update AFTER UPDATE OF status ON executions\n"
    "  FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status <> 'pending')\n"
    "  EXECUTE FUNCTION aster_notify_exec();\n";

const char *const pg_migrations[] = {v1, v2, v3};
const int pg_migration_count = (int)ASTER_NELEM(pg_migrations);

_Static_assert(ASTER_NELEM(pg_migrations) == ASTER_STORE_SCHEMA_VERSION,
               "one PostgreSQL migration per schema version");
