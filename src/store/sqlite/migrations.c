/* migrations.c — the SQLite schema, one entry per version, in order.
 *
 * Entry i (0-based) takes the schema from version i to i + 1.  An entry is
 * never edited once released: a database migrated by it would not be
 * migrated again.  Change the schema by appending an entry, and append the
 * same version to the PostgreSQL backend (ASTER_STORE_SCHEMA_VERSION).
 *
 * Conventions, chosen so that the sqlite3 CLI shows readable rows:
 * - times are INTEGER microseconds since the Unix epoch (UTC).  Times that
 *   always exist (created_at, updated_at, scheduled_at, not_before) are
 *   NOT NULL; optional ones (next_fire_at, lease_until, started_at,
 *   finished_at, next_delivery_at) are NULL when absent, read back as 0;
 * - numbers that do not apply (duration_ms, drift_ms, http_status,
 *   exit_code: -1 in aster_exec) are NULL;
 * - enums are their names from core/job.h ('pending', 'ATLEAST_ONCE'), not
 *   numbers, and have no CHECK: adding a value later must not need a table
 *   rebuild.  dst_gap / dst_overlap are numbers until cron/ names them;
 * - STRICT tables: a bug that binds text to an INTEGER column fails loudly
 *   instead of storing it.  Needs SQLite >= 3.37 (Debian 12 has 3.40). */
#include "store/sqlite/sqlite_int.h"

#include "util/err.h"

static const char v1[] =
    "CREATE TABLE jobs (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  name TEXT NOT NULL UNIQUE,\n"
    "  schedule TEXT NOT NULL,\n"
    "  timezone TEXT NOT NULL,\n"
    "  delivery TEXT NOT NULL,\n"
    "  target_kind TEXT NOT NULL,\n"
    "  target TEXT NOT NULL,\n" /* JSON */
    "  max_retries INTEGER NOT NULL,\n"
    "  retry_backoff_ms INTEGER NOT NULL,\n"
    "  retry_backoff_max_ms INTEGER NOT NULL,\n"
    "  timeout_ms INTEGER NOT NULL,\n"
    "  overlap TEXT NOT NULL,\n"
    "  misfire TEXT NOT NULL,\n"
    "  misfire_grace_ms INTEGER NOT NULL,\n"
    "  dst_gap INTEGER NOT NULL,\n"
    "  dst_overlap INTEGER NOT NULL,\n"
    "  paused INTEGER NOT NULL,\n"
    "  alert_webhook TEXT,\n"
    "  alert_after_failures INTEGER NOT NULL,\n"
    "  alert_if_no_success_ms INTEGER NOT NULL,\n"
    "  next_fire_at INTEGER,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL,\n"
    "  version INTEGER NOT NULL\n"
    ") STRICT;\n"
    /* The scheduler loads the active jobs by their next fire. */
    "CREATE INDEX jobs_next_fire ON jobs (next_fire_at) WHERE paused = 0;\n"
    "\n"
    "CREATE TABLE executions (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,\n"
    "  scheduled_at INTEGER NOT NULL,\n"
    "  \"trigger\" TEXT NOT NULL,\n"
    "  status TEXT NOT NULL,\n"
    "  attempt INTEGER NOT NULL,\n"
    "  not_before INTEGER NOT NULL,\n"
    "  claimed_by TEXT,\n"
    "  lease_until INTEGER,\n"
    "  started_at INTEGER,\n"
    "  finished_at INTEGER,\n"
    "  duration_ms INTEGER,\n"
    "  drift_ms INTEGER,\n"
    "  http_status INTEGER,\n"
    "  exit_code INTEGER,\n"
    "  error TEXT,\n"
    "  output TEXT,\n"
    "  created_at INTEGER NOT NULL\n"
    ") STRICT;\n"
    /* A fire is created once: (job, instant) is unique among scheduled and
     * catch-up fires, which makes their insertion idempotent across restarts
     * and scheduler fail-over.  Manual triggers are left out (a partial
     * index) because a person may trigger a job twice in one instant, or at
     * the instant of a fire.  Inserts name this index as their ON CONFLICT
     * target, with the same WHERE. */
    "CREATE UNIQUE INDEX executions_fire ON executions (job_id, scheduled_at)\n"
    "  WHERE \"trigger\" <> 'manual';\n"
    /* The queue: due pending executions, earliest first.  Partial, so that
     * the index holds only the (few) pending rows, not the history. */
    "CREATE INDEX executions_queue ON executions (not_before, id) WHERE status = 'pending';\n"
    /* History of one job, newest first; also what ON DELETE CASCADE uses
     * to find a job's executions. */
    "CREATE INDEX executions_job ON executions (job_id, id);\n"
    "CREATE INDEX executions_status ON executions (status, id);\n"
    "CREATE INDEX executions_scheduled ON executions (scheduled_at);\n"
    /* Leases: a worker's running rows, extended every few seconds. */
    "CREATE INDEX executions_owner ON executions (claimed_by) WHERE status = 'running';\n"
    "\n"
    /* Every finished attempt of an execution; the execution row holds the
     * latest state only. */
    "CREATE TABLE attempts (\n"
    "  execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,\n"
    "  attempt INTEGER NOT NULL,\n"
    "  status TEXT NOT NULL,\n"
    "  started_at INTEGER,\n"
    "  finished_at INTEGER,\n"
    "  duration_ms INTEGER,\n"
    "  http_status INTEGER,\n"
    "  exit_code INTEGER,\n"
    "  error TEXT,\n"
    "  PRIMARY KEY (execution_id, attempt)\n"
    ") STRICT;\n"
    "\n"
    /* execution_id is a plain column, not a foreign key: an alert is a
     * record of what happened and outlives the execution it names when
     * retention prunes history. */
    "CREATE TABLE alerts (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,\n"
    "  execution_id TEXT,\n"
    "  kind TEXT NOT NULL,\n"
    "  message TEXT NOT NULL,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  delivery_state TEXT NOT NULL,\n"
    "  delivery_attempts INTEGER NOT NULL,\n"
    "  next_delivery_at INTEGER\n"
    ") STRICT;\n"
    "CREATE INDEX alerts_job ON alerts (job_id, id);\n"
    "CREATE INDEX alerts_created ON alerts (created_at);\n"
    /* The webhook sender's queue. */
    "CREATE INDEX alerts_delivery ON alerts (next_delivery_at)\n"
    "  WHERE delivery_state = 'pending';\n";

/* Version 2: alerts delivery and retention (src/engine/alert.c, prune.c).
 * - alerts.dedupe_key names the event an alert is about ("failed:" +
 *   execution id, "no_success:" + the start of the absence, ...), unique
 *   per job: an alert is raised once per event, whichever path (the
 *   engine's report, the alerter's periodic scan) or process raises it, and
 *   across restarts.  NULL for alerts written without one (version 1).
 * - executions_failed: the alerter's scan for final failures (also those
 *   marked failed by a lease reclaim, which no result reports);
 * - executions_success: a job's last success (failure streaks, absence);
 * - executions_created: the pruner's age cut;
 * - jobs_absence: the jobs that want an absence alert. */
static const char v2[] =
    "ALTER TABLE alerts ADD COLUMN dedupe_key TEXT;\n"
    "CREATE UNIQUE INDEX alerts_dedupe ON alerts (job_id, dedupe_key)\n"
    "  WHERE dedupe_key IS NOT NULL;\n"
    "CREATE INDEX executions_failed ON executions (finished_at)\n"
    "  WHERE status IN ('failed', 'timed_out');\n"
    "CREATE INDEX executions_success ON executions (job_id, id) WHERE status = 'succeeded';\n"
    "CREATE INDEX executions_created ON executions (created_at);\n"
    "CREATE INDEX jobs_absence ON jobs (id) WHERE alert_if_no_success_ms > 0;\n";

/* Version 3: coordination between processes (src/engine/engine.c).
 * - nodes: each process that claims executions, by the owner name it
 *   claims them with, and when it was last heard of: a silent node's
 *   executions are taken back without waiting for their leases;
 * - leader: the scheduler's one leadership row; token is the fencing
 *   token, raised at every new term;
 * - executions_busy: the scheduler's overlap test across processes.
 * `aster serve` on SQLite holds the file alone and needs none of it; it is
 * here so that version 3 means the same schema on both backends. */
static const char v3[] = "CREATE TABLE nodes (\n"
                         "  id TEXT PRIMARY KEY,\n"
                         "  role TEXT NOT NULL,\n"
                         "  started_at INTEGER NOT NULL,\n"
                         "  heartbeat_at INTEGER NOT NULL\n"
                         ") STRICT;\n"
                         "CREATE TABLE leader (\n"
                         "  id INTEGER PRIMARY KEY CHECK (id = 1),\n"
                         "  node TEXT NOT NULL,\n"
                         "  token INTEGER NOT NULL,\n"
                         "  lease_until INTEGER NOT NULL\n"
                         ") STRICT;\n"
                         "CREATE INDEX executions_busy ON executions (job_id)\n"
                         "  WHERE status = 'running';\n";

const char *const sq_migrations[] = {v1, v2, v3};
const int sq_migration_count = (int)ASTER_NELEM(sq_migrations);

_Static_assert(ASTER_NELEM(sq_migrations) == ASTER_STORE_SCHEMA_VERSION,
               "one SQLite migration per schema version");
