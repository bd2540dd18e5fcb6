/* help.c — `aster help [COMMAND]`. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/config.h"

static const char overview[] =
    "aster — a job scheduler\n"
    "\n"
    "usage: aster COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  serve      run the API, scheduler and executors in one process\n"
    "  api        run the REST API only (PostgreSQL store; any number)\n"
    "  scheduler  create fires, one elected leader at a time (PostgreSQL store)\n"
    "  worker     claim and run executions (PostgreSQL store; any number)\n"
    "  migrate    create or upgrade the database schema\n"
    "  cron next  print the next fire times of a schedule\n"
    "  version    print the version\n"
    "  help [COMMAND]  show help (also --help)\n"
    "\n"
    "Settings come from flags and ASTER_* environment variables; a flag wins.\n"
    "See 'aster help serve' and docs/configuration.md.\n";

static const char cron_help[] =
    "usage: aster cron next [--tz ZONE] [--from TIME] [--count N]\n"
    "                       [--dst-gap auto|shift|skip] [--dst-overlap auto|first|last|both] EXPR\n"
    "\n"
    "Prints the next N fire instants of EXPR strictly after --from (default now),\n"
    "one a line as YYYY-MM-DDTHH:MM:SSZ (UTC).  EXPR is read as wall-clock time in\n"
    "--tz (an IANA zone, default UTC).  --count is 1-1000 (default 5).\n"
    "See docs/schedules.md for the syntax and the DST rule.\n";

int aster_cli_help(const char *cmd)
{
    if (!cmd) {
        fputs(overview, stdout);
        return 0;
    }
    if (!strcmp(cmd, "serve")) {
        printf("usage: aster serve [OPTIONS]\n\noptions:\n");
        aster_config_print_help(stdout, ASTER_CMD_SERVE);
        return 0;
    }
    static const struct {
        const char *name;
        unsigned cmd;
    } roles[] = {
        {"api", ASTER_CMD_API}, {"scheduler", ASTER_CMD_SCHEDULER}, {"worker", ASTER_CMD_WORKER}};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (!strcmp(cmd, roles[i].name)) {
            printf("usage: aster %s [OPTIONS]\n\noptions:\n", roles[i].name);
            aster_config_print_help(stdout, roles[i].cmd);
            return 0;
        }
    if (!strcmp(cmd, "migrate")) {
        printf("usage: aster migrate [OPTIONS]\n\noptions:\n");
        aster_config_print_help(stdout, ASTER_CMD_MIGRATE);
        return 0;
    }
    if (!strcmp(cmd, "cron")) {
        fputs(cron_help, stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "help")) {
        fputs(overview, stdout);
        return 0;
    }
    fprintf(stderr, "error: unknown command '%s' (see 'aster help')\n", cmd);
    return 2;
}
