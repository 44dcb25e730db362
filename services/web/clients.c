/* A request thread's bus clients, made when the thread first needs one;
 * calls to the broker go to the broker queue in memory (web.h). */
#include "web.h"

#include <string.h>

bus_client_t *web_registry(web_req_t *r)
{
    if (!r->clients)
        return NULL; /* bus_call answers UNAVAILABLE */
    if (!r->clients->registry)
        r->clients->registry = bus_client_new(web_cfg.registry_endpoint, "registry");
    return r->clients->registry;
}

bus_client_t *web_bitbucket(web_req_t *r)
{
    if (!r->clients)
        return NULL;
    if (!r->clients->bitbucket)
        r->clients->bitbucket = bus_client_new(web_cfg.bitbucket_endpoint, "bitbucket");
    return r->clients->bitbucket;
}

int web_call(web_req_t *r, const bus_method_t *m, const ProtobufCMessage *req, ProtobufCMessage **rep, int timeout_ms,
             bus_error_t *err)
{
    if (!strcmp(m->service, "broker"))
        return brokerq_call(web_brokerq, m, req, rep, timeout_ms, err);
    bus_client_t *c = !strcmp(m->service, "registry") ? web_registry(r) : web_bitbucket(r);
    return bus_call_method(c, m, req, rep, timeout_ms, err);
}
