/* test_prune.c — history retention (src/engine/prune.c and the store's
 * prune functions) against a real SQLite file in a temporary directory. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/job.h"
#include "engine/prune.h"
#include "store/store.h"
#include "util/mem.h"
#include "util/metrics.h"
#include "util/uuid.h"

#define DAY_US (86400 * ASTER_US_PER_SEC)

static char tmpdir[512];

/* ---- fixtures ---------------------------------------------------------------- */

static int make_tmpdir(void **state)
{
    const char *base = getenv("ASTER_TEST_TMPDIR");

    (void)state;
    if (!base || !*base)
        base = "/tmp";
    if (mkdir(base, 0755) != 0 && errno != EEXIST)
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_prune.XXXXXX", base);
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

static aster_store *open_db(const char *name)
{
    const aster_store_opts opts = {.exclusive = false, .migrate = true};
    aster_store *st = NULL;
    aster_err err = {0};
    char url[PATH_MAX + 16];

    snprintf(url, sizeof(url), "sqlite:%s/%s.db", tmpdir, name);
    if (aster_store_open(url, &opts, &st, &err))
        fail_msg("open %s: %s", url, err.msg);
    return st;
}

static void insert_job(aster_store *st, const char *name, char id[ASTER_ID_LEN + 1])
{
    aster_job j;
    aster_err err = {0};

    aster_job_init(&j);
    aster_uuid7(j.id);
    j.name = aster_strdup(name);
    j.schedule = aster_strdup("* * * * *");
    j.timezone = aster_strdup("UTC");
    j.target = aster_strdup("{\"url\":\"http://127.0.0.1:9/\",\"method\":\"POST\"}");
    j.created_at = j.updated_at = aster_time_now();
    j.version = 1;
    if (aster_store_job_insert(st, &j, &err))
        fail_msg("insert %s: %s", name, err.msg);
    memcpy(id, j.id, ASTER_ID_LEN + 1);
    aster_job_fini(&j);
}

/* Inserts one execution of `job_id`; its id into `id` (may be NULL). */
static void add_exec(aster_store *st, const char *job_id, aster_exec_status status,
                     aster_time_us created, aster_time_us finished, char *id)
{
    aster_exec e;
    aster_err err = {0};

    aster_exec_init(&e);
    aster_uuid7(e.id);
    snprintf(e.job_id, sizeof(e.job_id), "%s", job_id);
    e.trigger = ASTER_TRIGGER_MANUAL;
    e.status = status;
    e.attempt = 1;
    e.scheduled_at = e.not_before = created;
    e.created_at = created;
    e.finished_at = finished;
    if (status == ASTER_EXEC_RUNNING) {
        e.claimed_by = aster_strdup("worker");
        e.lease_until = aster_time_now() + 60 * ASTER_US_PER_SEC;
    }
    if (aster_store_exec_insert(st, &e, 1, NULL, &err))
        fail_msg("insert exec: %s", err.msg);
    if (id)
        memcpy(id, e.id, ASTER_ID_LEN + 1);
    aster_exec_fini(&e);
}

static void add_attempt(aster_store *st, const char *exec_id)
{
    aster_attempt at = {.attempt = 1,
                        .status = ASTER_EXEC_FAILED,
                        .http_status = 500,
                        .exit_code = -1,
                        .duration_ms = 3};
    aster_err err = {0};

    memcpy(at.execution_id, exec_id, sizeof(at.execution_id));
    if (aster_store_attempt_insert(st, &at, &err))
        fail_msg("insert attempt: %s", err.msg);
}

static size_t count_attempts(aster_store *st, const char *exec_id)
{
    aster_attempt *a = NULL;
    aster_err err = {0};
    size_t n = 0;

    assert_int_equal(aster_store_attempt_list(st, exec_id, &a, &n, &err), 0);
    aster_store_free_attempts(a, n);
    return n;
}

static bool exec_exists(aster_store *st, const char *id)
{
    aster_exec e;
    aster_err err = {0};
    int rc = aster_store_exec_get(st, id, &e, &err);

    if (rc == 0)
        aster_exec_fini(&e);
    else
        assert_int_equal(rc, ASTER_ENOENT);
    return rc == 0;
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

static void add_alert(aster_store *st, const char *job_id, const char *state, aster_time_us at,
                      char id[ASTER_ID_LEN + 1])
{
    aster_alert a;
    aster_err err = {0};

    aster_alert_init(&a);
    aster_uuid7(a.id);
    snprintf(a.job_id, sizeof(a.job_id), "%s", job_id);
    a.kind = aster_strdup("failed");
    a.message = aster_strdup("m");
    a.delivery_state = aster_strdup(state);
    a.created_at = at;
    if (aster_store_alert_insert(st, &a, &err))
        fail_msg("insert alert: %s", err.msg);
    memcpy(id, a.id, ASTER_ID_LEN + 1);
    aster_alert_fini(&a);
}

static bool alert_exists(aster_store *st, const char *job_id, const char *id)
{
    aster_alert_filter f = {.job_id = job_id, .limit = ASTER_STORE_MAX_PAGE};
    aster_alert *al = NULL;
    aster_err err = {0};
    size_t n = 0;
    bool found = false;

    assert_int_equal(aster_store_alert_list(st, &f, &al, &n, &err), 0);
    for (size_t i = 0; i < n; i++)
        found = found || !strcmp(al[i].id, id);
    aster_store_free_alerts(al, n);
    return found;
}

static aster_pruner *start_pruner(aster_store *st, aster_metrics *m, int64_t per_job)
{
    /* A long interval: the tests drive runs with run_once. */
    aster_pruner_opts o = {
        .store = st, .metrics = m, .interval_ms = 3600 * 1000, .per_job = per_job};
    aster_pruner *p = NULL;
    aster_err err = {0};

    if (aster_pruner_start(&o, &p, &err))
        fail_msg("pruner: %s", err.msg);
    return p;
}

/* ---- tests ------------------------------------------------------------------- */

/* Keeps exactly per_job newest per job; older pending/running stay; the
 * attempts of pruned executions go with them. */
static void test_keep_per_job(void **state)
{
    aster_store *st = open_db("keep");
    char a[ASTER_ID_LEN + 1], b[ASTER_ID_LEN + 1], ids[30][ASTER_ID_LEN + 1];
    char pend[ASTER_ID_LEN + 1], runn[ASTER_ID_LEN + 1];
    aster_time_us now = aster_time_now();
    aster_pruner *p;
    uint64_t pruned = 0;

    (void)state;
    insert_job(st, "a", a);
    insert_job(st, "b", b);
    add_exec(st, a, ASTER_EXEC_PENDING, now, 0, pend); /* oldest of a */
    add_exec(st, a, ASTER_EXEC_RUNNING, now, 0, runn);
    for (int i = 0; i < 30; i++) {
        add_exec(st, a, i % 3 ? ASTER_EXEC_SUCCEEDED : ASTER_EXEC_FAILED, now, now, ids[i]);
        add_attempt(st, ids[i]);
    }
    for (int i = 0; i < 5; i++)
        add_exec(st, b, ASTER_EXEC_SUCCEEDED, now, now, NULL);

    p = start_pruner(st, NULL, 10);
    assert_int_equal(aster_pruner_run_once(p, &pruned), 0);
    assert_int_equal(pruned, 20);
    /* 10 newest + the pending and the running one */
    assert_int_equal(count_execs(st, a), 12);
    assert_int_equal(count_execs(st, b), 5);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(exec_exists(st, ids[i]), i >= 20);
        assert_int_equal(count_attempts(st, ids[i]), i >= 20 ? 1 : 0);
    }
    assert_true(exec_exists(st, pend));
    assert_true(exec_exists(st, runn));

    /* Idempotent; then new executions of a are visited again (watermark). */
    assert_int_equal(aster_pruner_run_once(p, &pruned), 0);
    assert_int_equal(pruned, 0);
    for (int i = 0; i < 4; i++)
        add_exec(st, a, ASTER_EXEC_SUCCEEDED, now, now, NULL);
    assert_int_equal(aster_pruner_run_once(p, &pruned), 0);
    assert_int_equal(pruned, 4);
    assert_int_equal(count_execs(st, a), 12);
    for (int i = 0; i < 30; i++)
        assert_int_equal(exec_exists(st, ids[i]), i >= 24);
    aster_pruner_stop(p);
    aster_store_close(st);
}

/* Executions and alerts older than max_age go; recent ones, pending and
 * running executions, executions that finished recently, and alerts still
 * pending delivery stay. */
static void test_max_age(void **state)
{
    aster_store *st = open_db("age");
    char j[ASTER_ID_LEN + 1], old1[ASTER_ID_LEN + 1], old2[ASTER_ID_LEN + 1];
    char oldpend[ASTER_ID_LEN + 1], oldrun[ASTER_ID_LEN + 1], lateend[ASTER_ID_LEN + 1];
    char recent[ASTER_ID_LEN + 1], skipped[ASTER_ID_LEN + 1];
    char al_old[ASTER_ID_LEN + 1], al_oldpend[ASTER_ID_LEN + 1], al_new[ASTER_ID_LEN + 1];
    aster_time_us now = aster_time_now(), old = now - 40 * DAY_US;
    aster_metrics *m = aster_metrics_new(NULL, NULL, 0);
    aster_pruner *p;
    uint64_t pruned = 0;
    char *text;

    (void)state;
    insert_job(st, "j", j);
    add_exec(st, j, ASTER_EXEC_SUCCEEDED, old, old, old1);
    add_exec(st, j, ASTER_EXEC_FAILED, old, old + 1, old2);
    add_attempt(st, old2);
    add_exec(st, j, ASTER_EXEC_SKIPPED, old, 0, skipped);
    add_exec(st, j, ASTER_EXEC_PENDING, old, 0, oldpend);
    add_exec(st, j, ASTER_EXEC_RUNNING, old, 0, oldrun);
    add_exec(st, j, ASTER_EXEC_FAILED, old, now - DAY_US, lateend);
    add_exec(st, j, ASTER_EXEC_SUCCEEDED, now - DAY_US, now - DAY_US, recent);
    add_alert(st, j, "delivered", old, al_old);
    add_alert(st, j, "pending", old, al_oldpend);
    add_alert(st, j, "failed", now - DAY_US, al_new);

    p = start_pruner(st, m, 0); /* defaults: 30 days, 1000 per job */
    assert_int_equal(aster_pruner_run_once(p, &pruned), 0);
    assert_int_equal(pruned, 4); /* old1, old2, skipped, al_old */
    assert_false(exec_exists(st, old1));
    assert_false(exec_exists(st, old2));
    assert_int_equal(count_attempts(st, old2), 0);
    assert_false(exec_exists(st, skipped));
    assert_true(exec_exists(st, oldpend));
    assert_true(exec_exists(st, oldrun));
    assert_true(exec_exists(st, lateend));
    assert_true(exec_exists(st, recent));
    assert_false(alert_exists(st, j, al_old));
    assert_true(alert_exists(st, j, al_oldpend));
    assert_true(alert_exists(st, j, al_new));
    aster_pruner_stop(p);

    text = aster_metrics_render(m, &(aster_metrics_gauges){0});
    assert_non_null(strstr(text, "aster_history_pruned_total 4"));
    aster_free(text);
    aster_metrics_free(m);
    aster_store_close(st);
}

/* Deletes go in batches of at most `max` rows; a run drains them all. */
static void test_batches(void **state)
{
    aster_store *st = open_db("batch");
    char j[ASTER_ID_LEN + 1];
    aster_time_us now = aster_time_now(), old = now - 40 * DAY_US;
    aster_err err = {0};
    aster_pruner *p;
    uint64_t pruned = 0;
    size_t d = 0;

    (void)state;
    insert_job(st, "j", j);
    for (int i = 0; i < 1300; i++)
        add_exec(st, j, ASTER_EXEC_SUCCEEDED, old, old, NULL);
    assert_int_equal(aster_store_prune_execs_before(st, now - DAY_US, 500, &d, &err), 0);
    assert_int_equal(d, 500);
    assert_int_equal(aster_store_prune_execs_keep(st, j, 100, 300, &d, &err), 0);
    assert_int_equal(d, 300);
    /* bad arguments */
    assert_int_equal(aster_store_prune_execs_keep(st, j, 0, 300, &d, &err), ASTER_EINVAL);
    aster_err_clear(&err);
    assert_int_equal(aster_store_prune_execs_before(st, now, 0, &d, &err), ASTER_EINVAL);
    aster_err_clear(&err);
    assert_int_equal(aster_store_prune_alerts_before(st, now, ASTER_STORE_MAX_PAGE + 1, &d, &err),
                     ASTER_EINVAL);
    aster_err_clear(&err);

    p = start_pruner(st, NULL, 0);
    assert_int_equal(aster_pruner_run_once(p, &pruned), 0);
    assert_int_equal(pruned, 500);
    assert_int_equal(count_execs(st, j), 0);
    aster_pruner_stop(p);
    aster_store_close(st);
}

/* The thread runs by itself every interval, and stop wakes it. */
static void test_thread(void **state)
{
    aster_store *st = open_db("thread");
    char j[ASTER_ID_LEN + 1];
    aster_time_us now = aster_time_now();
    aster_pruner_opts o = {.store = st, .interval_ms = 50, .per_job = 3};
    aster_pruner *p = NULL;
    aster_err err = {0};

    (void)state;
    insert_job(st, "j", j);
    for (int i = 0; i < 10; i++)
        add_exec(st, j, ASTER_EXEC_SUCCEEDED, now, now, NULL);
    assert_int_equal(aster_pruner_start(&o, &p, &err), 0);
    for (int i = 0; i < 200 && count_execs(st, j) != 3; i++)
        usleep(10 * 1000);
    assert_int_equal(count_execs(st, j), 3);
    aster_pruner_stop(p);
    aster_pruner_stop(NULL);
    o.per_job = -1;
    assert_int_equal(aster_pruner_start(&o, &p, &err), ASTER_EINVAL);
    aster_store_close(st);
}

/* The watermark queries themselves. */
static void test_jobs_after(void **state)
{
    aster_store *st = open_db("jobsafter");
    char a[ASTER_ID_LEN + 1], b[ASTER_ID_LEN + 1], c[ASTER_ID_LEN + 1], mark[ASTER_ID_LEN + 1];
    aster_time_us now = aster_time_now();
    aster_err err = {0};
    char *ids = NULL;
    size_t n = 0;

    (void)state;
    insert_job(st, "a", a);
    insert_job(st, "b", b);
    insert_job(st, "c", c);
    assert_int_equal(aster_store_exec_max_id(st, mark, &err), 0);
    assert_string_equal(mark, "");
    add_exec(st, a, ASTER_EXEC_SUCCEEDED, now, now, NULL);
    /* No watermark: every job. */
    assert_int_equal(aster_store_exec_jobs_after(st, NULL, NULL, 2, &ids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ids, a);
    assert_string_equal(ids + ASTER_ID_LEN + 1, b);
    aster_free(ids);
    assert_int_equal(aster_store_exec_jobs_after(st, NULL, b, 2, &ids, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids, c);
    aster_free(ids);
    assert_int_equal(aster_store_exec_max_id(st, mark, &err), 0);
    add_exec(st, c, ASTER_EXEC_SUCCEEDED, now, now, NULL);
    add_exec(st, c, ASTER_EXEC_SUCCEEDED, now, now, NULL);
    assert_int_equal(aster_store_exec_jobs_after(st, mark, NULL, 10, &ids, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids, c);
    aster_free(ids);
    aster_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_per_job), cmocka_unit_test(test_max_age),
        cmocka_unit_test(test_batches),      cmocka_unit_test(test_thread),
        cmocka_unit_test(test_jobs_after),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
