/* common.h — what the subcommands share: configuration and logging set-up. */
#ifndef ASTER_CLI_COMMON_H
#define ASTER_CLI_COMMON_H

#include "util/config.h"
#include "util/log.h"

/* Loads the configuration of `cmd` and sets up `lg` from it.  On a usage
 * error prints one line "error: FIELD: MSG" to stderr and returns 2 (the
 * exit code); with --help prints the command's help and returns -1 (exit
 * 0).  `cfg` must be fini'ed by the caller in every case. */
int aster_cli_setup(unsigned cmd, int argc, char **argv, aster_config *cfg, aster_logger *lg);

/* Prints "error: FIELD: MSG" (or "error: MSG") as one line to stderr. */
void aster_cli_print_err(const aster_err *err);

#endif
