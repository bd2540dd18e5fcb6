#include "cli/common.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

void aster_cli_print_err(const aster_err *err)
{
    if (err->field[0])
        fprintf(stderr, "error: %s: %s\n", err->field, err->msg);
    else
        fprintf(stderr, "error: %s\n", err->msg);
}

int aster_cli_setup(unsigned cmd, int argc, char **argv, aster_config *cfg, aster_logger *lg)
{
    aster_err err = {0};
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            memset(cfg, 0, sizeof(*cfg));
            aster_cli_help(argv[0]);
            return -1;
        }
    if (aster_config_load(cfg, cmd, argc, argv, &err)) {
        aster_cli_print_err(&err);
        return 2;
    }
    aster_log_init(lg, (aster_log_level)cfg->log_level, (aster_log_format)cfg->log_format, 2);
    return 0;
}
