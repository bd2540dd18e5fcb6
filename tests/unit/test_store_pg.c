/* test_store_pg.c — the store interface against a real PostgreSQL server.
 *
 * Runs every case of test_store.c (included below, with the PostgreSQL
 * hooks it asks for), then what only a shared database has: claims from
 * many connections at once, reconnecting after the server drops us, an
 * unreachable database, concurrent migrations.
 *
 * The server is $ASTER_TEST_PG_URL (scripts/pg-test.sh starts one and sets
 * it); without it the test says it is skipped and passes.  Each store name
 * is a database aster_test_<pid>_<name>, created on first use through a
 * maintenance connection to that URL and dropped at the end. */
#include <libpq-fe.h>

#define STORE_TEST_PG 1
#define BACKEND_NAME  "postgres"
#define BACKEND_CAPS  (ASTER_STORE_CAP_SHARED | ASTER_STORE_CAP_NOTIFY)
/* UTF-8 only: U+10FFFF, the greatest character. */
#define BACKEND_MAX_CHAR "\xf4\x8f\xbf\xbf"

#include <stddef.h>

static void db_url(char *buf, size_t n, const char *name);
static void db_url_alt(char *buf, size_t n, const char *name);
static void db_exec(const char *name, const char *sql);
static int backend_setup(void **state);
static int backend_teardown(void **state);

#include "test_store.c"

/* ---- the PostgreSQL hooks ------------------------------------------------------------ */

enum { MAX_DBS = 64 };

static const char *base_url; /* $ASTER_TEST_PG_URL */
static PGconn *maint;        /* to the base URL's database, for CREATE / DROP DATABASE */
static char dbs[MAX_DBS][64];
static int ndbs;

static void db_name(char *buf, size_t n, const char *name)
{
    size_t len = (size_t)snprintf(buf, n, "aster_test_%ld_%s", (long)getpid(), name);

    for (size_t i = 0; i < len && i < n; i++)
        if (buf[i] == '-')
            buf[i] = '_';
}

static PGresult *maint_exec(const char *sql)
{
    PGresult *r = PQexec(maint, sql);
    ExecStatusType st = PQresultStatus(r);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(maint));
    return r;
}

/* The base URL with its database replaced by `db`, and its scheme by
 * `scheme` (NULL: as it was). */
static void url_for(char *buf, size_t n, const char *db, const char *scheme)
{
    const char *rest = strstr(base_url, "://"), *slash, *query;

    assert_non_null(rest);
    rest += 3;
    slash = strchr(rest, '/');
    query = strchr(rest, '?');
    if (!slash || (query && slash > query))
        slash = query ? query : rest + strlen(rest);
    snprintf(buf, n, "%s://%.*s/%s%s", scheme ? scheme : "postgres", (int)(slash - rest), rest, db,
             query ? query : "");
}

static void db_url(char *buf, size_t n, const char *name)
{
    char db[64], sql[128];
    int i;

    db_name(db, sizeof(db), name);
    for (i = 0; i < ndbs && strcmp(dbs[i], db); i++)
        ;
    if (i == ndbs) {
        assert_true(ndbs < MAX_DBS);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
        PQclear(maint_exec(sql));
        snprintf(dbs[ndbs++], sizeof(dbs[0]), "%s", db);
    }
    url_for(buf, n, db, NULL);
}

static void db_url_alt(char *buf, size_t n, const char *name)
{
    char db[64];

    db_url(buf, n, name); /* creates it */
    db_name(db, sizeof(db), name);
    url_for(buf, n, db, "postgresql");
}

static void db_exec(const char *name, const char *sql)
{
    char url[512];
    PGconn *c;
    PGresult *r;

    db_url(url, sizeof(url), name);
    c = PQconnectdb(url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static int backend_setup(void **state)
{
    (void)state;
    maint = PQconnectdb(base_url);
    if (PQstatus(maint) != CONNECTION_OK) {
        fprintf(stderr, "cannot reach %s: %s", base_url, PQerrorMessage(maint));
        PQfinish(maint);
        maint = NULL;
        return -1;
    }
    return 0;
}

static int backend_teardown(void **state)
{
    char sql[128];
    int rc = 0;

    (void)state;
    for (int i = 0; i < ndbs; i++) {
        PGresult *r;
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbs[i]);
        r = PQexec(maint, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(stderr, "%s: %s", sql, PQerrorMessage(maint));
            rc = -1;
        }
        PQclear(r);
    }
    PQfinish(maint);
    return rc;
}

/* Drops every connection other processes (the store's pool) hold to
 * database `name`; returns how many. */
static int terminate_backends(const char *name)
{
    char db[64], sql[256];
    PGresult *r;
    int n;

    db_name(db, sizeof(db), name);
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE datname = '%s' AND pid <> pg_backend_pid()",
             db);
    r = maint_exec(sql);
    n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    /* pg_terminate_backend signals; wait until they are gone. */
    for (int i = 0; i < 500; i++) {
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'",
                 db);
        r = maint_exec(sql);
        int left = atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
        if (left == 0)
            break;
        usleep(10000);
    }
    return n;
}

/* ---- what only PostgreSQL has -------------------------------------------------------- */

static void test_pg_exclusive_ignored(void **state)
{
    const aster_store_opts excl = {.exclusive = true, .migrate = true};
    char url[512];
    aster_store *a = NULL, *b = NULL;
    aster_err err = {0};

    (void)state;
    db_url(url, sizeof(url), "pg_excl");
    assert_int_equal(aster_store_open(url, &excl, &a, &err), 0);
    assert_int_equal(aster_store_open(url, &excl, &b, &err), 0); /* many processes share it */
    assert_int_equal(aster_store_ping(a, &err), 0);
    assert_int_equal(aster_store_ping(b, &err), 0);
    aster_store_close(a);
    aster_store_close(b);
}

static void test_pg_unreachable(void **state)
{
    const aster_store_opts opts = {.exclusive = false, .migrate = true};
    char sql[160], db[64];
    aster_store *st = NULL;
    aster_err err = {0};
    aster_job j;

    (void)state;
    assert_int_equal(aster_store_open("postgres://aster@127.0.0.1:1/x", &opts, &st, &err),
                     ASTER_EUNAVAIL);
    assert_null(st);
    assert_string_equal(err.field, "store");
    assert_non_null(strstr(err.msg, "cannot reach PostgreSQL"));
    aster_err_clear(&err);

    /* The database refuses connections for a while: ping and calls say
     * ASTER_EUNAVAIL (readyz: 503), then recover by themselves. */
    st = open_db("pg_down");
    insert_job(st, "before", false, NULL);
    db_name(db, sizeof(db), "pg_down");
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS false", db);
    PQclear(maint_exec(sql));
    assert_true(terminate_backends("pg_down") >= 1);
    assert_int_equal(aster_store_ping(st, &err), ASTER_EUNAVAIL);
    assert_string_equal(err.field, "store");
    aster_err_clear(&err);
    aster_job_init(&j);
    assert_int_equal(aster_store_job_get(st, "before", &j, &err), ASTER_EUNAVAIL);
    aster_err_clear(&err);
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS true", db);
    PQclear(maint_exec(sql));
    assert_int_equal(aster_store_ping(st, &err), 0);
    assert_int_equal(aster_store_job_get(st, "before", &j, &err), 0);
    aster_job_fini(&j);
    aster_store_close(st);
}

struct held {
    aster_store *st;
    char job[ASTER_ID_LEN + 1];
};

static int terminate_in_batch(aster_store *st, void *p, aster_err *err)
{
    struct held *h = p;
    aster_job j;
    int rc;

    make_job(&j, "in-batch");
    rc = aster_store_job_insert(st, &j, err);
    aster_job_fini(&j);
    if (rc)
        return rc;
    terminate_backends("pg_reconnect");
    /* Not run again inside a batch: the batch fails, nothing of it stays. */
    rc = aster_store_job_set_next(st, h->job, 42, err);
    return rc;
}

static void test_pg_reconnect(void **state)
{
    aster_store *st = open_db("pg_reconnect");
    struct held h = {.st = st};
    aster_job j;
    aster_err err = {0};
    aster_exec *ex = NULL;
    size_t n = 0;

    (void)state;
    insert_job(st, "first", false, h.job);

    /* A read, a write (BEGIN .. COMMIT), an idempotent write and ping each
     * find the connection dropped, reconnect and succeed. */
    assert_true(terminate_backends("pg_reconnect") >= 1);
    aster_job_init(&j);
    assert_int_equal(aster_store_job_get(st, "first", &j, &err), 0);
    aster_job_fini(&j);
    terminate_backends("pg_reconnect");
    insert_job(st, "second", false, NULL);
    terminate_backends("pg_reconnect");
    assert_int_equal(aster_store_job_set_next(st, h.job, 7, &err), 0);
    terminate_backends("pg_reconnect");
    assert_int_equal(aster_store_ping(st, &err), 0);
    terminate_backends("pg_reconnect");
    assert_int_equal(aster_store_exec_claim(st, "w", 1, 2, 10, &ex, &n, &err), 0);
    assert_int_equal(n, 0);

    /* Several pooled connections, all dropped at once. */
    {
        aster_job_filter f = {.paused = -1, .limit = 10};
        aster_job *jobs = NULL;
        terminate_backends("pg_reconnect");
        for (int i = 0; i < 3; i++) {
            assert_int_equal(aster_store_job_list(st, &f, &jobs, &n, &err), 0);
            assert_int_equal(n, 2);
            aster_store_free_jobs(jobs, n);
        }
    }

    /* Inside a batch the loss is reported, and the next call works. */
    assert_int_equal(aster_store_batch(st, terminate_in_batch, &h, &err), ASTER_EUNAVAIL);
    assert_string_equal(err.field, "store");
    aster_err_clear(&err);
    assert_int_equal(aster_store_job_get(st, "in-batch", &j, &err), ASTER_ENOENT);
    aster_err_clear(&err);
    assert_int_equal(aster_store_job_get(st, h.job, &j, &err), 0);
    assert_int_equal(j.next_fire_at, 7);
    aster_job_fini(&j);
    aster_store_close(st);
}

/* Claimers on two handles (two pools, as two processes would have) and
 * several threads each drain one queue: every execution is claimed exactly
 * once (FOR UPDATE SKIP LOCKED). */
enum { CLAIM_EXECS = 3000, CLAIM_THREADS = 6, CLAIM_BATCH = 7 };

struct claimer {
    aster_store *st;
    char owner[16];
    char (*ids)[ASTER_ID_LEN + 1];
    size_t n;
    int error;
    char msg[256];
};

static void *claim_thread(void *p)
{
    struct claimer *c = p;

    c->ids = aster_calloc(CLAIM_EXECS, sizeof(*c->ids));
    for (;;) {
        aster_exec *ex = NULL;
        aster_err err = {0};
        size_t n = 0;
        if (aster_store_exec_claim(c->st, c->owner, 2000, 9000, CLAIM_BATCH, &ex, &n, &err)) {
            c->error = err.code;
            snprintf(c->msg, sizeof(c->msg), "%s", err.msg);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            if (strcmp(ex[i].claimed_by, c->owner) || ex[i].status != ASTER_EXEC_RUNNING)
                c->error = -100;
            memcpy(c->ids[c->n++], ex[i].id, ASTER_ID_LEN + 1);
        }
        aster_store_free_execs(ex, n);
        if (n == 0)
            return NULL;
    }
}

static int by_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_pg_concurrent_claim(void **state)
{
    aster_store *st[2] = {open_db("pg_claim"), open_db("pg_claim")};
    struct claimer c[CLAIM_THREADS];
    pthread_t t[CLAIM_THREADS];
    char job[ASTER_ID_LEN + 1], (*all)[ASTER_ID_LEN + 1];
    aster_exec *ex = aster_calloc(CLAIM_EXECS, sizeof(*ex));
    aster_err err = {0};
    size_t total = 0;
    int64_t depth = -1;

    (void)state;
    insert_job(st[0], "queue", false, job);
    for (int i = 0; i < CLAIM_EXECS; i++)
        make_exec(&ex[i], job, 1000 + i % 50, ASTER_TRIGGER_MANUAL);
    assert_int_equal(aster_store_exec_insert(st[0], ex, CLAIM_EXECS, NULL, &err), 0);
    aster_free(ex);
    assert_int_equal(aster_store_queue_depth(st[1], 2000, &depth, &err), 0);
    assert_int_equal(depth, CLAIM_EXECS);

    for (int i = 0; i < CLAIM_THREADS; i++) {
        c[i] = (struct claimer){.st = st[i % 2]};
        snprintf(c[i].owner, sizeof(c[i].owner), "w%d", i);
        pthread_create(&t[i], NULL, claim_thread, &c[i]);
    }
    for (int i = 0; i < CLAIM_THREADS; i++)
        pthread_join(t[i], NULL);
    all = aster_calloc(CLAIM_EXECS * 2, sizeof(*all));
    for (int i = 0; i < CLAIM_THREADS; i++) {
        if (c[i].error)
            fail_msg("claimer %d: %d %s", i, c[i].error, c[i].msg);
        assert_true(total + c[i].n <= CLAIM_EXECS);
        memcpy(all[total], c[i].ids, c[i].n * sizeof(*all));
        total += c[i].n;
        aster_free(c[i].ids);
    }
    assert_int_equal(total, CLAIM_EXECS);
    qsort(all, total, sizeof(*all), by_id);
    for (size_t i = 1; i < total; i++)
        if (!strcmp(all[i - 1], all[i]))
            fail_msg("execution %s claimed twice", all[i]);
    aster_free(all);
    assert_int_equal(aster_store_queue_depth(st[0], 2000, &depth, &err), 0);
    assert_int_equal(depth, 0);
    aster_store_close(st[0]);
    aster_store_close(st[1]);
}

/* A deadlock makes the server abort one side; outside a batch the store
 * rolls back and runs the call again, and the caller never sees it. */
struct deadlocked {
    aster_store *st;
    char a[ASTER_ID_LEN + 1], b[ASTER_ID_LEN + 1];
    int rc;
    char msg[256];
};

static void *insert_two(void *p)
{
    struct deadlocked *d = p;
    aster_exec ex[2];
    aster_err err = {0};

    /* The foreign keys lock job a's row, then wait for job b's. */
    make_exec(&ex[0], d->a, 1, ASTER_TRIGGER_SCHEDULE);
    make_exec(&ex[1], d->b, 1, ASTER_TRIGGER_SCHEDULE);
    d->rc = aster_store_exec_insert(d->st, ex, 2, NULL, &err);
    snprintf(d->msg, sizeof(d->msg), "%s", err.msg);
    return NULL;
}

static PGresult *must(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    return r;
}

static void test_pg_deadlock_retried(void **state)
{
    struct deadlocked d = {.st = open_db("pg_deadlock")};
    char url[512], sql[256], db[64];
    pthread_t t;
    PGconn *m;
    int waiting = 0;

    (void)state;
    insert_job(d.st, "a", false, d.a);
    insert_job(d.st, "b", false, d.b);
    db_url(url, sizeof(url), "pg_deadlock");
    db_name(db, sizeof(db), "pg_deadlock");
    m = PQconnectdb(url);
    assert_int_equal(PQstatus(m), CONNECTION_OK);
    PQclear(must(m, "BEGIN"));
    snprintf(sql, sizeof(sql), "DELETE FROM jobs WHERE id = '%s'", d.b);
    PQclear(must(m, sql));
    pthread_create(&t, NULL, insert_two, &d);
    /* Until the store's connection waits for job b's row lock. */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' "
             "AND wait_event_type = 'Lock'",
             db);
    for (int i = 0; i < 500 && !waiting; i++) {
        PGresult *r = maint_exec(sql);
        waiting = atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
        if (!waiting)
            usleep(10000);
    }
    assert_true(waiting);
    /* Now close the cycle.  The store waited first, so its deadlock check
     * (after deadlock_timeout) fires first and aborts its side: this
     * DELETE then goes through. */
    snprintf(sql, sizeof(sql), "DELETE FROM jobs WHERE id = '%s'", d.a);
    PQclear(must(m, sql));
    PQclear(must(m, "ROLLBACK"));
    PQfinish(m);
    pthread_join(t, NULL);
    if (d.rc)
        fail_msg("insert: %d %s", d.rc, d.msg);
    assert_int_equal(count_execs(d.st, d.a), 1);
    assert_int_equal(count_execs(d.st, d.b), 1);
    aster_store_close(d.st);
}

/* Processes starting together migrate the same empty database once. */
struct migrator {
    char url[512];
    int rc;
    char msg[256];
};

static void *migrate_thread(void *p)
{
    struct migrator *m = p;
    const aster_store_opts opts = {.exclusive = false, .migrate = true};
    aster_store *st = NULL;
    aster_err err = {0};

    m->rc = aster_store_open(m->url, &opts, &st, &err);
    snprintf(m->msg, sizeof(m->msg), "%s", err.msg);
    aster_store_close(st);
    return NULL;
}

static void test_pg_concurrent_migrate(void **state)
{
    struct migrator m[4];
    pthread_t t[4];
    aster_store *st;
    aster_err err = {0};
    int v = -1;

    (void)state;
    for (int i = 0; i < 4; i++) {
        db_url(m[i].url, sizeof(m[i].url), "pg_migrate");
        pthread_create(&t[i], NULL, migrate_thread, &m[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        if (m[i].rc)
            fail_msg("migrator %d: %s", i, m[i].msg);
    }
    st = open_db("pg_migrate");
    assert_int_equal(aster_store_schema_version(st, &v, &err), 0);
    assert_int_equal(v, aster_store_latest_version());
    aster_store_close(st);
    {
        /* Each version recorded once: a second migrator found it done. */
        char url[512];
        PGconn *c;
        PGresult *r;
        db_url(url, sizeof(url), "pg_migrate");
        c = PQconnectdb(url);
        r = PQexec(c, "SELECT count(*) FROM schema_migrations");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(atoi(PQgetvalue(r, 0, 0)), aster_store_latest_version());
        PQclear(r);
        PQfinish(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_CASES,
        cmocka_unit_test(test_pg_exclusive_ignored),
        cmocka_unit_test(test_pg_unreachable),
        cmocka_unit_test(test_pg_reconnect),
        cmocka_unit_test(test_pg_concurrent_claim),
        cmocka_unit_test(test_pg_deadlock_retried),
        cmocka_unit_test(test_pg_concurrent_migrate),
    };

    base_url = getenv("ASTER_TEST_PG_URL");
    if (!base_url || !*base_url) {
        printf("test_store_pg: skipped: ASTER_TEST_PG_URL not set "
               "(run it under scripts/pg-test.sh)\n");
        return 0;
    }
    return cmocka_run_group_tests(tests, backend_setup, backend_teardown);
}
