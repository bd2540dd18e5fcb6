#include "util/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/mem.h"
#include "util/time.h"

typedef enum { T_STR, T_INT, T_BOOL, T_ENUM, T_DUR } setting_type;

typedef struct setting {
    const char *flag; /* without the leading "--" */
    const char *env;
    setting_type type;
    size_t off;
    const char *def; /* text form, parsed like user input */
    int64_t min, max;
    const char *choices; /* T_ENUM: "a|b|c", index stored */
    unsigned cmds;
    const char *help;
} setting;

#define OFF(f) offsetof(aster_config, f)
#define ROLES  (ASTER_CMD_SERVE | ASTER_CMD_API | ASTER_CMD_SCHEDULER | ASTER_CMD_WORKER)
#define ALL    (ROLES | ASTER_CMD_MIGRATE)
#define API    (ASTER_CMD_SERVE | ASTER_CMD_API)
#define SCHED  (ASTER_CMD_SERVE | ASTER_CMD_SCHEDULER)
#define WORK   (ASTER_CMD_SERVE | ASTER_CMD_WORKER)

static const setting settings[] = {
    {"listen", "ASTER_LISTEN", T_STR, OFF(listen), "127.0.0.1:8080", 0, 0, NULL, ROLES,
     "address the HTTP API listens on (HOST:PORT; port 0 picks one)"},
    {"store", "ASTER_STORE", T_STR, OFF(store), "sqlite:./aster.db", 0, 0, NULL, ALL,
     "database URL: sqlite:PATH or postgres://..."},
    {"log-level", "ASTER_LOG_LEVEL", T_ENUM, OFF(log_level), "info", 0, 0, "debug|info|warn|error",
     ALL, "lowest level logged"},
    {"log-format", "ASTER_LOG_FORMAT", T_ENUM, OFF(log_format), NULL, 0, 0, "json|text", ALL,
     "log line format (default: json when stderr is not a terminal, else text)"},
    {"concurrency", "ASTER_CONCURRENCY", T_INT, OFF(concurrency), "1000", 1, 100000, NULL, WORK,
     "executions in flight at most"},
    {"insecure", "ASTER_INSECURE", T_BOOL, OFF(insecure), "false", 0, 0, NULL, ROLES,
     "allow listening on a non-loopback address without API keys"},
    {"api-keys", "ASTER_API_KEYS", T_STR, OFF(api_keys), NULL, 0, 0, NULL, API,
     "API keys, comma-separated; 'ro:KEY' is read-only"},
    {"api-keys-file", "ASTER_API_KEYS_FILE", T_STR, OFF(api_keys_file), NULL, 0, 0, NULL, API,
     "file of API keys, one a line; 'ro:KEY' is read-only"},
    {"allow-commands", "ASTER_ALLOW_COMMANDS", T_BOOL, OFF(allow_commands), "false", 0, 0, NULL,
     (API | ASTER_CMD_WORKER), "allow jobs that run local commands"},
    {"alert-webhook", "ASTER_ALERT_WEBHOOK", T_STR, OFF(alert_webhook), NULL, 0, 0, NULL, SCHED,
     "URL alerts are POSTed to when their job names none"},
    {"alert-webhook-secret", "ASTER_ALERT_WEBHOOK_SECRET", T_STR, OFF(alert_secret), NULL, 0, 0,
     NULL, SCHED, "secret for the X-Aster-Signature HMAC-SHA256 of alert bodies"},
    {"history-prune-interval", "ASTER_HISTORY_PRUNE_INTERVAL", T_DUR, OFF(prune_interval_ms), "60s",
     1000, 86400000, NULL, SCHED, "how often history is pruned (duration)"},
    {"history-max-age", "ASTER_HISTORY_MAX_AGE", T_DUR, OFF(history_max_age_ms), "30d", 60000,
     INT64_C(3650) * 86400000, NULL, SCHED,
     "executions and alerts older than this are pruned (duration)"},
    {"history-per-job", "ASTER_HISTORY_PER_JOB", T_INT, OFF(history_per_job), "1000", 1, 10000000,
     NULL, SCHED, "executions kept per job at most"},
    {"compat", "ASTER_COMPAT", T_BOOL, OFF(compat), "true", 0, 0, NULL, API,
     "answer the routes and job fields of the systems Aster replaces (--no-compat: off)"},
    {"max-body", "ASTER_MAX_BODY", T_INT, OFF(max_body), "1048576", 1024, 64 << 20, NULL, API,
     "largest request body accepted, in bytes"},
    {"http-threads", "ASTER_HTTP_THREADS", T_INT, OFF(http_threads), "0", 0, 256, NULL, API,
     "HTTP server threads (0: 32 per core, at most 256)"},
    {"shutdown-timeout-ms", "ASTER_SHUTDOWN_TIMEOUT_MS", T_INT, OFF(shutdown_ms), "1500", 0, 600000,
     NULL, ROLES, "grace for in-flight requests on SIGINT/SIGTERM, in ms"},
    {"leader-lease", "ASTER_LEADER_LEASE", T_DUR, OFF(leader_lease_ms), "5s", 1000, 600000, NULL,
     SCHED, "scheduler leadership lease: a standby takes over this long after the leader dies"},
    {"heartbeat-interval", "ASTER_HEARTBEAT_INTERVAL", T_DUR, OFF(heartbeat_ms), "2s", 100, 600000,
     NULL, WORK, "how often a worker records that it is alive (duration)"},
    {"worker-dead-after", "ASTER_WORKER_DEAD_AFTER", T_DUR, OFF(dead_ms), "6s", 500, 3600000, NULL,
     ROLES & ~ASTER_CMD_API,
     "a worker silent this long is dead: its executions are taken back (duration)"},
};

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < ASTER_NELEM(yes); i++) {
        if (!strcasecmp(v, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcasecmp(v, no[i])) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static int enum_index(const char *choices, const char *v)
{
    size_t n = strlen(v);
    int i = 0;
    for (const char *p = choices; *p; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n))
            return i;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

/* Applies text value `v` to setting `s`; `who` names the source for errors. */
static int apply(aster_config *cfg, const setting *s, const char *v, const char *who,
                 aster_err *err)
{
    char *base = (char *)cfg + s->off;

    switch (s->type) {
    case T_STR: {
        char **dst = (char **)(void *)base;
        if (!*v)
            return aster_err_set(err, ASTER_EINVAL, who, "must not be empty");
        aster_free(*dst);
        *dst = aster_strdup(v);
        return 0;
    }
    case T_INT: {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (!*v || *end || errno)
            return aster_err_set(err, ASTER_EINVAL, who, "'%s' is not an integer", v);
        if (n < s->min || n > s->max)
            return aster_err_set(err, ASTER_EINVAL, who, "%lld is out of range %lld-%lld", n,
                                 (long long)s->min, (long long)s->max);
        *(int64_t *)(void *)base = n;
        return 0;
    }
    case T_DUR: {
        int64_t us;
        /* A duration ("90s", "30d") stored in milliseconds; bounds in ms. */
        if (aster_duration_parse(v, who, &us, err))
            return ASTER_EINVAL;
        if (us / 1000 < s->min || us / 1000 > s->max)
            return aster_err_set(err, ASTER_EINVAL, who, "'%s' is out of range", v);
        *(int64_t *)(void *)base = us / 1000;
        return 0;
    }
    case T_BOOL:
        if (parse_bool(v, (bool *)(void *)base))
            return aster_err_set(err, ASTER_EINVAL, who, "'%s' is not true or false", v);
        return 0;
    case T_ENUM: {
        int i = enum_index(s->choices, v);
        if (i < 0)
            return aster_err_set(err, ASTER_EINVAL, who, "'%s' is not one of %s", v, s->choices);
        *(int *)(void *)base = i;
        return 0;
    }
    }
    return 0;
}

static const setting *find_flag(const char *name, size_t len, unsigned cmd)
{
    for (size_t i = 0; i < ASTER_NELEM(settings); i++)
        if ((settings[i].cmds & cmd) && strlen(settings[i].flag) == len &&
            !strncmp(settings[i].flag, name, len))
            return &settings[i];
    return NULL;
}

int aster_config_load(aster_config *cfg, unsigned cmd, int argc, char **argv, aster_err *err)
{
    char who[80];
    int rc = 0;

    memset(cfg, 0, sizeof(*cfg));
    cfg->log_format = -1;
    /* Defaults, then the environment, then flags: later sources win. */
    for (size_t i = 0; i < ASTER_NELEM(settings) && !rc; i++) {
        const setting *s = &settings[i];
        if (s->def)
            rc = apply(cfg, s, s->def, s->flag, err);
        const char *v = getenv(s->env);
        if (!rc && v && (s->cmds & cmd))
            rc = apply(cfg, s, v, s->env, err);
    }
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) || !a[2]) {
            rc = aster_err_set(err, ASTER_EINVAL, a, "unexpected argument");
            break;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const setting *s = find_flag(name, len, cmd);
        const char *v = eq ? eq + 1 : NULL;
        snprintf(who, sizeof(who), "--%.*s", (int)(len < 60 ? len : 60), name);
        /* --no-FLAG turns a boolean off. */
        if (!s && len > 3 && !strncmp(name, "no-", 3) && !eq) {
            s = find_flag(name + 3, len - 3, cmd);
            if (s && s->type == T_BOOL)
                v = "false";
            else
                s = NULL;
        }
        if (!s) {
            rc = aster_err_set(err, ASTER_EINVAL, who, "unknown flag");
            break;
        }
        if (!v && s->type == T_BOOL)
            v = "true";
        if (!v && i + 1 < argc)
            v = argv[++i];
        if (!v) {
            rc = aster_err_set(err, ASTER_EINVAL, who, "needs a value");
            break;
        }
        rc = apply(cfg, s, v, who, err);
    }
    if (!rc && cfg->log_format < 0)
        cfg->log_format = isatty(2) ? ASTER_LOG_TEXT : ASTER_LOG_JSON;
    return rc;
}

void aster_config_fini(aster_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < ASTER_NELEM(settings); i++)
        if (settings[i].type == T_STR) {
            char **p = (char **)(void *)((char *)cfg + settings[i].off);
            aster_free(*p);
            *p = NULL;
        }
}

void aster_config_print_help(FILE *f, unsigned cmd)
{
    for (size_t i = 0; i < ASTER_NELEM(settings); i++) {
        const setting *s = &settings[i];
        char flag[64];
        if (!(s->cmds & cmd))
            continue;
        snprintf(flag, sizeof(flag), "--%s%s", s->flag,
                 s->type == T_BOOL   ? ""
                 : s->type == T_ENUM ? " CHOICE"
                                     : " VALUE");
        fprintf(f, "  %-28s %s\n  %-28s   %s%s%s%s%s%s\n", flag, s->help, "", s->env,
                s->def ? " (default " : "", s->def ? s->def : "", s->def ? ")" : "",
                s->choices ? " one of " : "", s->choices ? s->choices : "");
    }
}
