/* h_health.c — liveness and readiness. */
#include "api/api_int.h"

void aster_h_healthz(aster_req *req, aster_resp *resp)
{
    (void)req;
    aster_resp_json(resp, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

/* Ready means the store answers a real round trip now: a load balancer must
 * not send requests that would fail on a lost database. */
void aster_h_readyz(aster_req *req, aster_resp *resp)
{
    aster_err err = {0};
    if (aster_store_ping(req->api->opts.store, &err)) {
        aster_resp_json(resp, MHD_HTTP_SERVICE_UNAVAILABLE,
                        json_pack("{s:s,s:s}", "status", "unavailable", "reason", err.msg));
        return;
    }
    aster_resp_json(resp, MHD_HTTP_OK, json_pack("{s:s}", "status", "ready"));
}
