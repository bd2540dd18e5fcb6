/* main.c — subcommand dispatch.  Everything else lives in src/cli/. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (!cmd || !strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
        return aster_cli_help(cmd && !strcmp(cmd, "help") && argc > 2 ? argv[2] : NULL);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("aster %s\n", ASTER_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "serve"))
        return aster_cli_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "api"))
        return aster_cli_api(argc - 1, argv + 1);
    if (!strcmp(cmd, "scheduler"))
        return aster_cli_scheduler(argc - 1, argv + 1);
    if (!strcmp(cmd, "worker"))
        return aster_cli_worker(argc - 1, argv + 1);
    if (!strcmp(cmd, "migrate"))
        return aster_cli_migrate(argc - 1, argv + 1);
    if (!strcmp(cmd, "cron"))
        return aster_cli_cron(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s' (see 'aster help')\n", cmd);
    return 2;
}
