/* req.c — request helpers shared by the handlers: the JSON body, query
 * parameters with their bounds, and the job named by the path. */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "util/uuid.h"

#define DEFAULT_PAGE 50

static int content_is_json(const aster_req *req)
{
    const char *ct =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct)
        return 0;
    size_t n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ')
        n--;
    /* application/json, and any application/...+json (merge-patch+json). */
    if (n == 16 && !strncasecmp(ct, "application/json", 16))
        return 1;
    return n > 17 && !strncasecmp(ct, "application/", 12) && !strncasecmp(ct + n - 5, "+json", 5);
}

/* Parses the body as a JSON object.  On failure fills `resp` and returns
 * NULL. */
json_t *aster_req_body_json(aster_req *req, aster_resp *resp)
{
    json_error_t jerr;
    json_t *doc;

    if (!content_is_json(req)) {
        aster_resp_error(resp, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", NULL,
                         "the body must be JSON (Content-Type: application/json)");
        return NULL;
    }
    if (!req->body || !req->body_len) {
        aster_resp_error(resp, MHD_HTTP_BAD_REQUEST, "invalid", NULL, "the body is empty");
        return NULL;
    }
    /* Duplicate keys are ambiguous; jansson rejects invalid UTF-8 and NUL
     * (\u0000) in strings by default, and integers beyond int64. */
    doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        aster_resp_error(resp, MHD_HTTP_BAD_REQUEST, "invalid", NULL,
                         "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                         jerr.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        aster_resp_error(resp, MHD_HTTP_BAD_REQUEST, "invalid", NULL,
                         "the body must be a JSON object");
        return NULL;
    }
    if (req->api->opts.compat) {
        aster_err err = {0};
        if (aster_compat_job_fields(doc, &err)) {
            json_decref(doc);
            aster_resp_err(resp, &err);
            return NULL;
        }
    }
    return doc;
}

/* Query "limit": 1..max, default `def`. */
int aster_req_limit(aster_req *req, aster_resp *resp, int *out)
{
    const char *s = aster_req_query(req, "limit");
    char *end;
    long n;
    *out = DEFAULT_PAGE;
    if (!s)
        return 0;
    n = strtol(s, &end, 10);
    if (!*s || *end || n < 1 || n > ASTER_STORE_MAX_PAGE) {
        aster_resp_error(resp, MHD_HTTP_BAD_REQUEST, "invalid", "limit", "must be an integer 1-%d",
                         ASTER_STORE_MAX_PAGE);
        return -1;
    }
    *out = (int)n;
    return 0;
}

int aster_req_cursor(aster_req *req, aster_resp *resp, const char **out)
{
    const char *s = aster_req_query(req, "cursor");
    *out = NULL;
    if (s && *s && !aster_uuid_is_uuid(s)) {
        aster_resp_error(resp, MHD_HTTP_BAD_REQUEST, "invalid", "cursor",
                         "is not a cursor returned as next_cursor");
        return -1;
    }
    *out = s && *s ? s : NULL;
    return 0;
}

int aster_req_bool(aster_req *req, aster_resp *resp, const char *key, int *out)
{
    const char *s = aster_req_query(req, key);
    *out = -1;
    if (!s)
        return 0;
    if (!strcmp(s, "true") || !strcmp(s, "1"))
        *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "0"))
        *out = 0;
    else {
        aster_resp_error(resp, MHD_HTTP_BAD_REQUEST, "invalid", key, "must be true or false");
        return -1;
    }
    return 0;
}

int aster_req_time(aster_req *req, aster_resp *resp, const char *key, aster_time_us *out)
{
    const char *s = aster_req_query(req, key);
    aster_err err = {0};
    *out = 0;
    if (!s)
        return 0;
    if (aster_time_parse_rfc3339(s, key, out, &err)) {
        aster_resp_err(resp, &err);
        return -1;
    }
    return 0;
}

int aster_req_status(aster_req *req, aster_resp *resp, int *out)
{
    const char *s = aster_req_query(req, "status");
    *out = -1;
    if (!s)
        return 0;
    *out = aster_exec_status_parse(s);
    if (*out < 0) {
        aster_resp_error(resp, MHD_HTTP_BAD_REQUEST, "invalid", "status",
                         "'%s' is not one of pending, running, succeeded, failed, timed_out, "
                         "skipped, missed, cancelled",
                         s);
        return -1;
    }
    return 0;
}

/* Loads the job named by the path's {id} (an id or a name). */
int aster_req_load_job(aster_req *req, aster_resp *resp, aster_job *job)
{
    aster_err err = {0};
    aster_job_init(job);
    if (aster_store_job_get(req->api->opts.store, req->params[0], job, &err)) {
        if (err.code == ASTER_ENOENT)
            aster_resp_error(resp, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no job '%s'",
                             req->params[0]);
        else
            aster_resp_err(resp, &err);
        aster_job_fini(job);
        return -1;
    }
    return 0;
}

int aster_page_fetch(int limit)
{
    /* One more than shown tells whether a next page exists; at the store's
     * cap, a full page is taken to mean "maybe more". */
    return limit < ASTER_STORE_MAX_PAGE ? limit + 1 : limit;
}

const char *aster_page_cursor(const char *last_id, size_t fetched, int limit)
{
    int more =
        fetched > (size_t)limit || (fetched == (size_t)limit && limit == ASTER_STORE_MAX_PAGE);
    return more ? last_id : NULL;
}

void aster_resp_page(aster_resp *resp, json_t *items, const char *last_id, size_t fetched,
                     int limit)
{
    const char *next = aster_page_cursor(last_id, fetched, limit);
    aster_resp_json(resp, MHD_HTTP_OK,
                    json_pack("{s:o,s:o}", "items", items, "next_cursor",
                              next ? json_string(next) : json_null()));
}
