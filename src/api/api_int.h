/* api_int.h — what handlers and the router share; private to src/api/. */
#ifndef ASTER_API_INT_H
#define ASTER_API_INT_H

#include <jansson.h>
#include <stdatomic.h>
#include <microhttpd.h>

#include "api/api.h"
#include "util/jsonw.h"

#define ASTER_MAX_PATH_PARAMS 2

struct aster_api {
    aster_api_opts opts;
    struct MHD_Daemon *mhd;
    int port;
    atomic_int active; /* requests between first callback and completion */
};

typedef struct aster_req {
    aster_api *api;
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    const char *params[ASTER_MAX_PATH_PARAMS]; /* {id} captures, NUL-terminated */
    const char *body;                          /* NUL-terminated; NULL when none */
    size_t body_len;
    aster_key_access access;
} aster_req;

typedef struct aster_resp {
    int status;
    json_t *json;             /* owned; serialised as the body when set */
    char *text;               /* owned; raw body when json is NULL */
    const char *content_type; /* static; for text */
    char location[256];
    char allow[64];
} aster_resp;

typedef void (*aster_handler)(aster_req *req, aster_resp *resp);

#define ROUTE_OPEN 0x1u /* no API key needed (/healthz, /readyz) */

typedef struct aster_route {
    const char *method;
    const char *pattern; /* "/api/v1/jobs/{id}": {x} matches one segment */
    aster_handler fn;
    unsigned flags;
} aster_route;

#define ASTER_MAX_ROUTES 128 /* routes.c has fewer; checked by a static assert there */

extern const aster_route aster_routes[];
extern const size_t aster_nroutes;

/* compat.c: the routes of the systems Aster replaces (answered only when
 * compatibility is on), and the one translation of their job fields. */
extern const aster_route aster_compat_routes[];
extern const size_t aster_compat_nroutes;
/* Rewrites old field names in the job document `doc` into Aster's, in
 * place, before Aster's validation; ASTER_EINVAL naming both fields when a
 * document mixes an alias with its canonical field or two aliases. */
ASTER_MUST_CHECK
int aster_compat_job_fields(json_t *doc, aster_err *err);

/* Response builders.  json: takes ownership of `body`; jw: takes the text
 * out of `w`. */
void aster_resp_json(aster_resp *resp, int status, json_t *body);
void aster_resp_jw(aster_resp *resp, int status, aster_jw *w);
void aster_resp_error(aster_resp *resp, int status, const char *code, const char *field,
                      const char *fmt, ...) ASTER_PRINTF(5, 6);
/* Maps an aster_err to its HTTP status and JSON error. */
void aster_resp_err(aster_resp *resp, const aster_err *err);

/* Request helpers (req.c).  Each returns 0, or fills `resp` with a 4xx
 * naming the parameter and returns -1 (NULL for the body). */
json_t *aster_req_body_json(aster_req *req, aster_resp *resp);   /* new reference */
int aster_req_limit(aster_req *req, aster_resp *resp, int *out); /* "limit", default 50 */
int aster_req_cursor(aster_req *req, aster_resp *resp, const char **out);
int aster_req_bool(aster_req *req, aster_resp *resp, const char *key, int *out); /* -1 absent */
int aster_req_time(aster_req *req, aster_resp *resp, const char *key, aster_time_us *out);
int aster_req_status(aster_req *req, aster_resp *resp, int *out); /* -1 absent */
/* The job named by the path's {id} (an id or a name) into *job (init'ed
 * here; fini it after a 0 return). */
int aster_req_load_job(aster_req *req, aster_resp *resp, aster_job *job);

/* Pagination: ask the store for aster_page_fetch(limit) rows, show at most
 * `limit`, and answer {"items", "next_cursor"} (takes `items`). */
int aster_page_fetch(int limit);
void aster_resp_page(aster_resp *resp, json_t *items, const char *last_id, size_t fetched,
                     int limit);
/* The next_cursor of such a page: `last_id` when more may follow, or NULL. */
const char *aster_page_cursor(const char *last_id, size_t fetched, int limit);

/* Query-string value, or NULL. */
const char *aster_req_query(const aster_req *req, const char *key);

/* Handlers. */
void aster_h_healthz(aster_req *req, aster_resp *resp);
void aster_h_readyz(aster_req *req, aster_resp *resp);
void aster_h_job_create(aster_req *req, aster_resp *resp);
void aster_h_job_list(aster_req *req, aster_resp *resp);
void aster_h_job_get(aster_req *req, aster_resp *resp);
void aster_h_job_replace(aster_req *req, aster_resp *resp);
void aster_h_job_patch(aster_req *req, aster_resp *resp);
void aster_h_job_delete(aster_req *req, aster_resp *resp);
void aster_h_job_pause(aster_req *req, aster_resp *resp);
void aster_h_job_resume(aster_req *req, aster_resp *resp);
void aster_h_job_trigger(aster_req *req, aster_resp *resp);
void aster_h_job_executions(aster_req *req, aster_resp *resp);
void aster_h_exec_list(aster_req *req, aster_resp *resp);
void aster_h_exec_get(aster_req *req, aster_resp *resp);
void aster_h_schedule_preview(aster_req *req, aster_resp *resp);
void aster_h_metrics(aster_req *req, aster_resp *resp);
void aster_h_stats(aster_req *req, aster_resp *resp);
void aster_h_alert_list(aster_req *req, aster_resp *resp);
void aster_h_job_alerts(aster_req *req, aster_resp *resp);

#endif
