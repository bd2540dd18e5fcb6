/* test_store.c — the store interface against a real SQLite file, and,
 * included by test_store_pg.c, against a real PostgreSQL server.
 *
 * Every test opens its own database by name through the backend's hooks
 * below.  SQLite's live in one temporary directory made for this run
 * (under $ASTER_TEST_TMPDIR, else /tmp) and removed at the end.
 *
 * The backend under test: SQLite unless STORE_TEST_PG is defined, in which
 * case the includer defines, before including this file,
 *   BACKEND_NAME, BACKEND_CAPS   what aster_store_backend / _caps answer
 *   BACKEND_MAX_CHAR             the greatest character a name can hold
 *   db_url(buf, n, name)         the URL of store `name`, made on first use
 *   db_url_alt(buf, n, name)     the same store through another spelling
 *   db_exec(name, sql)           runs SQL on it behind the store's back
 *   backend_setup, backend_teardown   the group's fixtures
 * and runs STORE_CASES (listed at the end) plus its own cases. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#ifndef STORE_TEST_PG
#include <sqlite3.h>
#endif

#include "core/job.h"
#include "store/store.h"
#include "util/mem.h"
#include "util/uuid.h"

/* ---- fixtures ---------------------------------------------------------------- */

#ifndef STORE_TEST_PG
#define BACKEND_NAME     "sqlite"
#define BACKEND_CAPS     0u
#define BACKEND_MAX_CHAR "\xff" /* SQLite compares and keeps any bytes */

/* Short enough that every path built from it fits in PATH_MAX. */
static char tmpdir[512];

static int make_tmpdir(void **state)
{
    const char *base = getenv("ASTER_TEST_TMPDIR");

    (void)state;
    if (!base || !*base)
        base = "/tmp";
    if (mkdir(base, 0755) != 0 && errno != EEXIST)
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_store.XXXXXX", base);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int remove_tmpdir(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void db_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s.db", tmpdir, name);
}

static void db_url(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "sqlite:%s/%s.db", tmpdir, name);
}

static void db_url_alt(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "sqlite://%s/%s.db", tmpdir, name);
}

static void db_exec(const char *name, const char *sql)
{
    char path[PATH_MAX];
    sqlite3 *db = NULL;

    db_path(path, sizeof(path), name);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
}

static int backend_setup(void **state)
{
    return make_tmpdir(state);
}

static int backend_teardown(void **state)
{
    return remove_tmpdir(state);
}
#endif /* !STORE_TEST_PG */

static aster_store *open_db(const char *name)
{
    const aster_store_opts opts = {.exclusive = false, .migrate = true};
    aster_store *st = NULL;
    aster_err err = {0};
    char url[PATH_MAX + 16];

    db_url(url, sizeof(url), name);
    int rc = aster_store_open(url, &opts, &st, &err);
    if (rc)
        fail_msg("open %s: %s", url, err.msg);
    return st;
}

static void make_job(aster_job *j, const char *name)
{
    aster_job_init(j);
    aster_uuid7(j->id);
    j->name = aster_strdup(name);
    j->schedule = aster_strdup("*/5 * * * *");
    j->timezone = aster_strdup("Europe/Berlin");
    j->target = aster_strdup("{\"url\":\"http://127.0.0.1:9/\",\"method\":\"POST\"}");
    j->max_retries = 3;
    j->retry_backoff_ms = 1000;
    j->retry_backoff_max_ms = 60000;
    j->timeout_ms = 30000;
    j->created_at = j->updated_at = aster_time_now();
    j->version = 1;
}

static void insert_job(aster_store *st, const char *name, bool paused, char id[ASTER_ID_LEN + 1])
{
    aster_job j;
    aster_err err = {0};

    make_job(&j, name);
    j.paused = paused;
    if (aster_store_job_insert(st, &j, &err))
        fail_msg("insert %s: %s", name, err.msg);
    if (id)
        memcpy(id, j.id, ASTER_ID_LEN + 1);
    aster_job_fini(&j);
}

static void make_exec(aster_exec *e, const char *job_id, aster_time_us at, aster_trigger trig)
{
    aster_exec_init(e);
    aster_uuid7(e->id);
    snprintf(e->job_id, sizeof(e->job_id), "%s", job_id);
    e->scheduled_at = at;
    e->trigger = trig;
    e->not_before = at;
    e->created_at = aster_time_now();
}

static void make_alert(aster_alert *a, const char *job_id, const char *exec_id, const char *kind,
                       aster_time_us at)
{
    aster_alert_init(a);
    aster_uuid7(a->id);
    snprintf(a->job_id, sizeof(a->job_id), "%s", job_id);
    snprintf(a->execution_id, sizeof(a->execution_id), "%s", exec_id ? exec_id : "");
    a->kind = aster_strdup(kind);
    a->message = aster_strdup("job failed: connection refused");
    a->delivery_state = aster_strdup("pending");
    a->created_at = at;
}

static size_t count_execs(aster_store *st, const char *job_id)
{
    aster_exec_filter f = {.job_id = job_id, .status = -1, .limit = ASTER_STORE_MAX_PAGE};
    aster_exec *ex = NULL;
    aster_err err = {0};
    size_t n = 0;

    assert_int_equal(aster_store_exec_list(st, &f, &ex, &n, &err), 0);
    aster_store_free_execs(ex, n);
    return n;
}

static void assert_str_eq_null(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_job_eq(const aster_job *a, const aster_job *b)
{
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->schedule, b->schedule);
    assert_string_equal(a->timezone, b->timezone);
    assert_int_equal(a->delivery, b->delivery);
    assert_int_equal(a->target_kind, b->target_kind);
    assert_string_equal(a->target, b->target);
    assert_int_equal(a->max_retries, b->max_retries);
    assert_int_equal(a->retry_backoff_ms, b->retry_backoff_ms);
    assert_int_equal(a->retry_backoff_max_ms, b->retry_backoff_max_ms);
    assert_int_equal(a->timeout_ms, b->timeout_ms);
    assert_int_equal(a->overlap, b->overlap);
    assert_int_equal(a->misfire, b->misfire);
    assert_int_equal(a->misfire_grace_ms, b->misfire_grace_ms);
    assert_int_equal(a->dst_gap, b->dst_gap);
    assert_int_equal(a->dst_overlap, b->dst_overlap);
    assert_int_equal(a->paused, b->paused);
    assert_str_eq_null(a->alert_webhook, b->alert_webhook);
    assert_int_equal(a->alert_after_failures, b->alert_after_failures);
    assert_int_equal(a->alert_if_no_success_ms, b->alert_if_no_success_ms);
    assert_int_equal(a->next_fire_at, b->next_fire_at);
    assert_int_equal(a->created_at, b->created_at);
    assert_int_equal(a->updated_at, b->updated_at);
    assert_int_equal(a->version, b->version);
}

static void assert_exec_eq(const aster_exec *a, const aster_exec *b)
{
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->job_id, b->job_id);
    assert_int_equal(a->scheduled_at, b->scheduled_at);
    assert_int_equal(a->trigger, b->trigger);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->attempt, b->attempt);
    assert_int_equal(a->not_before, b->not_before);
    assert_str_eq_null(a->claimed_by, b->claimed_by);
    assert_int_equal(a->lease_until, b->lease_until);
    assert_int_equal(a->started_at, b->started_at);
    assert_int_equal(a->finished_at, b->finished_at);
    assert_int_equal(a->duration_ms, b->duration_ms);
    assert_int_equal(a->drift_ms, b->drift_ms);
    assert_int_equal(a->http_status, b->http_status);
    assert_int_equal(a->exit_code, b->exit_code);
    assert_str_eq_null(a->error, b->error);
    assert_str_eq_null(a->output, b->output);
    assert_int_equal(a->created_at, b->created_at);
}

/* ---- open, URLs, migrations, locks ------------------------------------------------ */

#ifndef STORE_TEST_PG
static void test_bad_urls(void **state)
{
    char missing[PATH_MAX + 32];
    const struct {
        const char *url;
        int code;
    } bad[] = {
        {"mysql://x", ASTER_EINVAL},
        {"sqlite:", ASTER_EINVAL},
        {"sqlite://", ASTER_EINVAL},
        {"", ASTER_EINVAL},
        {NULL, ASTER_EINVAL},
        {"sqlite::memory:", ASTER_EINVAL},
        {"postgres://aster@[::1/aster", ASTER_EINVAL},
        {"postgresql://aster@localhost/aster?no_such_option=1", ASTER_EINVAL},
        /* Nothing listens on port 1: unreachable, not malformed. */
        {"postgresql://aster@127.0.0.1:1/aster", ASTER_EUNAVAIL},
        {missing, ASTER_EIO},
    };

    (void)state;
    snprintf(missing, sizeof(missing), "sqlite:%s/no/such/dir/a.db", tmpdir);
    for (size_t i = 0; i < ASTER_NELEM(bad); i++) {
        for (int excl = 0; excl < 2; excl++) {
            const aster_store_opts opts = {.exclusive = excl, .migrate = true};
            aster_store *const untouched = (aster_store *)&opts, *st = untouched;
            aster_err err = {0};
            int rc = aster_store_open(bad[i].url, &opts, &st, &err);
            if (rc != bad[i].code)
                fail_msg("%s: got %d (%s), want %d", bad[i].url ? bad[i].url : "(null)", rc,
                         err.msg, bad[i].code);
            assert_int_equal(err.code, bad[i].code);
            assert_string_equal(err.field, "store");
            assert_true(err.msg[0] != '\0');
            assert_ptr_equal(st, untouched);
        }
    }
    {
        aster_store *st = NULL;
        aster_err err = {0};
        assert_int_equal(aster_store_open("postgres://h/db?bogus=1", NULL, &st, &err),
                         ASTER_EINVAL);
        assert_non_null(strstr(err.msg, "bogus"));
    }
}
#endif

static void test_open_migrate_reopen(void **state)
{
    const aster_store_opts plain = {.exclusive = false, .migrate = false};
    char url[PATH_MAX + 16], url2[PATH_MAX + 16];
    aster_store *st = NULL;
    aster_err err = {0};
    int v = -1, from = -1, to = -1;

    (void)state;
    assert_true(aster_store_latest_version() >= 1);
    db_url(url, sizeof(url), "migrate");

    /* Not migrated: version 0, and ping says why it is not ready. */
    assert_int_equal(aster_store_open(url, &plain, &st, &err), 0);
    assert_string_equal(aster_store_backend(st), BACKEND_NAME);
    assert_int_equal(aster_store_caps(st), BACKEND_CAPS);
    assert_int_equal(aster_store_schema_version(st, &v, &err), 0);
    assert_int_equal(v, 0);
    assert_int_equal(aster_store_ping(st, &err), ASTER_EUNAVAIL);
    aster_err_clear(&err);
    assert_int_equal(aster_store_migrate(st, &from, &to, &err), 0);
    assert_int_equal(from, 0);
    assert_int_equal(to, aster_store_latest_version());
    /* Again: a no-op. */
    assert_int_equal(aster_store_migrate(st, &from, &to, &err), 0);
    assert_int_equal(from, aster_store_latest_version());
    assert_int_equal(to, aster_store_latest_version());
    assert_int_equal(aster_store_ping(st, &err), 0);
    aster_store_close(st);

    /* Reopen with migrate, and through another spelling of the URL. */
    db_url_alt(url2, sizeof(url2), "migrate");
    st = open_db("migrate");
    assert_int_equal(aster_store_schema_version(st, &v, &err), 0);
    assert_int_equal(v, aster_store_latest_version());
    aster_store_close(st);
    st = NULL;
    assert_int_equal(aster_store_open(url2, &plain, &st, &err), 0);
    assert_int_equal(aster_store_schema_version(st, &v, &err), 0);
    assert_int_equal(v, aster_store_latest_version());
    assert_int_equal(aster_store_ping(st, &err), 0);
    aster_store_close(st);
    aster_store_close(NULL);
}

static void test_newer_schema_refused(void **state)
{
    char url[PATH_MAX + 16], sql[128], want[64];
    aster_store *st = open_db("newer");
    aster_err err = {0};

    (void)state;
    aster_store_close(st);
    snprintf(sql, sizeof(sql), "INSERT INTO schema_migrations VALUES (%d, 'future')",
             aster_store_latest_version() + 1);
    db_exec("newer", sql);

    for (int migrate = 0; migrate < 2; migrate++) {
        const aster_store_opts opts = {.exclusive = false, .migrate = migrate};
        st = NULL;
        aster_err_clear(&err);
        db_url(url, sizeof(url), "newer");
        assert_int_equal(aster_store_open(url, &opts, &st, &err), ASTER_EINVAL);
        assert_null(st);
        assert_string_equal(err.field, "store");
        snprintf(want, sizeof(want), "schema version %d is newer than this aster (%d)",
                 aster_store_latest_version() + 1, aster_store_latest_version());
        assert_non_null(strstr(err.msg, want));
    }
}

#ifndef STORE_TEST_PG
static void test_exclusive_lock(void **state)
{
    const aster_store_opts excl = {.exclusive = true, .migrate = true};
    char url[PATH_MAX + 16], want[64];
    aster_store *a = NULL, *b = NULL;
    aster_err err = {0};

    (void)state;
    db_url(url, sizeof(url), "exclusive");
    assert_int_equal(aster_store_open(url, &excl, &a, &err), 0);
    assert_int_equal(aster_store_open(url, &excl, &b, &err), ASTER_EBUSY);
    assert_null(b);
    assert_string_equal(err.field, "store");
    assert_non_null(strstr(err.msg, "is in use by another aster process"));
    snprintf(want, sizeof(want), "(pid %ld)", (long)getpid());
    assert_non_null(strstr(err.msg, want));
    aster_store_close(a);

    /* Released on close. */
    aster_err_clear(&err);
    assert_int_equal(aster_store_open(url, &excl, &b, &err), 0);
    aster_store_close(b);
}

static void test_ping_notices_replaced_file(void **state)
{
    char path[PATH_MAX];
    aster_store *st = open_db("replaced");
    aster_err err = {0};

    (void)state;
    assert_int_equal(aster_store_ping(st, &err), 0);
    db_path(path, sizeof(path), "replaced");
    assert_int_equal(unlink(path), 0);
    assert_int_equal(aster_store_ping(st, &err), ASTER_EUNAVAIL);
    assert_string_equal(err.field, "store");
    aster_store_close(st);
}
#endif

/* ---- jobs -------------------------------------------------------------------------- */

static void test_job_crud(void **state)
{
    aster_store *st = open_db("jobs");
    aster_job j, got, other;
    aster_err err = {0};

    (void)state;
    make_job(&j, "backup");
    j.delivery = ASTER_DELIVERY_ATMOST_ONCE;
    j.target_kind = ASTER_TARGET_COMMAND;
    j.overlap = ASTER_OVERLAP_REPLACE;
    j.misfire = ASTER_MISFIRE_RUN_ALL;
    j.misfire_grace_ms = 5000;
    j.dst_gap = 1;
    j.dst_overlap = 2;
    j.paused = true;
    j.alert_webhook = aster_strdup("https://hooks.example/x");
    j.alert_after_failures = 3;
    j.alert_if_no_success_ms = 3600000;
    j.next_fire_at = j.created_at + 5 * ASTER_US_PER_SEC;
    assert_int_equal(aster_store_job_insert(st, &j, &err), 0);

    /* By id and by name. */
    aster_job_init(&got);
    assert_int_equal(aster_store_job_get(st, j.id, &got, &err), 0);
    assert_job_eq(&got, &j);
    aster_job_fini(&got);
    assert_int_equal(aster_store_job_get(st, "backup", &got, &err), 0);
    assert_job_eq(&got, &j);
    aster_job_fini(&got);
    assert_int_equal(aster_store_job_get(st, "nope", &got, &err), ASTER_ENOENT);
    aster_err_clear(&err);

    /* Duplicate name, duplicate id. */
    make_job(&other, "backup");
    assert_int_equal(aster_store_job_insert(st, &other, &err), ASTER_EEXIST);
    assert_string_equal(err.field, "name");
    assert_string_equal(err.msg, "a job named 'backup' already exists");
    aster_err_clear(&err);
    aster_free(other.name);
    other.name = aster_strdup("other");
    memcpy(other.id, j.id, sizeof(j.id));
    assert_int_equal(aster_store_job_insert(st, &other, &err), ASTER_EEXIST);
    assert_string_equal(err.field, "id");
    aster_err_clear(&err);
    aster_uuid7(other.id);
    assert_int_equal(aster_store_job_insert(st, &other, &err), 0);

    /* Bad input is named. */
    {
        aster_job bad;
        make_job(&bad, "x");
        aster_free(bad.schedule);
        bad.schedule = NULL;
        assert_int_equal(aster_store_job_insert(st, &bad, &err), ASTER_EINVAL);
        assert_string_equal(err.field, "schedule");
        aster_err_clear(&err);
        bad.schedule = aster_strdup("* * * * *");
        bad.overlap = (aster_overlap)7;
        assert_int_equal(aster_store_job_insert(st, &bad, &err), ASTER_EINVAL);
        assert_string_equal(err.field, "overlap");
        aster_err_clear(&err);
        aster_job_fini(&bad);
    }

    /* Update: optimistic concurrency, NULL webhook, 0 next fire. */
    aster_free(j.alert_webhook);
    j.alert_webhook = NULL;
    j.next_fire_at = 0;
    j.paused = false;
    j.version = 2;
    assert_int_equal(aster_store_job_update(st, &j, 5, &err), ASTER_ECONFLICT);
    aster_err_clear(&err);
    assert_int_equal(aster_store_job_update(st, &j, 1, &err), 0);
    assert_int_equal(aster_store_job_update(st, &j, 1, &err), ASTER_ECONFLICT);
    aster_err_clear(&err);
    assert_int_equal(aster_store_job_get(st, j.id, &got, &err), 0);
    assert_job_eq(&got, &j);
    assert_null(got.alert_webhook);
    aster_job_fini(&got);
    j.version = 3;
    assert_int_equal(aster_store_job_update(st, &j, 0, &err), 0); /* unconditional */

    aster_free(j.name);
    j.name = aster_strdup("other");
    assert_int_equal(aster_store_job_update(st, &j, 0, &err), ASTER_EEXIST);
    assert_string_equal(err.field, "name");
    aster_err_clear(&err);
    {
        aster_job ghost;
        make_job(&ghost, "ghost");
        assert_int_equal(aster_store_job_update(st, &ghost, 0, &err), ASTER_ENOENT);
        aster_err_clear(&err);
        aster_job_fini(&ghost);
    }

    /* Count. */
    {
        int64_t active = -1, paused = -1;
        assert_int_equal(aster_store_job_count(st, &active, &paused, &err), 0);
        assert_int_equal(active, 2);
        assert_int_equal(paused, 0);
    }

    /* Delete cascades to executions and alerts. */
    {
        aster_exec ex[3];
        aster_alert al;
        aster_alert_filter af = {.job_id = j.id, .limit = 10};
        aster_alert *alerts = NULL;
        size_t n = 99;
        for (int i = 0; i < 3; i++)
            make_exec(&ex[i], j.id, 1000 + i, ASTER_TRIGGER_SCHEDULE);
        assert_int_equal(aster_store_exec_insert(st, ex, 3, NULL, &err), 0);
        make_alert(&al, j.id, ex[0].id, "failed", 1);
        assert_int_equal(aster_store_alert_insert(st, &al, &err), 0);
        aster_alert_fini(&al);
        make_alert(&al, j.id, NULL, "consecutive_failures", 2);
        assert_int_equal(aster_store_alert_insert(st, &al, &err), 0);
        aster_alert_fini(&al);
        assert_int_equal(count_execs(st, j.id), 3);

        assert_int_equal(aster_store_job_delete(st, j.id, &err), 0);
        assert_int_equal(aster_store_job_get(st, j.id, &got, &err), ASTER_ENOENT);
        aster_err_clear(&err);
        assert_int_equal(aster_store_exec_get(st, ex[0].id, &ex[1], &err), ASTER_ENOENT);
        aster_err_clear(&err);
        assert_int_equal(count_execs(st, j.id), 0);
        assert_int_equal(aster_store_alert_list(st, &af, &alerts, &n, &err), 0);
        assert_int_equal(n, 0);
        aster_store_free_alerts(alerts, n);
        assert_int_equal(aster_store_job_delete(st, j.id, &err), ASTER_ENOENT);
        assert_string_equal(err.field, "id");
        aster_err_clear(&err);
    }
    aster_job_fini(&j);
    aster_job_fini(&other);
    aster_store_close(st);
}

static void expect_names(aster_store *st, const aster_job_filter *f, const char *const *want,
                         size_t nwant)
{
    aster_job *jobs = NULL;
    aster_err err = {0};
    size_t n = 0;

    if (aster_store_job_list(st, f, &jobs, &n, &err))
        fail_msg("list: %s", err.msg);
    if (n != nwant)
        fail_msg("prefix '%s': %zu jobs, want %zu", f->name_prefix ? f->name_prefix : "", n, nwant);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(jobs[i].name, want[i]);
    aster_store_free_jobs(jobs, n);
}

static void test_job_list(void **state)
{
    aster_store *st = open_db("joblist");
    static const char *const names[] = {
        "a_b", "axb", "a%c", "abc", "a", "b", "a_", "z" BACKEND_MAX_CHAR BACKEND_MAX_CHAR "a", "z"};
    aster_job_filter f = {.paused = -1, .limit = 100};
    aster_err err = {0};

    (void)state;
    for (size_t i = 0; i < ASTER_NELEM(names); i++)
        insert_job(st, names[i], i % 3 == 0, NULL);

    expect_names(st, &f, names, ASTER_NELEM(names)); /* id order = creation order */
    f.name_prefix = "a_";
    expect_names(st, &f, (const char *const[]){"a_b", "a_"}, 2);
    f.name_prefix = "a%";
    expect_names(st, &f, (const char *const[]){"a%c"}, 1);
    f.name_prefix = "a";
    expect_names(st, &f, (const char *const[]){"a_b", "axb", "a%c", "abc", "a", "a_"}, 6);
    f.name_prefix = "z" BACKEND_MAX_CHAR;
    expect_names(st, &f, (const char *const[]){"z" BACKEND_MAX_CHAR BACKEND_MAX_CHAR "a"}, 1);
    f.name_prefix = "";
    expect_names(st, &f, names, ASTER_NELEM(names));
    f.name_prefix = "nothing";
    expect_names(st, &f, NULL, 0);

    /* A long prefix is matched in full. */
    {
        char longb[702], longc[702];
        memset(longb, 'p', 700);
        memcpy(longc, longb, 700);
        strcpy(longb + 700, "b");
        strcpy(longc + 700, "c");
        insert_job(st, longc, false, NULL);
        f.name_prefix = longb;
        expect_names(st, &f, NULL, 0);
        f.name_prefix = longc;
        expect_names(st, &f, (const char *const[]){longc}, 1);
        char id[ASTER_ID_LEN + 1];
        aster_job j;
        aster_job_init(&j);
        assert_int_equal(aster_store_job_get(st, longc, &j, &err), 0);
        memcpy(id, j.id, sizeof(id));
        aster_job_fini(&j);
        assert_int_equal(aster_store_job_delete(st, id, &err), 0);
    }

    /* paused: indexes 0, 3, 6 */
    f.name_prefix = NULL;
    f.paused = 1;
    expect_names(st, &f, (const char *const[]){"a_b", "abc", "a_"}, 3);
    f.paused = 0;
    f.name_prefix = "a";
    expect_names(st, &f, (const char *const[]){"axb", "a%c", "a"}, 3);

    /* Pages of 2 cover everything once, in order. */
    {
        aster_job_filter pf = {.paused = -1, .limit = 2};
        char cursor[ASTER_ID_LEN + 1] = "";
        size_t seen = 0, pages = 0;
        for (;;) {
            aster_job *jobs = NULL;
            size_t n = 0;
            pf.after_id = cursor[0] ? cursor : NULL;
            assert_int_equal(aster_store_job_list(st, &pf, &jobs, &n, &err), 0);
            assert_true(n <= 2);
            for (size_t i = 0; i < n; i++)
                assert_string_equal(jobs[i].name, names[seen + i]);
            seen += n;
            if (n)
                memcpy(cursor, jobs[n - 1].id, sizeof(cursor));
            aster_store_free_jobs(jobs, n);
            if (n < 2)
                break;
            pages++;
        }
        assert_int_equal(seen, ASTER_NELEM(names));
        assert_int_equal(pages, ASTER_NELEM(names) / 2);
    }

    /* Limits. */
    {
        aster_job *jobs = (aster_job *)&f;
        size_t n = 7;
        f.limit = 0;
        assert_int_equal(aster_store_job_list(st, &f, &jobs, &n, &err), ASTER_EINVAL);
        assert_string_equal(err.field, "limit");
        assert_null(jobs);
        assert_int_equal(n, 0);
        aster_err_clear(&err);
        f.limit = ASTER_STORE_MAX_PAGE + 1;
        assert_int_equal(aster_store_job_list(st, &f, &jobs, &n, &err), ASTER_EINVAL);
        aster_err_clear(&err);
        f.limit = 1;
        f.paused = -1;
        f.name_prefix = NULL;
        assert_int_equal(aster_store_job_list(st, &f, &jobs, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_string_equal(jobs[0].name, names[0]);
        aster_store_free_jobs(jobs, n);
    }
    aster_store_close(st);
}

/* ---- executions ------------------------------------------------------------------- */

static void test_exec_insert_batch(void **state)
{
    enum { N = 1000 };
    aster_store *st = open_db("execs");
    aster_exec *ex = aster_calloc(N, sizeof(*ex));
    char job[ASTER_ID_LEN + 1], ghost[ASTER_ID_LEN + 1];
    aster_err err = {0};
    bool *written = aster_calloc(N, sizeof(*written));
    size_t want = 0;

    (void)state;
    insert_job(st, "fires", false, job);
    /* Every 10th repeats the previous fire's instant: skipped.  Every 25th
     * is a manual trigger at a fire's instant: kept. */
    for (int i = 0; i < N; i++) {
        aster_time_us at = 1000000 * (aster_time_us)(i - (i % 10 == 9));
        aster_trigger trig = i % 25 == 24
                                 ? ASTER_TRIGGER_MANUAL
                                 : (i % 2 ? ASTER_TRIGGER_CATCHUP : ASTER_TRIGGER_SCHEDULE);
        make_exec(&ex[i], job, at, trig);
        if (i % 10 != 9 || trig == ASTER_TRIGGER_MANUAL)
            want++;
    }
    assert_int_equal(aster_store_exec_insert(st, ex, N, written, &err), 0);
    for (int i = 0; i < N; i++) /* each row says whether it was written */
        assert_int_equal(written[i], i % 10 != 9 || ex[i].trigger == ASTER_TRIGGER_MANUAL);
    assert_int_equal(count_execs(st, job), want);

    /* Again: every fire exists; only fresh manual ids would be new. */
    for (int i = 0; i < N; i++)
        aster_uuid7(ex[i].id);
    for (int i = 0; i < N; i++)
        want += ex[i].trigger == ASTER_TRIGGER_MANUAL;
    assert_int_equal(aster_store_exec_insert(st, ex, N, written, &err), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(written[i], ex[i].trigger == ASTER_TRIGGER_MANUAL);
    assert_int_equal(count_execs(st, job), want);

    /* A duplicate id is an error, not a skip. */
    assert_int_equal(aster_store_exec_insert(st, &ex[24], 1, written, &err), ASTER_EEXIST);
    assert_false(written[0]);
    assert_string_equal(err.field, "id");
    aster_err_clear(&err);

    /* A missing job fails the call and keeps nothing of it. */
    {
        aster_exec three[3];
        size_t before = count_execs(st, job);
        aster_uuid7(ghost);
        make_exec(&three[0], job, 5000000000, ASTER_TRIGGER_SCHEDULE);
        make_exec(&three[1], ghost, 5000000000, ASTER_TRIGGER_SCHEDULE);
        make_exec(&three[2], job, 5000000001, ASTER_TRIGGER_SCHEDULE);
        written[0] = written[1] = written[2] = true;
        assert_int_equal(aster_store_exec_insert(st, three, 3, written, &err), ASTER_ENOENT);
        assert_string_equal(err.field, "job_id");
        assert_false(written[0] || written[1] || written[2]); /* rolled back */
        aster_err_clear(&err);
        assert_int_equal(count_execs(st, job), before);
        assert_int_equal(aster_store_exec_get(st, three[0].id, &three[1], &err), ASTER_ENOENT);
        aster_err_clear(&err);
    }
    assert_int_equal(aster_store_exec_insert(st, NULL, 0, written, &err), 0);
    aster_free(written);
    aster_free(ex);
    aster_store_close(st);
}

static void test_exec_roundtrip(void **state)
{
    aster_store *st = open_db("exec_rt");
    char job[ASTER_ID_LEN + 1];
    aster_exec e, got;
    aster_err err = {0};

    (void)state;
    insert_job(st, "rt", false, job);
    make_exec(&e, job, 1700000000000000, ASTER_TRIGGER_MANUAL);
    assert_int_equal(aster_store_exec_insert(st, &e, 1, NULL, &err), 0);
    aster_exec_init(&got);
    assert_int_equal(aster_store_exec_get(st, e.id, &got, &err), 0);
    assert_exec_eq(&got, &e); /* fresh: NULL strings, -1 numbers, 0 times */
    assert_null(got.claimed_by);
    assert_int_equal(got.http_status, -1);
    aster_exec_fini(&got);

    e.status = ASTER_EXEC_TIMED_OUT;
    e.attempt = 3;
    e.not_before = 1700000000000001;
    e.claimed_by = aster_strdup("worker-1");
    e.lease_until = 1700000000000002;
    e.started_at = 1700000000000003;
    e.finished_at = 1700000000000004;
    e.duration_ms = 0;
    e.drift_ms = 12;
    e.http_status = 504;
    e.exit_code = 0;
    e.error = aster_strdup("");
    e.output = aster_strdup("line 1\nline 2 \xe2\x9c\x93");
    assert_int_equal(aster_store_exec_update(st, &e, &err), 0);
    assert_int_equal(aster_store_exec_get(st, e.id, &got, &err), 0);
    assert_exec_eq(&got, &e);
    assert_non_null(got.error); /* "" is not NULL */
    aster_exec_fini(&got);

    /* And back to absent. */
    aster_free(e.claimed_by);
    aster_free(e.error);
    e.claimed_by = e.error = NULL;
    e.lease_until = e.started_at = e.finished_at = 0;
    e.duration_ms = e.drift_ms = -1;
    e.http_status = e.exit_code = -1;
    e.status = ASTER_EXEC_PENDING;
    assert_int_equal(aster_store_exec_update(st, &e, &err), 0);
    assert_int_equal(aster_store_exec_get(st, e.id, &got, &err), 0);
    assert_exec_eq(&got, &e);
    aster_exec_fini(&got);

    {
        aster_exec ghost;
        make_exec(&ghost, job, 1, ASTER_TRIGGER_SCHEDULE);
        assert_int_equal(aster_store_exec_update(st, &ghost, &err), ASTER_ENOENT);
        aster_err_clear(&err);
        ghost.status = ASTER_EXEC_STATUS_COUNT;
        assert_int_equal(aster_store_exec_update(st, &ghost, &err), ASTER_EINVAL);
        assert_string_equal(err.field, "status");
        aster_err_clear(&err);
        assert_int_equal(aster_store_exec_get(st, "not-an-id", &got, &err), ASTER_ENOENT);
        aster_err_clear(&err);
    }
    aster_exec_fini(&e);
    aster_store_close(st);
}

static void test_exec_list(void **state)
{
    aster_store *st = open_db("exec_list");
    char a[ASTER_ID_LEN + 1], b[ASTER_ID_LEN + 1];
    char ids[15][ASTER_ID_LEN + 1];
    aster_exec ex[15], *out = NULL;
    aster_err err = {0};
    size_t n = 0;

    (void)state;
    insert_job(st, "a", false, a);
    insert_job(st, "b", false, b);
    for (int i = 0; i < 15; i++) {
        make_exec(&ex[i], i < 10 ? a : b, 1000 * (aster_time_us)i, ASTER_TRIGGER_SCHEDULE);
        ex[i].status = i % 3 == 0 ? ASTER_EXEC_SUCCEEDED : ASTER_EXEC_FAILED;
        memcpy(ids[i], ex[i].id, sizeof(ids[i]));
    }
    assert_int_equal(aster_store_exec_insert(st, ex, 15, NULL, &err), 0);

    {
        aster_exec_filter f = {.status = -1, .limit = 100};
        assert_int_equal(aster_store_exec_list(st, &f, &out, &n, &err), 0);
        assert_int_equal(n, 15);
        for (size_t i = 0; i < n; i++)
            assert_string_equal(out[i].id, ids[14 - i]); /* newest first */
        aster_store_free_execs(out, n);
    }
    {
        aster_exec_filter f = {.job_id = a, .status = ASTER_EXEC_SUCCEEDED, .limit = 100};
        assert_int_equal(aster_store_exec_list(st, &f, &out, &n, &err), 0);
        assert_int_equal(n, 4); /* 9, 6, 3, 0 */
        assert_string_equal(out[0].id, ids[9]);
        assert_string_equal(out[3].id, ids[0]);
        aster_store_free_execs(out, n);
    }
    {
        aster_exec_filter f = {.job_id = b, .status = -1, .since = 12000, .limit = 100};
        assert_int_equal(aster_store_exec_list(st, &f, &out, &n, &err), 0);
        assert_int_equal(n, 3); /* 14, 13, 12 */
        assert_string_equal(out[2].id, ids[12]);
        aster_store_free_execs(out, n);
    }
    {
        /* Pages of 4 with the before_id cursor. */
        aster_exec_filter f = {.job_id = a, .status = -1, .limit = 4};
        char cursor[ASTER_ID_LEN + 1] = "";
        size_t seen = 0;
        do {
            f.before_id = cursor[0] ? cursor : NULL;
            assert_int_equal(aster_store_exec_list(st, &f, &out, &n, &err), 0);
            for (size_t i = 0; i < n; i++)
                assert_string_equal(out[i].id, ids[9 - seen - i]);
            seen += n;
            if (n)
                memcpy(cursor, out[n - 1].id, sizeof(cursor));
            aster_store_free_execs(out, n);
        } while (n == 4);
        assert_int_equal(seen, 10);
    }
    {
        aster_exec_filter f = {.status = 42, .limit = 10};
        assert_int_equal(aster_store_exec_list(st, &f, &out, &n, &err), ASTER_EINVAL);
        assert_string_equal(err.field, "status");
        aster_err_clear(&err);
    }
    aster_store_close(st);
}

/* ---- the engine's operations ----------------------------------------------------------- */

static void test_job_set_next(void **state)
{
    aster_store *st = open_db("set_next");
    char id[ASTER_ID_LEN + 1], ghost[ASTER_ID_LEN + 1];
    aster_job j;
    aster_err err = {0};

    (void)state;
    insert_job(st, "n", false, id);
    assert_int_equal(aster_store_job_set_next(st, id, 123456789, &err), 0);
    aster_job_init(&j);
    assert_int_equal(aster_store_job_get(st, id, &j, &err), 0);
    assert_int_equal(j.next_fire_at, 123456789);
    assert_int_equal(j.version, 1); /* a user's update must not conflict */
    aster_job_fini(&j);
    assert_int_equal(aster_store_job_set_next(st, id, 0, &err), 0);
    assert_int_equal(aster_store_job_get(st, id, &j, &err), 0);
    assert_int_equal(j.next_fire_at, 0);
    aster_job_fini(&j);
    aster_uuid7(ghost);
    assert_int_equal(aster_store_job_set_next(st, ghost, 1, &err), ASTER_ENOENT);
    aster_store_close(st);
}

static void test_claim_extend_reclaim(void **state)
{
    aster_store *st = open_db("claim");
    char least[ASTER_ID_LEN + 1], most[ASTER_ID_LEN + 1];
    const aster_time_us now = 1000 * ASTER_US_PER_SEC;
    aster_exec ex[5], *got = NULL, one;
    aster_err err = {0};
    aster_time_us due = -1;
    size_t n = 0, retried = 9, failed = 9;

    (void)state;
    insert_job(st, "least", false, least);
    {
        aster_job j;
        make_job(&j, "most");
        j.delivery = ASTER_DELIVERY_ATMOST_ONCE;
        assert_int_equal(aster_store_job_insert(st, &j, &err), 0);
        memcpy(most, j.id, sizeof(most));
        aster_job_fini(&j);
    }
    assert_int_equal(aster_store_exec_next_due(st, &due, &err), 0);
    assert_int_equal(due, 0); /* nothing pending */

    /* Due: ex[2] (oldest), ex[0], ex[1]; not yet: ex[3]; not pending: ex[4]. */
    make_exec(&ex[0], least, now - 2 * ASTER_US_PER_SEC, ASTER_TRIGGER_SCHEDULE);
    make_exec(&ex[1], most, now - 1 * ASTER_US_PER_SEC, ASTER_TRIGGER_SCHEDULE);
    make_exec(&ex[2], most, now - 3 * ASTER_US_PER_SEC, ASTER_TRIGGER_SCHEDULE);
    make_exec(&ex[3], least, now + 5 * ASTER_US_PER_SEC, ASTER_TRIGGER_SCHEDULE);
    make_exec(&ex[4], least, now - 9 * ASTER_US_PER_SEC, ASTER_TRIGGER_SCHEDULE);
    ex[4].status = ASTER_EXEC_SUCCEEDED;
    assert_int_equal(aster_store_exec_insert(st, ex, 5, NULL, &err), 0);
    assert_int_equal(aster_store_exec_next_due(st, &due, &err), 0);
    assert_int_equal(due, now - 3 * ASTER_US_PER_SEC);
    {
        int64_t depth = -1, count = -1;
        assert_int_equal(aster_store_queue_depth(st, now, &depth, &err), 0);
        assert_int_equal(depth, 3); /* ex[3] is not due yet; ex[4] is done */
        assert_int_equal(aster_store_exec_count(st, ASTER_EXEC_PENDING, &count, &err), 0);
        assert_int_equal(count, 4);
        assert_int_equal(aster_store_exec_count(st, ASTER_EXEC_SUCCEEDED, &count, &err), 0);
        assert_int_equal(count, 1);
        assert_int_equal(aster_store_exec_count(st, 99, &count, &err), ASTER_EINVAL);
        aster_err_clear(&err);
    }

    /* Two at a time, oldest first, with lease, start and drift. */
    assert_int_equal(
        aster_store_exec_claim(st, "w1", now, now + 30 * ASTER_US_PER_SEC, 2, &got, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(got[0].id, ex[2].id);
    assert_string_equal(got[1].id, ex[0].id);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].status, ASTER_EXEC_RUNNING);
        assert_string_equal(got[i].claimed_by, "w1");
        assert_int_equal(got[i].lease_until, now + 30 * ASTER_US_PER_SEC);
        assert_int_equal(got[i].started_at, now);
        assert_int_equal(got[i].drift_ms, (now - got[i].scheduled_at) / 1000);
    }
    aster_store_free_execs(got, n);
    assert_int_equal(
        aster_store_exec_claim(st, "w2", now, now + 10 * ASTER_US_PER_SEC, 10, &got, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(got[0].id, ex[1].id);
    aster_store_free_execs(got, n);
    assert_int_equal(aster_store_exec_claim(st, "w2", now, now, 10, &got, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(aster_store_exec_next_due(st, &due, &err), 0);
    assert_int_equal(due, now + 5 * ASTER_US_PER_SEC);

    /* w1 extends its own leases only. */
    assert_int_equal(aster_store_exec_extend(st, "w1", now + 60 * ASTER_US_PER_SEC, &err), 0);
    aster_exec_init(&one);
    assert_int_equal(aster_store_exec_get(st, ex[0].id, &one, &err), 0);
    assert_int_equal(one.lease_until, now + 60 * ASTER_US_PER_SEC);
    aster_exec_fini(&one);
    assert_int_equal(aster_store_exec_get(st, ex[1].id, &one, &err), 0);
    assert_int_equal(one.lease_until, now + 10 * ASTER_US_PER_SEC);
    aster_exec_fini(&one);

    /* At now+20s w2's lease (ex[1], ATMOST_ONCE) has run out; w1's has not. */
    const aster_time_us later = now + 20 * ASTER_US_PER_SEC;
    assert_int_equal(aster_store_exec_reclaim(st, "w1", later, 0, later, &retried, &failed, &err),
                     0);
    assert_int_equal(retried, 0);
    assert_int_equal(failed, 1);
    assert_int_equal(aster_store_exec_get(st, ex[1].id, &one, &err), 0);
    assert_int_equal(one.status, ASTER_EXEC_FAILED);
    assert_string_equal(one.error, "lost: executor died");
    assert_null(one.claimed_by);
    assert_int_equal(one.lease_until, 0);
    assert_int_equal(one.finished_at, later);
    assert_int_equal(one.duration_ms, 20000);
    aster_exec_fini(&one);
    {
        /* The lost attempt is in the history too. */
        aster_attempt *at = NULL;
        size_t na = 0;
        assert_int_equal(aster_store_attempt_list(st, ex[1].id, &at, &na, &err), 0);
        assert_int_equal(na, 1);
        assert_int_equal(at[0].attempt, 1);
        assert_int_equal(at[0].status, ASTER_EXEC_FAILED);
        assert_string_equal(at[0].error, "lost: executor died");
        assert_int_equal(at[0].finished_at, later);
        aster_store_free_attempts(at, na);
    }

    /* A restart takes back everything, its own included. */
    assert_int_equal(
        aster_store_exec_reclaim(st, NULL, INT64_MAX, 0, later, &retried, &failed, &err), 0);
    assert_int_equal(retried, 1); /* ex[0] */
    assert_int_equal(failed, 1);  /* ex[2] */
    assert_int_equal(aster_store_exec_get(st, ex[0].id, &one, &err), 0);
    assert_int_equal(one.status, ASTER_EXEC_PENDING);
    assert_int_equal(one.attempt, 2);
    assert_int_equal(one.not_before, later);
    assert_null(one.claimed_by);
    assert_int_equal(one.drift_ms, 2000);
    aster_exec_fini(&one);

    /* The retry's claim keeps the first start's drift.  ex[3] is due by
     * now too, and earlier. */
    assert_int_equal(aster_store_exec_claim(st, "w3", later, later + 1, 10, &got, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(got[0].id, ex[3].id);
    assert_int_equal(got[0].drift_ms, 15000);
    assert_string_equal(got[1].id, ex[0].id);
    assert_int_equal(got[1].attempt, 2);
    assert_int_equal(got[1].drift_ms, 2000);
    aster_store_free_execs(got, n);
    assert_int_equal(aster_store_exec_reclaim(st, NULL, later, 0, later, NULL, NULL, &err), 0);
    assert_int_equal(aster_store_exec_claim(st, "", now, now, 1, &got, &n, &err), ASTER_EINVAL);
    assert_string_equal(err.field, "owner");
    aster_store_close(st);
}

static void test_attempts(void **state)
{
    aster_store *st = open_db("attempts");
    char job[ASTER_ID_LEN + 1];
    aster_attempt a = {.attempt = 1}, *got = NULL;
    aster_exec ex;
    aster_err err = {0};
    size_t n = 9;

    (void)state;
    insert_job(st, "att", false, job);
    make_exec(&ex, job, 1, ASTER_TRIGGER_SCHEDULE);
    assert_int_equal(aster_store_exec_insert(st, &ex, 1, NULL, &err), 0);
    memcpy(a.execution_id, ex.id, sizeof(a.execution_id));
    a.status = ASTER_EXEC_FAILED;
    a.started_at = 10;
    a.finished_at = 20;
    a.duration_ms = 0;
    a.http_status = 503;
    a.exit_code = -1;
    a.error = "HTTP 503";
    assert_int_equal(aster_store_attempt_insert(st, &a, &err), 0);
    assert_int_equal(aster_store_attempt_insert(st, &a, &err), ASTER_EEXIST);
    aster_err_clear(&err);
    a.attempt = 2;
    a.status = ASTER_EXEC_SUCCEEDED;
    a.http_status = 200;
    a.error = NULL;
    a.duration_ms = -1;
    assert_int_equal(aster_store_attempt_insert(st, &a, &err), 0);

    assert_int_equal(aster_store_attempt_list(st, ex.id, &got, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(got[0].attempt, 1);
    assert_int_equal(got[0].status, ASTER_EXEC_FAILED);
    assert_int_equal(got[0].started_at, 10);
    assert_int_equal(got[0].finished_at, 20);
    assert_int_equal(got[0].duration_ms, 0);
    assert_int_equal(got[0].http_status, 503);
    assert_int_equal(got[0].exit_code, -1);
    assert_string_equal(got[0].error, "HTTP 503");
    assert_int_equal(got[1].attempt, 2);
    assert_null(got[1].error);
    assert_int_equal(got[1].duration_ms, -1);
    aster_store_free_attempts(got, n);

    aster_uuid7(a.execution_id);
    assert_int_equal(aster_store_attempt_insert(st, &a, &err), ASTER_ENOENT);
    assert_string_equal(err.field, "execution_id");
    aster_err_clear(&err);

    /* They go with their job. */
    assert_int_equal(aster_store_job_delete(st, job, &err), 0);
    assert_int_equal(aster_store_attempt_list(st, ex.id, &got, &n, &err), 0);
    assert_int_equal(n, 0);
    aster_store_free_attempts(got, n);
    aster_store_close(st);
}

/* ---- alerts -------------------------------------------------------------------------- */

static void test_alerts(void **state)
{
    aster_store *st = open_db("alerts");
    char a[ASTER_ID_LEN + 1], b[ASTER_ID_LEN + 1], ghost[ASTER_ID_LEN + 1];
    char ids[5][ASTER_ID_LEN + 1];
    aster_alert al, *out = NULL;
    aster_exec ex;
    aster_err err = {0};
    size_t n = 0;

    (void)state;
    insert_job(st, "a", false, a);
    insert_job(st, "b", false, b);
    make_exec(&ex, a, 1, ASTER_TRIGGER_SCHEDULE);
    assert_int_equal(aster_store_exec_insert(st, &ex, 1, NULL, &err), 0);
    for (int i = 0; i < 5; i++) {
        make_alert(&al, i < 4 ? a : b, i == 0 ? ex.id : NULL,
                   i % 2 ? "consecutive_failures" : "failed", 100 * (aster_time_us)(i + 1));
        if (i == 1) {
            al.delivery_attempts = 2;
            al.next_delivery_at = 777;
        }
        assert_int_equal(aster_store_alert_insert(st, &al, &err), 0);
        memcpy(ids[i], al.id, sizeof(ids[i]));
        aster_alert_fini(&al);
    }
    {
        aster_alert_filter f = {.limit = 100};
        assert_int_equal(aster_store_alert_list(st, &f, &out, &n, &err), 0);
        assert_int_equal(n, 5);
        assert_string_equal(out[0].id, ids[4]);
        assert_string_equal(out[4].id, ids[0]);
        assert_string_equal(out[4].execution_id, ex.id);
        assert_string_equal(out[4].kind, "failed");
        assert_string_equal(out[4].message, "job failed: connection refused");
        assert_string_equal(out[4].delivery_state, "pending");
        assert_int_equal(out[4].created_at, 100);
        assert_int_equal(out[4].next_delivery_at, 0);
        assert_string_equal(out[3].execution_id, "");
        assert_int_equal(out[3].delivery_attempts, 2);
        assert_int_equal(out[3].next_delivery_at, 777);
        aster_store_free_alerts(out, n);
    }
    {
        aster_alert_filter f = {.job_id = a, .kind = "failed", .limit = 100};
        assert_int_equal(aster_store_alert_list(st, &f, &out, &n, &err), 0);
        assert_int_equal(n, 2); /* 2, 0 */
        assert_string_equal(out[0].id, ids[2]);
        aster_store_free_alerts(out, n);
    }
    {
        aster_alert_filter f = {.since = 300, .before_id = ids[4], .limit = 1};
        assert_int_equal(aster_store_alert_list(st, &f, &out, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_string_equal(out[0].id, ids[3]);
        aster_store_free_alerts(out, n);
    }
    aster_uuid7(ghost);
    make_alert(&al, ghost, NULL, "failed", 1);
    assert_int_equal(aster_store_alert_insert(st, &al, &err), ASTER_ENOENT);
    assert_string_equal(err.field, "job_id");
    aster_alert_fini(&al);
    aster_exec_fini(&ex);
    aster_store_close(st);
}

/* ---- alerts delivery and retention ------------------------------------------------- */

static void raise_alert(aster_store *st, const char *job, const char *exec_id, const char *key,
                        aster_time_us at, bool want_inserted, char id[ASTER_ID_LEN + 1])
{
    aster_alert al;
    aster_err err = {0};
    bool inserted = !want_inserted;

    make_alert(&al, job, exec_id, "failed", at);
    if (aster_store_alert_raise(st, &al, key, &inserted, &err))
        fail_msg("raise %s: %s", key ? key : "(no key)", err.msg);
    assert_int_equal(inserted, want_inserted);
    if (id)
        memcpy(id, al.id, ASTER_ID_LEN + 1);
    aster_alert_fini(&al);
}

static void test_alert_delivery(void **state)
{
    aster_store *st = open_db("alert_delivery");
    char job[ASTER_ID_LEN + 1], ghost[ASTER_ID_LEN + 1], a1[ASTER_ID_LEN + 1], a2[ASTER_ID_LEN + 1];
    aster_alert al, *due = NULL;
    aster_time_us next = -1;
    aster_err err = {0};
    bool inserted = true;
    size_t n = 9;

    (void)state;
    insert_job(st, "alerting", false, job);
    assert_int_equal(aster_store_alert_next_due(st, &next, &err), 0);
    assert_int_equal(next, 0);

    /* One alert per event key; none without a key is ever a duplicate. */
    raise_alert(st, job, NULL, "failed:x", 10, true, a1);
    raise_alert(st, job, NULL, "failed:x", 11, false, NULL);
    raise_alert(st, job, NULL, NULL, 12, true, a2);
    raise_alert(st, job, NULL, NULL, 13, true, NULL);
    aster_uuid7(ghost);
    make_alert(&al, ghost, NULL, "failed", 1);
    assert_int_equal(aster_store_alert_raise(st, &al, "k", &inserted, &err), ASTER_ENOENT);
    assert_string_equal(err.field, "job_id");
    assert_false(inserted);
    aster_err_clear(&err);
    aster_alert_fini(&al);

    /* All three are pending without a time: due at once, id order. */
    assert_int_equal(aster_store_alert_next_due(st, &next, &err), 0);
    assert_int_equal(next, 1);
    assert_int_equal(aster_store_alert_set_delivery(st, a1, "pending", 1, 5000, &err), 0);
    assert_int_equal(aster_store_alert_set_delivery(st, a2, "delivered", 1, 0, &err), 0);
    assert_int_equal(aster_store_alert_due(st, 4999, 10, &due, &n, &err), 0);
    assert_int_equal(n, 1); /* the second keyless one */
    aster_store_free_alerts(due, n);
    assert_int_equal(aster_store_alert_due(st, 5000, 10, &due, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(due[1].id, a1); /* no time sorts first */
    assert_int_equal(due[1].delivery_attempts, 1);
    assert_int_equal(due[1].next_delivery_at, 5000);
    aster_store_free_alerts(due, n);
    assert_int_equal(aster_store_alert_due(st, 5000, 1, &due, &n, &err), 0);
    assert_int_equal(n, 1);
    aster_store_free_alerts(due, n);
    assert_int_equal(aster_store_alert_set_delivery(st, ghost, "failed", 1, 0, &err), ASTER_ENOENT);
    aster_store_close(st);
}

/* An execution of `job` in a final state, finished at `at`. */
static void insert_final(aster_store *st, const char *job, aster_exec_status status,
                         aster_time_us at, char id[ASTER_ID_LEN + 1])
{
    aster_exec ex;
    aster_err err = {0};

    make_exec(&ex, job, at, ASTER_TRIGGER_MANUAL);
    ex.status = status;
    ex.finished_at = at;
    ex.created_at = at;
    if (status != ASTER_EXEC_PENDING && status != ASTER_EXEC_RUNNING)
        ex.error = aster_strdup("boom");
    if (aster_store_exec_insert(st, &ex, 1, NULL, &err))
        fail_msg("insert execution: %s", err.msg);
    if (id)
        memcpy(id, ex.id, ASTER_ID_LEN + 1);
    aster_exec_fini(&ex);
}

static void test_alert_scans(void **state)
{
    aster_store *st = open_db("alert_scans");
    char job[ASTER_ID_LEN + 1], quiet[ASTER_ID_LEN + 1], ok[ASTER_ID_LEN + 1], f1[ASTER_ID_LEN + 1],
        f2[ASTER_ID_LEN + 1], key[64], last[ASTER_ID_LEN + 1];
    aster_job_absence *abs = NULL;
    aster_exec *ex = NULL;
    aster_err err = {0};
    int64_t streak = -1;
    size_t n = 9;

    (void)state;
    insert_job(st, "scanned", false, job);
    assert_int_equal(aster_store_job_fail_streak(st, job, 10, &streak, last, &err), 0);
    assert_int_equal(streak, 0);
    assert_string_equal(last, "");
    insert_final(st, job, ASTER_EXEC_FAILED, 100, NULL);
    insert_final(st, job, ASTER_EXEC_SUCCEEDED, 200, ok);
    insert_final(st, job, ASTER_EXEC_FAILED, 300, f1);
    insert_final(st, job, ASTER_EXEC_TIMED_OUT, 400, f2);
    insert_final(st, job, ASTER_EXEC_PENDING, 500, NULL);

    /* Failures since 150 without a "failed:<id>" alert, oldest first. */
    assert_int_equal(aster_store_exec_unalerted_failures(st, 150, "failed:", 10, &ex, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ex[0].id, f1);
    assert_string_equal(ex[0].job_id, job);
    assert_int_equal(ex[0].status, ASTER_EXEC_FAILED);
    assert_int_equal(ex[0].finished_at, 300);
    assert_string_equal(ex[0].error, "boom");
    assert_int_equal(ex[1].status, ASTER_EXEC_TIMED_OUT);
    aster_store_free_execs(ex, n);
    snprintf(key, sizeof(key), "failed:%s", f1);
    raise_alert(st, job, f1, key, 1, true, NULL);
    assert_int_equal(aster_store_exec_unalerted_failures(st, 150, "failed:", 10, &ex, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ex[0].id, f2);
    aster_store_free_execs(ex, n);

    /* The streak since the last success, bounded by max. */
    assert_int_equal(aster_store_job_fail_streak(st, job, 10, &streak, last, &err), 0);
    assert_int_equal(streak, 2);
    assert_string_equal(last, ok);
    assert_int_equal(aster_store_job_fail_streak(st, job, 1, &streak, last, &err), 0);
    assert_int_equal(streak, 1);

    /* Absence: one active job wants a success every second. */
    {
        aster_job j;
        make_job(&j, "quiet");
        j.alert_if_no_success_ms = 1000;
        j.created_at = 1000000;
        assert_int_equal(aster_store_job_insert(st, &j, &err), 0);
        memcpy(quiet, j.id, sizeof(quiet));
        aster_job_fini(&j);
    }
    assert_int_equal(aster_store_job_absent(st, 1999999, "no_success:", NULL, 10, &abs, &n, &err),
                     0);
    assert_int_equal(n, 0);
    aster_free(abs);
    assert_int_equal(aster_store_job_absent(st, 2000000, "no_success:", NULL, 10, &abs, &n, &err),
                     0);
    assert_int_equal(n, 1);
    assert_string_equal(abs[0].job_id, quiet);
    assert_int_equal(abs[0].no_success_ms, 1000);
    assert_int_equal(abs[0].since, 1000000);
    aster_free(abs);
    assert_int_equal(aster_store_job_absent(st, 2000000, "no_success:", quiet, 10, &abs, &n, &err),
                     0);
    assert_int_equal(n, 0); /* after its own id */
    aster_free(abs);
    raise_alert(st, quiet, NULL, "no_success:1000000", 1, true, NULL);
    assert_int_equal(aster_store_job_absent(st, 2000000, "no_success:", NULL, 10, &abs, &n, &err),
                     0);
    assert_int_equal(n, 0);
    aster_free(abs);
    /* A success starts a new absence. */
    insert_final(st, quiet, ASTER_EXEC_SUCCEEDED, 3000000, NULL);
    assert_int_equal(aster_store_job_absent(st, 4000000, "no_success:", NULL, 10, &abs, &n, &err),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(abs[0].since, 3000000);
    aster_free(abs);
    aster_store_close(st);
}

static void test_retention(void **state)
{
    aster_store *st = open_db("retention");
    char a[ASTER_ID_LEN + 1], b[ASTER_ID_LEN + 1], ids[6][ASTER_ID_LEN + 1], max[ASTER_ID_LEN + 1];
    char *jobs = NULL;
    aster_exec one;
    aster_err err = {0};
    size_t n = 9, deleted = 9;

    (void)state;
    assert_int_equal(aster_store_exec_max_id(st, max, &err), 0);
    assert_string_equal(max, "");
    insert_job(st, "a", false, a);
    insert_job(st, "b", false, b);
    assert_int_equal(aster_store_exec_jobs_after(st, NULL, NULL, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 2); /* no watermark: every job */
    aster_free(jobs);
    insert_final(st, a, ASTER_EXEC_SUCCEEDED, 100, ids[0]);
    insert_final(st, a, ASTER_EXEC_FAILED, 200, ids[1]);
    insert_final(st, a, ASTER_EXEC_PENDING, 300, ids[2]);
    assert_int_equal(aster_store_exec_max_id(st, max, &err), 0);
    assert_string_equal(max, ids[2]);
    insert_final(st, b, ASTER_EXEC_SUCCEEDED, 400, ids[3]);
    insert_final(st, a, ASTER_EXEC_SUCCEEDED, 500, ids[4]);
    insert_final(st, a, ASTER_EXEC_SUCCEEDED, 600, ids[5]);
    {
        aster_attempt at = {.attempt = 1, .status = ASTER_EXEC_SUCCEEDED, .exit_code = -1};
        memcpy(at.execution_id, ids[0], sizeof(at.execution_id));
        at.http_status = at.duration_ms = -1;
        assert_int_equal(aster_store_attempt_insert(st, &at, &err), 0);
    }
    assert_int_equal(aster_store_exec_jobs_after(st, max, NULL, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 2); /* b (ids[3]) and a (ids[4], ids[5]) */
    aster_free(jobs);
    assert_int_equal(aster_store_exec_jobs_after(st, ids[3], NULL, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(jobs, a);
    aster_free(jobs);
    assert_int_equal(aster_store_exec_jobs_after(st, NULL, a, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(jobs, b);
    aster_free(jobs);

    /* Keep a's two newest: ids[0] and ids[1] go, ids[2] (pending) stays. */
    assert_int_equal(aster_store_prune_execs_keep(st, a, 2, 1, &deleted, &err), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(aster_store_prune_execs_keep(st, a, 2, 10, &deleted, &err), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(aster_store_prune_execs_keep(st, a, 2, 10, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
    aster_exec_init(&one);
    assert_int_equal(aster_store_exec_get(st, ids[1], &one, &err), ASTER_ENOENT);
    aster_err_clear(&err);
    assert_int_equal(aster_store_exec_get(st, ids[2], &one, &err), 0);
    aster_exec_fini(&one);
    {
        aster_attempt *at = NULL;
        assert_int_equal(aster_store_attempt_list(st, ids[0], &at, &n, &err), 0);
        assert_int_equal(n, 0); /* gone with its execution */
        aster_store_free_attempts(at, n);
    }

    /* By age: created and finished before 450, not pending. */
    assert_int_equal(aster_store_prune_execs_before(st, 450, 10, &deleted, &err), 0);
    assert_int_equal(deleted, 1); /* ids[3] */
    assert_int_equal(count_execs(st, a), 3);
    assert_int_equal(count_execs(st, b), 0);

    /* Alerts by age, except those still pending delivery. */
    {
        char old[ASTER_ID_LEN + 1];
        raise_alert(st, a, NULL, NULL, 100, true, old);
        raise_alert(st, a, NULL, NULL, 150, true, NULL);
        raise_alert(st, a, NULL, NULL, 900, true, NULL);
        assert_int_equal(aster_store_alert_set_delivery(st, old, "delivered", 1, 0, &err), 0);
        assert_int_equal(aster_store_prune_alerts_before(st, 500, 10, &deleted, &err), 0);
        assert_int_equal(deleted, 1);
        assert_int_equal(aster_store_prune_alerts_before(st, 500, 10, &deleted, &err), 0);
        assert_int_equal(deleted, 0);
    }
    aster_store_close(st);
}

/* ---- batches ------------------------------------------------------------------------- */

struct batch_arg {
    aster_store *st;
    char job[ASTER_ID_LEN + 1];
    int fail;         /* return this from fn */
    int seen_outside; /* what another thread saw during the batch */
    atomic_int writer_done;
    pthread_t late;
};

static void *peek_thread(void *p)
{
    struct batch_arg *ba = p;
    aster_job j;
    aster_err err = {0};

    aster_job_init(&j);
    ba->seen_outside = aster_store_job_get(ba->st, "batched-1", &j, &err);
    aster_job_fini(&j);
    return NULL;
}

static int batch_fn(aster_store *st, void *p, aster_err *err)
{
    struct batch_arg *ba = p;
    aster_job j, got;
    aster_exec ex[2];
    pthread_t t;
    int rc;

    make_job(&j, "batched-1");
    memcpy(ba->job, j.id, sizeof(ba->job));
    rc = aster_store_job_insert(st, &j, err);
    aster_job_fini(&j);
    if (rc)
        return rc;
    /* This thread sees its own uncommitted job ... */
    aster_job_init(&got);
    rc = aster_store_job_get(st, "batched-1", &got, err);
    aster_job_fini(&got);
    if (rc)
        return rc;
    /* ... another does not. */
    pthread_create(&t, NULL, peek_thread, ba);
    pthread_join(t, NULL);

    /* A failing call inside a batch changes nothing and the batch goes on. */
    {
        aster_err e2 = {0};
        make_job(&j, "batched-1");
        rc = aster_store_job_insert(st, &j, &e2);
        aster_job_fini(&j);
        if (rc != ASTER_EEXIST)
            return aster_err_set(err, -100, NULL, "duplicate in batch gave %d", rc);
        make_exec(&ex[0], ba->job, 1, ASTER_TRIGGER_SCHEDULE);
        make_exec(&ex[1], "00000000-0000-7000-8000-000000000000", 1, ASTER_TRIGGER_SCHEDULE);
        rc = aster_store_exec_insert(st, ex, 2, NULL, &e2);
        if (rc != ASTER_ENOENT)
            return aster_err_set(err, -100, NULL, "missing job in batch gave %d", rc);
        make_exec(&ex[0], ba->job, 2, ASTER_TRIGGER_SCHEDULE);
        if ((rc = aster_store_exec_insert(st, ex, 1, NULL, err)))
            return rc;
    }
    make_job(&j, "batched-2");
    rc = aster_store_job_insert(st, &j, err);
    aster_job_fini(&j);
    return rc ? rc : ba->fail;
}

static int nested_fn(aster_store *st, void *p, aster_err *err)
{
    (void)p;
    insert_job(st, "outer", false, NULL);
    /* The inner batch fails: only its rows go. */
    assert_int_equal(
        aster_store_batch(st, batch_fn, &(struct batch_arg){.st = st, .fail = -42}, err), -42);
    aster_err_clear(err);
    return 0;
}

static void test_batch(void **state)
{
    aster_store *st = open_db("batch");
    struct batch_arg ba = {.st = st};
    aster_job j;
    aster_err err = {0};

    (void)state;
    aster_job_init(&j);
    assert_int_equal(aster_store_batch(st, batch_fn, &ba, &err), 0);
    assert_int_equal(ba.seen_outside, ASTER_ENOENT);
    assert_int_equal(aster_store_job_get(st, "batched-1", &j, &err), 0);
    aster_job_fini(&j);
    assert_int_equal(aster_store_job_get(st, "batched-2", &j, &err), 0);
    aster_job_fini(&j);
    assert_int_equal(count_execs(st, ba.job), 1);

    /* fn fails: nothing of it is kept. */
    aster_store_close(st);
    st = open_db("batch-rollback");
    ba = (struct batch_arg){.st = st, .fail = -7};
    assert_int_equal(aster_store_batch(st, batch_fn, &ba, &err), -7);
    aster_err_clear(&err);
    assert_int_equal(aster_store_job_get(st, "batched-1", &j, &err), ASTER_ENOENT);
    aster_err_clear(&err);
    assert_int_equal(aster_store_job_get(st, "batched-2", &j, &err), ASTER_ENOENT);
    aster_err_clear(&err);
    assert_int_equal(count_execs(st, ba.job), 0);

    /* Nested: the outer commits, the failed inner part does not. */
    assert_int_equal(aster_store_batch(st, nested_fn, NULL, &err), 0);
    assert_int_equal(aster_store_job_get(st, "outer", &j, &err), 0);
    aster_job_fini(&j);
    assert_int_equal(aster_store_job_get(st, "batched-1", &j, &err), ASTER_ENOENT);
    aster_err_clear(&err);
    aster_store_close(st);
}

/* SQLite only: PostgreSQL's row locks let other threads' writes run
 * beside a batch (see postgres/conn.c). */
#ifndef STORE_TEST_PG
static void *late_writer(void *p)
{
    struct batch_arg *ba = p;
    insert_job(ba->st, "late", false, NULL);
    atomic_store(&ba->writer_done, 1);
    return NULL;
}

static int slow_fn(aster_store *st, void *p, aster_err *err)
{
    struct batch_arg *ba = p;

    pthread_create(&ba->late, NULL, late_writer, ba);
    /* The other thread's write must wait for this batch.  If it did not,
     * it would very likely be done after 50 ms; never a false failure. */
    usleep(50000);
    ba->seen_outside = atomic_load(&ba->writer_done);
    insert_job(st, "early", false, NULL);
    (void)err;
    return 0;
}

static void test_batch_blocks_other_writers(void **state)
{
    aster_store *st = open_db("batch-block");
    struct batch_arg ba = {.st = st};
    aster_job j;
    aster_err err = {0};

    (void)state;
    assert_int_equal(aster_store_batch(st, slow_fn, &ba, &err), 0);
    pthread_join(ba.late, NULL); /* its write waited for the commit */
    assert_int_equal(ba.seen_outside, 0);
    aster_job_init(&j);
    assert_int_equal(aster_store_job_get(st, "late", &j, &err), 0);
    aster_job_fini(&j);
    aster_store_close(st);
}
#endif

/* ---- threads -------------------------------------------------------------------------- */

enum { WRITERS = 4, READERS = 4, PER_WRITER = 60 };

struct conc {
    aster_store *st;
    atomic_int writers_left;
    atomic_int errors;
    char first_error[256];
    pthread_mutex_t lock;
};

static void conc_fail(struct conc *c, const aster_err *err)
{
    if (atomic_fetch_add(&c->errors, 1) == 0) {
        pthread_mutex_lock(&c->lock);
        snprintf(c->first_error, sizeof(c->first_error), "%s", err->msg);
        pthread_mutex_unlock(&c->lock);
    }
}

struct wr {
    struct conc *c;
    int id;
    int seq; /* names of batched jobs */
};

static int insert_five(aster_store *st, void *p, aster_err *err)
{
    struct wr *w = p;
    for (int i = 0; i < 5; i++) {
        aster_job j;
        char name[64];
        int rc;
        snprintf(name, sizeof(name), "w%d-batch-%d", w->id, w->seq++);
        make_job(&j, name);
        rc = aster_store_job_insert(st, &j, err);
        aster_job_fini(&j);
        if (rc)
            return rc;
    }
    return 0;
}

static void *conc_writer(void *p)
{
    struct wr *w = p;
    int done = 0;

    while (done < PER_WRITER) {
        aster_err err = {0};
        if (done % 20 == 0) {
            if (aster_store_batch(w->c->st, insert_five, w, &err))
                conc_fail(w->c, &err);
            done += 5;
        } else {
            aster_job j;
            char name[64];
            snprintf(name, sizeof(name), "w%d-%d", w->id, done);
            make_job(&j, name);
            if (aster_store_job_insert(w->c->st, &j, &err))
                conc_fail(w->c, &err);
            aster_job_fini(&j);
            done++;
        }
    }
    atomic_fetch_sub(&w->c->writers_left, 1);
    return NULL;
}

static void *conc_reader(void *p)
{
    struct conc *c = p;

    while (atomic_load(&c->writers_left) > 0) {
        aster_job_filter f = {.paused = -1, .name_prefix = "w", .limit = ASTER_STORE_MAX_PAGE};
        aster_job *jobs = NULL;
        aster_err err = {0};
        size_t n = 0;
        int64_t active = 0;
        if (aster_store_job_list(c->st, &f, &jobs, &n, &err))
            conc_fail(c, &err);
        /* Ids increase with time: a page is in id order. */
        for (size_t i = 1; i < n; i++)
            if (strcmp(jobs[i - 1].id, jobs[i].id) >= 0)
                conc_fail(c, &(aster_err){.msg = "list out of order"});
        aster_store_free_jobs(jobs, n);
        if (aster_store_job_count(c->st, &active, NULL, &err) || aster_store_ping(c->st, &err))
            conc_fail(c, &err);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    struct conc c = {.st = open_db("concurrent")};
    pthread_t w[WRITERS], r[READERS];
    struct wr wa[WRITERS];
    int64_t active = 0;
    aster_err err = {0};

    (void)state;
    pthread_mutex_init(&c.lock, NULL);
    atomic_init(&c.writers_left, WRITERS);
    for (int i = 0; i < READERS; i++)
        pthread_create(&r[i], NULL, conc_reader, &c);
    for (int i = 0; i < WRITERS; i++) {
        wa[i] = (struct wr){.c = &c, .id = i};
        pthread_create(&w[i], NULL, conc_writer, &wa[i]);
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(w[i], NULL);
    for (int i = 0; i < READERS; i++)
        pthread_join(r[i], NULL);
    if (atomic_load(&c.errors))
        fail_msg("%d errors, first: %s", atomic_load(&c.errors), c.first_error);
    assert_int_equal(aster_store_job_count(c.st, &active, NULL, &err), 0);
    assert_int_equal(active, WRITERS * PER_WRITER);
    pthread_mutex_destroy(&c.lock);
    aster_store_close(c.st);
}

/* Many threads creating jobs at once, every name tried by two of them, and
 * some names the database may refuse: each name is created exactly once,
 * the loser hears EEXIST on "name", and a refused row spoils no other.
 * (PostgreSQL writes concurrent creations as one statement.) */
enum { NAME_THREADS = 16, NAME_PER = 40 };

struct names {
    aster_store *st;
    pthread_barrier_t go;
    atomic_int won[NAME_THREADS / 2][NAME_PER];
    atomic_int errors;
    char first_error[256];
    pthread_mutex_t lock;
};

struct name_arg {
    struct names *x;
    int t;
};

static void names_fail(struct names *x, const char *what, const aster_err *err)
{
    if (atomic_fetch_add(&x->errors, 1) == 0) {
        pthread_mutex_lock(&x->lock);
        snprintf(x->first_error, sizeof(x->first_error), "%.60s: %.150s (%.30s)", what, err->msg,
                 err->field);
        pthread_mutex_unlock(&x->lock);
    }
}

static void *names_writer(void *p)
{
    struct name_arg *a = p;
    struct names *x = a->x;

    pthread_barrier_wait(&x->go);
    for (int k = 0; k < NAME_PER; k++) {
        aster_job j;
        aster_err err = {0};
        char name[64];
        snprintf(name, sizeof(name), "n-%d-%d", a->t / 2, k);
        make_job(&j, name);
        int rc = aster_store_job_insert(x->st, &j, &err);
        if (!rc)
            atomic_fetch_add(&x->won[a->t / 2][k], 1);
        else if (rc != ASTER_EEXIST || strcmp(err.field, "name"))
            names_fail(x, name, &err);
        aster_job_fini(&j);
        if (k % 10 == 0) { /* not UTF-8: PostgreSQL refuses it, SQLite keeps it */
            snprintf(name, sizeof(name), "bad-\xff-%d-%d", a->t, k);
            make_job(&j, name);
            int refused = aster_store_job_insert(x->st, &j, &err);
            (void)refused; /* either way, the others must not notice */
            aster_job_fini(&j);
        }
    }
    return NULL;
}

static void test_concurrent_names(void **state)
{
    struct names *x = aster_calloc(1, sizeof(*x));
    pthread_t t[NAME_THREADS];
    struct name_arg a[NAME_THREADS];
    aster_job_filter f = {.paused = -1, .name_prefix = "n-", .limit = ASTER_STORE_MAX_PAGE};
    aster_job *jobs = NULL;
    aster_err err = {0};
    size_t n = 0;

    (void)state;
    x->st = open_db("names");
    pthread_mutex_init(&x->lock, NULL);
    pthread_barrier_init(&x->go, NULL, NAME_THREADS);
    for (int i = 0; i < NAME_THREADS; i++) {
        a[i] = (struct name_arg){.x = x, .t = i};
        pthread_create(&t[i], NULL, names_writer, &a[i]);
    }
    for (int i = 0; i < NAME_THREADS; i++)
        pthread_join(t[i], NULL);
    if (atomic_load(&x->errors))
        fail_msg("%d errors, first: %s", atomic_load(&x->errors), x->first_error);
    for (int i = 0; i < NAME_THREADS / 2; i++)
        for (int k = 0; k < NAME_PER; k++)
            if (atomic_load(&x->won[i][k]) != 1)
                fail_msg("n-%d-%d created %d times", i, k, atomic_load(&x->won[i][k]));
    assert_int_equal(aster_store_job_list(x->st, &f, &jobs, &n, &err), 0);
    assert_int_equal(n, NAME_THREADS / 2 * NAME_PER);
    for (size_t i = 0; i < n; i++) { /* every column made it, not just the name */
        assert_string_equal(jobs[i].schedule, "*/5 * * * *");
        assert_string_equal(jobs[i].timezone, "Europe/Berlin");
        assert_int_equal(jobs[i].retry_backoff_max_ms, 60000);
        assert_int_equal(jobs[i].version, 1);
    }
    aster_store_free_jobs(jobs, n);
    pthread_barrier_destroy(&x->go);
    pthread_mutex_destroy(&x->lock);
    aster_store_close(x->st);
    aster_free(x);
}

/* Nodes, leadership and fencing, the scheduler's overlap count, and (on
 * backends that have them) notifications. */
static int fence_then_insert(aster_store *st, void *arg, aster_err *err)
{
    const aster_exec *ex = ((const aster_exec **)arg)[0];
    int64_t token = *((const int64_t **)arg)[1];
    int rc = aster_store_leader_fence(st, token, err);
    if (!rc)
        rc = aster_store_exec_insert(st, ex, 1, NULL, err);
    return rc;
}

struct events {
    int jobs, execs, cancels;
    char last_job[ASTER_ID_LEN + 1], cancel_job[ASTER_ID_LEN + 1];
    aster_time_us cancel_at;
};

static void on_event(void *arg, aster_store_event ev, const char *job_id, aster_time_us at)
{
    struct events *x = arg;
    if (ev == ASTER_STORE_EV_JOB) {
        x->jobs++;
        snprintf(x->last_job, sizeof(x->last_job), "%s", job_id ? job_id : "");
    } else if (ev == ASTER_STORE_EV_CANCEL) {
        x->cancels++;
        x->cancel_at = at;
        snprintf(x->cancel_job, sizeof(x->cancel_job), "%s", job_id ? job_id : "");
    } else {
        x->execs++;
    }
}

static void test_coordination(void **state)
{
    aster_store *st = open_db("coord");
    const aster_time_us now = 1000 * ASTER_US_PER_SEC, s = ASTER_US_PER_SEC;
    char job[ASTER_ID_LEN + 1];
    aster_exec ex[3], *got = NULL, one;
    aster_err err = {0};
    int64_t token = -1, t2 = -1, busy = -1;
    size_t n = 0, retried = 0, failed = 0;

    (void)state;
    insert_job(st, "coord", false, job);

    /* Leadership: the first taker gets token 1 and renews it; another
     * waits for the lease to end and then gets a new term. */
    assert_int_equal(aster_store_leader_acquire(st, "a", now, now + 5 * s, &token, &err), 0);
    assert_int_equal(token, 1);
    assert_int_equal(aster_store_leader_acquire(st, "b", now + s, now + 6 * s, &t2, &err), 0);
    assert_int_equal(t2, 0);
    assert_int_equal(aster_store_leader_acquire(st, "a", now + 2 * s, now + 7 * s, &token, &err),
                     0);
    assert_int_equal(token, 1);
    assert_int_equal(aster_store_leader_acquire(st, "b", now + 6 * s, now + 11 * s, &t2, &err), 0);
    assert_int_equal(t2, 0); /* a's renewed lease runs to now+7s */
    assert_int_equal(aster_store_leader_acquire(st, "b", now + 8 * s, now + 13 * s, &t2, &err), 0);
    assert_int_equal(t2, 2);
    assert_int_equal(aster_store_leader_acquire(st, "a", now + 9 * s, now + 14 * s, &token, &err),
                     0);
    assert_int_equal(token, 0); /* a lost it */

    /* Fencing: the old term's batch changes nothing; the new one's commits. */
    make_exec(&ex[0], job, now, ASTER_TRIGGER_SCHEDULE);
    {
        int64_t stale = 1;
        const void *arg[2] = {&ex[0], &stale};
        assert_int_equal(aster_store_batch(st, fence_then_insert, arg, &err), ASTER_ECONFLICT);
        assert_string_equal(err.field, "token");
        aster_err_clear(&err);
        aster_exec_init(&one);
        assert_int_equal(aster_store_exec_get(st, ex[0].id, &one, &err), ASTER_ENOENT);
        aster_err_clear(&err);
        arg[1] = &t2;
        assert_int_equal(aster_store_batch(st, fence_then_insert, arg, &err), 0);
        assert_int_equal(aster_store_exec_get(st, ex[0].id, &one, &err), 0);
        aster_exec_fini(&one);
    }
    /* Release ends the term at once: the next taker gets token 3; a
     * release with a stale token does nothing. */
    assert_int_equal(aster_store_leader_release(st, "b", 1, &err), 0);
    assert_int_equal(aster_store_leader_acquire(st, "a", now + 9 * s, now + 14 * s, &token, &err),
                     0);
    assert_int_equal(token, 0);
    assert_int_equal(aster_store_leader_release(st, "b", 2, &err), 0);
    assert_int_equal(aster_store_leader_acquire(st, "a", now + 9 * s, now + 14 * s, &token, &err),
                     0);
    assert_int_equal(token, 3);
    /* The same node back after its lease ran out starts a new term. */
    assert_int_equal(aster_store_leader_acquire(st, "a", now + 20 * s, now + 25 * s, &token, &err),
                     0);
    assert_int_equal(token, 4);

    /* Overlap count: running only (pending work has not started). */
    make_exec(&ex[1], job, now + s, ASTER_TRIGGER_SCHEDULE);
    make_exec(&ex[2], job, now + 2 * s, ASTER_TRIGGER_SCHEDULE);
    ex[2].status = ASTER_EXEC_SUCCEEDED;
    assert_int_equal(aster_store_exec_insert(st, &ex[1], 2, NULL, &err), 0);
    assert_int_equal(aster_store_job_busy(st, job, &busy, &err), 0);
    assert_int_equal(busy, 0);

    /* Heartbeats: w1 claims both pending executions, then falls silent;
     * w2 is alive.  Leases are long: only the heartbeat can tell. */
    assert_int_equal(aster_store_node_heartbeat(st, "w1", "worker", now, &err), 0);
    assert_int_equal(aster_store_node_heartbeat(st, "w2", "worker", now, &err), 0);
    assert_int_equal(
        aster_store_exec_claim(st, "w1", now + 3 * s, now + 600 * s, 10, &got, &n, &err), 0);
    assert_int_equal(n, 2);
    aster_store_free_execs(got, n);
    assert_int_equal(aster_store_job_busy(st, job, &busy, &err), 0);
    assert_int_equal(busy, 2);
    assert_int_equal(aster_store_node_heartbeat(st, "w2", "worker", now + 10 * s, &err), 0);
    /* dead_before now+5s: w1 (heard at now) is dead, w2 (now+10s) is not. */
    assert_int_equal(aster_store_exec_reclaim(st, "w2", now + 10 * s, now + 5 * s, now + 10 * s,
                                              &retried, &failed, &err),
                     0);
    assert_int_equal(retried, 2);
    assert_int_equal(failed, 0);
    assert_int_equal(aster_store_exec_get(st, ex[0].id, &one, &err), 0);
    assert_int_equal(one.status, ASTER_EXEC_PENDING);
    assert_int_equal(one.attempt, 2);
    aster_exec_fini(&one);
    /* A node that says it is gone (at 0) is dead at once. */
    assert_int_equal(
        aster_store_exec_claim(st, "w2", now + 11 * s, now + 600 * s, 10, &got, &n, &err), 0);
    assert_int_equal(n, 2);
    aster_store_free_execs(got, n);
    assert_int_equal(aster_store_exec_reclaim(st, NULL, now + 11 * s, now + 5 * s, now + 11 * s,
                                              &retried, NULL, &err),
                     0);
    assert_int_equal(retried, 0);
    assert_int_equal(aster_store_node_heartbeat(st, "w2", "worker", 0, &err), 0);
    assert_int_equal(aster_store_exec_reclaim(st, NULL, now + 11 * s, now + 5 * s, now + 11 * s,
                                              &retried, NULL, &err),
                     0);
    assert_int_equal(retried, 2);
    assert_int_equal(aster_store_node_heartbeat(st, "", "worker", now, &err), ASTER_EINVAL);
    aster_err_clear(&err);

    /* Notifications: a user's change of a job and a new pending execution
     * are announced; the scheduler's next_fire_at is not. */
    if (aster_store_caps(st) & ASTER_STORE_CAP_NOTIFY) {
        aster_store_listener *l = NULL;
        struct events x = {0};
        aster_job j;
        assert_int_equal(aster_store_listen(st, &l, &err), 0);
        assert_true(aster_store_listener_fd(l) >= 0);
        aster_job_init(&j);
        assert_int_equal(aster_store_job_get(st, job, &j, &err), 0);
        j.version++;
        assert_int_equal(aster_store_job_update(st, &j, 0, &err), 0);
        aster_job_fini(&j);
        assert_int_equal(aster_store_job_set_next(st, job, now, &err), 0);
        aster_exec trig;
        make_exec(&trig, job, now, ASTER_TRIGGER_MANUAL);
        assert_int_equal(aster_store_exec_insert(st, &trig, 1, NULL, &err), 0);
        assert_int_equal(aster_store_announce_cancel(st, job, now + 7, &err), 0);
        for (int i = 0; i < 200 && (x.jobs < 1 || x.execs < 1 || x.cancels < 1); i++) {
            assert_int_equal(aster_store_listener_read(l, on_event, &x, &err), 0);
            usleep(10000);
        }
        usleep(100000); /* anything more would have arrived by now */
        assert_int_equal(aster_store_listener_read(l, on_event, &x, &err), 0);
        /* The update's announcement; the creation's may come too (it is
         * sent after the commit, by the store's own thread). */
        assert_true(x.jobs >= 1 && x.jobs <= 2);
        assert_string_equal(x.last_job, job);
        /* A job created now is announced as well. */
        char fresh[ASTER_ID_LEN + 1];
        x.jobs = 0;
        insert_job(st, "coord-new", false, fresh);
        for (int i = 0; i < 200 && x.jobs < 1; i++) {
            assert_int_equal(aster_store_listener_read(l, on_event, &x, &err), 0);
            usleep(10000);
        }
        assert_int_equal(x.jobs, 1);
        assert_string_equal(x.last_job, fresh);
        assert_int_equal(x.execs, 1);
        assert_int_equal(x.cancels, 1);
        assert_string_equal(x.cancel_job, job);
        assert_int_equal(x.cancel_at, now + 7);
        aster_store_listener_close(l);
    } else {
        aster_store_listener *l = NULL;
        assert_int_equal(aster_store_announce_cancel(st, job, now, &err), 0); /* no-op */
        assert_int_equal(aster_store_listen(st, &l, &err), ASTER_EINVAL);
        assert_null(l);
        aster_err_clear(&err);
    }
    aster_store_close(st);
}

/* The result path: many attempts recorded at once, odd text intact, gone
 * rows and repeated attempts skipped. */
static void test_exec_finish(void **state)
{
    aster_store *st = open_db("finish");
    const aster_time_us now = 2000 * ASTER_US_PER_SEC;
    char job[ASTER_ID_LEN + 1];
    aster_exec ex[3], one;
    aster_attempt at[3];
    aster_attempt *list = NULL;
    aster_err err = {0};
    size_t n = 0;
    static const char odd[] = "quote \" backslash \\ braces {a,b} NULL comma, \n\t \xc3\xa9";

    (void)state;
    insert_job(st, "finish", false, job);
    for (int i = 0; i < 3; i++)
        make_exec(&ex[i], job, now + i * ASTER_US_PER_SEC, ASTER_TRIGGER_SCHEDULE);
    assert_int_equal(aster_store_exec_insert(st, ex, 2, NULL, &err), 0); /* ex[2] never stored */
    memset(at, 0, sizeof(at));
    for (int i = 0; i < 3; i++) {
        ex[i].status = i ? ASTER_EXEC_FAILED : ASTER_EXEC_SUCCEEDED;
        ex[i].started_at = now + 10;
        ex[i].finished_at = now + 20;
        ex[i].duration_ms = 0;
        ex[i].http_status = i ? -1 : 200;
        ex[i].exit_code = i ? 3 : -1;
        memcpy(at[i].execution_id, ex[i].id, sizeof(at[i].execution_id));
        at[i].attempt = 1;
        at[i].status = ex[i].status;
        at[i].started_at = now + 10;
        at[i].finished_at = now + 20;
        at[i].http_status = ex[i].http_status;
        at[i].exit_code = ex[i].exit_code;
        at[i].duration_ms = 0;
    }
    ex[0].output = aster_strdup(odd);
    ex[1].error = aster_strdup("exit \"3\"");
    at[1].error = ex[1].error;
    assert_int_equal(aster_store_exec_finish(st, ex, at, 3, &err), 0);
    /* Again: the attempts are recorded already; nothing changes or fails. */
    assert_int_equal(aster_store_exec_finish(st, ex, at, 3, &err), 0);

    aster_exec_init(&one);
    assert_int_equal(aster_store_exec_get(st, ex[0].id, &one, &err), 0);
    assert_int_equal(one.status, ASTER_EXEC_SUCCEEDED);
    assert_string_equal(one.output, odd);
    assert_null(one.error);
    assert_int_equal(one.http_status, 200);
    assert_int_equal(one.exit_code, -1);
    assert_int_equal(one.finished_at, now + 20);
    aster_exec_fini(&one);
    assert_int_equal(aster_store_exec_get(st, ex[1].id, &one, &err), 0);
    assert_int_equal(one.status, ASTER_EXEC_FAILED);
    assert_string_equal(one.error, "exit \"3\"");
    assert_null(one.output);
    assert_int_equal(one.exit_code, 3);
    aster_exec_fini(&one);
    assert_int_equal(aster_store_exec_get(st, ex[2].id, &one, &err), ASTER_ENOENT);
    aster_err_clear(&err);
    assert_int_equal(aster_store_attempt_list(st, ex[1].id, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].status, ASTER_EXEC_FAILED);
    assert_string_equal(list[0].error, "exit \"3\"");
    aster_store_free_attempts(list, n);
    assert_int_equal(aster_store_attempt_list(st, ex[2].id, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    aster_store_free_attempts(list, n);
    assert_int_equal(aster_store_exec_finish(st, NULL, NULL, 0, &err), 0);
    for (int i = 0; i < 3; i++)
        aster_exec_fini(&ex[i]);
    aster_store_close(st);
}

/* The cases every backend passes. */
#define STORE_CASES                                                                                \
    cmocka_unit_test(test_open_migrate_reopen), cmocka_unit_test(test_newer_schema_refused),       \
        cmocka_unit_test(test_job_crud), cmocka_unit_test(test_job_list),                          \
        cmocka_unit_test(test_exec_insert_batch), cmocka_unit_test(test_exec_roundtrip),           \
        cmocka_unit_test(test_exec_list), cmocka_unit_test(test_job_set_next),                     \
        cmocka_unit_test(test_claim_extend_reclaim), cmocka_unit_test(test_attempts),              \
        cmocka_unit_test(test_alerts), cmocka_unit_test(test_alert_delivery),                      \
        cmocka_unit_test(test_alert_scans), cmocka_unit_test(test_retention),                      \
        cmocka_unit_test(test_batch), cmocka_unit_test(test_concurrent),                           \
        cmocka_unit_test(test_concurrent_names), cmocka_unit_test(test_coordination),              \
        cmocka_unit_test(test_exec_finish)

#ifndef STORE_TEST_PG
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_exclusive_lock),
        cmocka_unit_test(test_ping_notices_replaced_file),
        cmocka_unit_test(test_batch_blocks_other_writers),
        STORE_CASES,
    };
    return cmocka_run_group_tests(tests, backend_setup, backend_teardown);
}
#endif
