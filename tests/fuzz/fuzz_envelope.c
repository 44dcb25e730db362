/* libFuzzer target: the bus envelope decoder and dispatch, as every service
 * runs them on bytes from a socket. Must never crash, leak or hang.
 * fuzz-sources: */
#include "bus.h"
#include "log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void h_echo(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)ctx;
    (void)req;
    bus_reply_ok(reply, msg);
}

static const bus_route_t s_routes[] = {
    {"echo", &portico__ping_reply__descriptor, h_echo, BUS_WEB, 0},
    {"bare", NULL, h_echo, BUS_WEB, 0},
    {0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) {
        log_set_level(LOG_LEVEL_ERROR);
        once = 1;
    }
    bus_request_t req = {0};
    bus_reply_t reply = {0};
    snprintf(req.caller, sizeof req.caller, "web");
    bus_process(s_routes, NULL, data, size, &req, &reply);
    uint8_t *out = NULL;
    size_t n = 0;
    if (bus_encode_reply(req.call_id, &reply, &out, &n) == 0) {
        Portico__Reply *back = portico__reply__unpack(NULL, n, out);
        if (!back || back->call_id != req.call_id)
            abort();
        portico__reply__free_unpacked(back, NULL);
    }
    free(out);
    bus_reply_clear(&reply);
    return 0;
}
