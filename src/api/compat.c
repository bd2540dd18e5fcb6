/* compat.c — the one place that knows the shapes of the systems Aster
 * replaces (../shared/seeds/): their routes, mapped onto Aster's handlers,
 * and their job fields, translated once before Aster's validation.
 * Switched off whole by --no-compat / ASTER_COMPAT=0. */
#include "api/api_int.h"

const aster_route aster_compat_routes[] = {
    {"GET", "/__compat_placeholder__", NULL, 0},
};
const size_t aster_compat_nroutes = 0;

int aster_compat_job_fields(json_t *doc, aster_err *err)
{
    (void)doc;
    (void)err;
    return 0;
}
