/* migrate.c — `aster migrate`: create or upgrade the schema, then exit. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "store/store.h"

int aster_cli_migrate(int argc, char **argv)
{
    aster_config cfg;
    aster_logger lg;
    aster_err err = {0};
    aster_store *st = NULL;
    int from = 0, to = 0;
    int rc = aster_cli_setup(ASTER_CMD_MIGRATE, argc, argv, &cfg, &lg);

    if (rc) {
        rc = rc < 0 ? 0 : rc;
        goto out;
    }
    aster_store_opts sopts = {.exclusive = true, .migrate = false};
    rc = 1;
    if (aster_store_open(cfg.store, &sopts, &st, &err) ||
        aster_store_migrate(st, &from, &to, &err)) {
        aster_cli_print_err(&err);
        goto out;
    }
    const aster_kv kv[] = {ASTER_KV_STR("store", aster_store_backend(st)),
                           ASTER_KV_INT("from", from), ASTER_KV_INT("to", to)};
    aster_log(&lg, ASTER_LOG_INFO, "migrate", from == to ? "schema up to date" : "schema migrated",
              kv, ASTER_NELEM(kv));
    printf("schema version %d%s\n", to, from == to ? " (up to date)" : "");
    rc = 0;
out:
    aster_store_close(st);
    aster_config_fini(&cfg);
    return rc;
}
