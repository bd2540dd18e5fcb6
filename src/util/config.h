/* config.h — settings: one table of flag, ASTER_* variable, default, bounds
 * and help, from which flags and the environment are parsed and the help
 * text is printed (docs/configuration.md mirrors it; a test checks that).
 * A flag wins over its variable, which wins over the default. */
#ifndef ASTER_UTIL_CONFIG_H
#define ASTER_UTIL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"

/* Which subcommands a setting applies to (bit mask). */
#define ASTER_CMD_SERVE     0x1u
#define ASTER_CMD_MIGRATE   0x2u
#define ASTER_CMD_API       0x4u
#define ASTER_CMD_SCHEDULER 0x8u
#define ASTER_CMD_WORKER    0x10u

typedef struct aster_config {
    char *listen;               /* HOST:PORT */
    char *store;                /* sqlite:PATH | postgres://... */
    int log_level;              /* aster_log_level */
    int log_format;             /* aster_log_format; -1 before resolution = auto */
    int64_t concurrency;        /* executions in flight */
    bool insecure;              /* allow non-loopback without API keys */
    char *api_keys;             /* comma-separated; secret: never logged */
    char *api_keys_file;        /* one key a line */
    bool allow_commands;        /* command jobs may be created and run */
    char *alert_webhook;        /* global alert webhook URL */
    char *alert_secret;         /* HMAC secret: never logged */
    int64_t prune_interval_ms;  /* history pruning period */
    int64_t history_max_age_ms; /* executions and alerts kept this long */
    int64_t history_per_job;    /* executions kept per job */
    bool compat;                /* the replaced systems' routes and field aliases */
    int64_t max_body;           /* request body cap, bytes */
    int64_t http_threads;       /* libmicrohttpd thread pool size */
    int64_t shutdown_ms;        /* grace for in-flight work on SIGTERM */
    int64_t leader_lease_ms;    /* scheduler leadership lease */
    int64_t heartbeat_ms;       /* worker heartbeat period */
    int64_t dead_ms;            /* a worker silent this long is dead */
} aster_config;

/* Parses argv (argv[0] is the subcommand name) and the environment into
 * `cfg` (caller's struct; fini with aster_config_fini, also on failure).
 * Positional arguments are not allowed.  On a bad flag or value returns
 * ASTER_EINVAL with err->field the flag ("--concurrency") or variable. */
ASTER_MUST_CHECK
int aster_config_load(aster_config *cfg, unsigned cmd, int argc, char **argv, aster_err *err);
void aster_config_fini(aster_config *cfg);

/* Prints the settings of `cmd` as "  --flag VALUE   ASTER_VAR (default) help". */
void aster_config_print_help(FILE *f, unsigned cmd);

#endif
