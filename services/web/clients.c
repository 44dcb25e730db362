/* A request thread's bus clients, made when the thread first needs one
 * (web.h). */
#include "web.h"

bus_client_t *web_registry(web_req_t *r)
{
    if (!r->clients->registry)
        r->clients->registry = bus_client_new(web_cfg.registry_endpoint, "registry");
    return r->clients->registry;
}

bus_client_t *web_broker(web_req_t *r)
{
    if (!r->clients->broker)
        r->clients->broker = bus_client_new(brokerq_frontend(web_brokerq), "broker");
    return r->clients->broker;
}

bus_client_t *web_bitbucket(web_req_t *r)
{
    if (!r->clients->bitbucket)
        r->clients->bitbucket = bus_client_new(web_cfg.bitbucket_endpoint, "bitbucket");
    return r->clients->bitbucket;
}
