/* routes.c — every route the server has.  docs/openapi.yaml lists the same
 * set (a test checks both ways). */
#include "api/api_int.h"

const aster_route aster_routes[] = {
    {"GET", "/healthz", aster_h_healthz, ROUTE_OPEN},
    {"GET", "/readyz", aster_h_readyz, ROUTE_OPEN},
    {"POST", "/api/v1/jobs", aster_h_job_create, 0},
    {"GET", "/api/v1/jobs", aster_h_job_list, 0},
    {"GET", "/api/v1/jobs/{id}", aster_h_job_get, 0},
    {"PUT", "/api/v1/jobs/{id}", aster_h_job_replace, 0},
    {"PATCH", "/api/v1/jobs/{id}", aster_h_job_patch, 0},
    {"DELETE", "/api/v1/jobs/{id}", aster_h_job_delete, 0},
    {"POST", "/api/v1/jobs/{id}/trigger", aster_h_job_trigger, 0},
    {"POST", "/api/v1/jobs/{id}/pause", aster_h_job_pause, 0},
    {"POST", "/api/v1/jobs/{id}/resume", aster_h_job_resume, 0},
    {"GET", "/api/v1/jobs/{id}/executions", aster_h_job_executions, 0},
    {"GET", "/api/v1/executions", aster_h_exec_list, 0},
    {"GET", "/api/v1/executions/{id}", aster_h_exec_get, 0},
    {"GET", "/api/v1/schedule/preview", aster_h_schedule_preview, 0},
    {"GET", "/api/v1/alerts", aster_h_alert_list, 0},
    {"GET", "/api/v1/stats", aster_h_stats, 0},
    {"GET", "/api/v1/jobs/{id}/alerts", aster_h_job_alerts, 0},
    {"GET", "/metrics", aster_h_metrics, ROUTE_OPEN},
};

const size_t aster_nroutes = ASTER_NELEM(aster_routes);
_Static_assert(ASTER_NELEM(aster_routes) <= ASTER_MAX_ROUTES, "raise ASTER_MAX_ROUTES");
