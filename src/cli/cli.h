/* cli.h — the subcommands of the `aster` binary.
 *
 * Each takes the arguments after its own name (argv[0] is the subcommand
 * name) and returns the process exit code: 0 success, 1 runtime failure,
 * 2 usage error (bad flag or value: exactly one line on stderr). */
#ifndef ASTER_CLI_H
#define ASTER_CLI_H

int aster_cli_serve(int argc, char **argv);     /* every role in one process */
int aster_cli_api(int argc, char **argv);       /* the REST API only */
int aster_cli_scheduler(int argc, char **argv); /* creates fires, when elected */
int aster_cli_worker(int argc, char **argv);    /* claims and runs executions */
int aster_cli_migrate(int argc, char **argv);
int aster_cli_cron(int argc, char **argv); /* `aster cron next ...` */

/* Prints the help of `cmd` (NULL: the overview) to stdout; returns 0, or 2
 * when there is no such command. */
int aster_cli_help(const char *cmd);

#endif
