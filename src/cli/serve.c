/* serve.c — `aster serve`, `aster api`, `aster scheduler`, `aster worker`:
 * one start-up for every role.  `serve` runs them all in one process (on
 * SQLite, alone with its file; on PostgreSQL, beside any other processes);
 * the other three run one role each on a store processes share.
 *
 * Start-up order: configuration, logger, signal mask (before any thread
 * starts, so that only the main thread receives SIGINT/SIGTERM), store,
 * metrics, alerter, engine, pruner, HTTP server.  Shutdown runs it
 * backwards, the HTTP server first so that no change arrives for a stopped
 * engine. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "cron/tz.h"
#include "engine/alert.h"
#include "engine/engine.h"
#include "engine/prune.h"
#include "store/store.h"
#include "util/addr.h"

typedef struct role {
    const char *name; /* the subcommand */
    unsigned cmd;     /* ASTER_CMD_* */
    bool api, schedule, work;
} role;

static const role role_serve = {"serve", ASTER_CMD_SERVE, true, true, true};
static const role role_api = {"api", ASTER_CMD_API, true, false, false};
static const role role_scheduler = {"scheduler", ASTER_CMD_SCHEDULER, false, true, false};
static const role role_worker = {"worker", ASTER_CMD_WORKER, false, false, true};

/* The engine, for callbacks that may run before it exists (the alerter's
 * and pruner's threads start first): NULL reads as "not the leader". */
typedef struct engine_ref {
    _Atomic(aster_engine *) e;
} engine_ref;

static bool leads(void *arg)
{
    return aster_engine_is_leader(atomic_load(&((engine_ref *)arg)->e));
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static int wait_for_signal(void)
{
    sigset_t set;
    int sig = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigwait(&set, &sig);
    return sig;
}

static void block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* A client that hangs up mid-response must not kill the server. */
    signal(SIGPIPE, SIG_IGN);
}

static void job_changed(void *engine, const char *job_id, const aster_job *job)
{
    aster_engine_job_changed(engine, job_id, job);
}

static size_t in_flight(void *engine)
{
    return aster_engine_in_flight(engine);
}

static int run_role(const role *ro, int argc, char **argv)
{
    aster_config cfg;
    aster_logger lg;
    aster_err err = {0};
    aster_addr addr;
    aster_keys *keys = NULL;
    aster_store *st = NULL;
    aster_api *api = NULL;
    aster_engine *engine = NULL;
    aster_metrics *metrics = NULL;
    aster_alerter *alerter = NULL;
    aster_pruner *pruner = NULL;
    engine_ref ref = {NULL};
    char where[80];
    bool shared;
    int rc;

    rc = aster_cli_setup(ro->cmd, argc, argv, &cfg, &lg);
    if (rc) {
        rc = rc < 0 ? 0 : rc;
        goto out;
    }
    rc = 2; /* usage errors until the configuration is known good */
    shared = aster_store_url_caps(cfg.store) & ASTER_STORE_CAP_SHARED;
    if (ro != &role_serve && !shared) {
        aster_err_set(&err, ASTER_EINVAL, "--store",
                      "aster %s needs a store other processes share (postgres://...); "
                      "use aster serve for %s",
                      ro->name, cfg.store);
        goto fail;
    }
    if (ro->work && cfg.dead_ms <= cfg.heartbeat_ms) {
        aster_err_set(&err, ASTER_EINVAL, "--worker-dead-after",
                      "must be longer than --heartbeat-interval (%lld ms)",
                      (long long)cfg.heartbeat_ms);
        goto fail;
    }
    if (aster_addr_parse(cfg.listen, "--listen", &addr, &err) ||
        (ro->api && aster_keys_load(cfg.api_keys, cfg.api_keys_file, &keys, &err)))
        goto fail;
    /* Only the API needs keys: the other roles answer probes and metrics. */
    if (ro->api && !aster_addr_is_loopback(&addr) && !keys && !cfg.insecure) {
        aster_err_set(&err, ASTER_EINVAL, "--listen",
                      "%s is not a loopback address and no API keys are configured "
                      "(set ASTER_API_KEYS or --api-keys-file, or pass --insecure)",
                      cfg.listen);
        goto fail;
    }
    rc = 1; /* runtime failures from here on */
    block_signals();
    /* Exclusive: two serves on one SQLite file would fire every job
     * twice (a shared store ignores it: sharing is its point). */
    aster_store_opts sopts = {.exclusive = true, .migrate = true};
    if (aster_store_open(cfg.store, &sopts, &st, &err))
        goto fail;
    metrics = aster_api_metrics_new();
    if (ro->schedule || ro->work) {
        /* Workers raise the alerts of what they ran; the scheduler leader
         * scans and delivers, once for the whole database. */
        aster_alerter_opts alopts = {.log = &lg,
                                     .store = st,
                                     .metrics = metrics,
                                     .webhook = cfg.alert_webhook,
                                     .secret = cfg.alert_secret,
                                     .active = !shared        ? NULL
                                               : ro->schedule ? leads
                                                              : never,
                                     .active_arg = &ref};
        if (aster_alerter_start(&alopts, &alerter, &err))
            goto fail;
        aster_engine_opts eopts = {.log = &lg,
                                   .store = st,
                                   .concurrency = (size_t)cfg.concurrency,
                                   .metrics = metrics,
                                   .alerter = alerter,
                                   .schedule = ro->schedule,
                                   .work = ro->work,
                                   .elect = shared,
                                   .leader_lease_ms = cfg.leader_lease_ms,
                                   .heartbeat_ms = cfg.heartbeat_ms,
                                   .dead_ms = cfg.dead_ms,
                                   .role = ro->name};
        if (aster_engine_start(&eopts, &engine, &err))
            goto fail;
        atomic_store(&ref.e, engine);
    }
    if (ro->schedule) {
        aster_pruner_opts popts = {.log = &lg,
                                   .store = st,
                                   .metrics = metrics,
                                   .interval_ms = cfg.prune_interval_ms,
                                   .max_age_ms = cfg.history_max_age_ms,
                                   .per_job = cfg.history_per_job,
                                   .active = shared ? leads : NULL,
                                   .active_arg = &ref};
        if (aster_pruner_start(&popts, &pruner, &err))
            goto fail;
    }
    aster_api_opts aopts = {.log = &lg,
                            .store = st,
                            .keys = keys,
                            .max_body = (size_t)cfg.max_body,
                            .threads = (unsigned)cfg.http_threads,
                            .allow_commands = cfg.allow_commands,
                            .compat = ro->api && cfg.compat,
                            .observe_only = !ro->api,
                            .on_job_change = engine ? job_changed : NULL,
                            .in_flight = engine ? in_flight : NULL,
                            .metrics = metrics,
                            .cb_arg = engine};
    if (aster_api_start(&aopts, &addr, &api, &err))
        goto fail;
    {
        const aster_kv kv[] = {ASTER_KV_STR("address", aster_addr_format(&addr, aster_api_port(api),
                                                                         where, sizeof(where))),
                               ASTER_KV_STR("store", aster_store_backend(st)),
                               ASTER_KV_STR("role", ro->name),
                               ASTER_KV_STR("version", ASTER_VERSION),
                               ASTER_KV_INT("api_keys", (int64_t)aster_keys_count(keys))};
        aster_log(&lg, ASTER_LOG_INFO, ro->name, "listening", kv, ASTER_NELEM(kv));
    }
    int sig = wait_for_signal();
    {
        const aster_kv kv[] = {ASTER_KV_STR("signal", sig == SIGINT ? "SIGINT" : "SIGTERM")};
        aster_log(&lg, ASTER_LOG_INFO, ro->name, "shutting down", kv, ASTER_NELEM(kv));
    }
    /* The API first, so that no change arrives for a stopped engine. */
    aster_api_stop(api, cfg.shutdown_ms);
    api = NULL;
    /* The pruner before the engine: it asks the engine who leads. */
    aster_pruner_stop(pruner);
    pruner = NULL;
    atomic_store(&ref.e, NULL);
    aster_engine_stop(engine, cfg.shutdown_ms);
    engine = NULL;
    aster_alerter_stop(alerter);
    alerter = NULL;
    rc = 0;
    aster_log(&lg, ASTER_LOG_INFO, ro->name, "stopped", NULL, 0);
    goto out;
fail:
    if (rc == 2) {
        aster_cli_print_err(&err);
    } else {
        const aster_kv kv[] = {ASTER_KV_STR("field", err.field),
                               ASTER_KV_STR("code", aster_err_name(err.code))};
        aster_log(&lg, ASTER_LOG_ERROR, ro->name, err.msg, kv, ASTER_NELEM(kv));
    }
out:
    aster_api_stop(api, 0);
    aster_pruner_stop(pruner);
    atomic_store(&ref.e, NULL);
    aster_engine_stop(engine, 0);
    aster_alerter_stop(alerter);
    aster_store_close(st);
    aster_metrics_free(metrics);
    aster_keys_free(keys);
    aster_config_fini(&cfg);
    aster_tz_cache_free();
    return rc;
}

int aster_cli_serve(int argc, char **argv)
{
    return run_role(&role_serve, argc, argv);
}

int aster_cli_api(int argc, char **argv)
{
    return run_role(&role_api, argc, argv);
}

int aster_cli_scheduler(int argc, char **argv)
{
    return run_role(&role_scheduler, argc, argv);
}

int aster_cli_worker(int argc, char **argv)
{
    return run_role(&role_worker, argc, argv);
}
