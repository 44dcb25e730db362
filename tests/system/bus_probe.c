/* bus_probe: call one bus method as a chosen peer, for the system tests
 * that check who may call what.
 *
 *   bus_probe ENDPOINT SERVICE AS METHOD [TIMEOUT_MS [BODY_HEX]]
 *
 * SERVICE is the server's service (its public key is taken from
 * PORTICO_BUS_KEYS_DIR); AS is the key to speak with: a service name (its
 * secret certificate from the same folder), "none" (no CURVE at all) or
 * "stranger" (a fresh key nobody knows). METHOD "@worker" plays a broker
 * worker instead: it says READY for TIMEOUT_MS and counts the requests the
 * web hands it ("detail"). Otherwise it prints one JSON line:
 * {"code":"OK"|"FORBIDDEN"|...,"detail":"...","body_bytes":N}; "TIMEOUT"
 * means no answer came at all. */
#include "bus.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_hex(const char *hex, uint8_t *out, size_t max)
{
    size_t n = strlen(hex) / 2;
    if (n > max)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return (int)n;
}

/* One raw request on a DEALER set up by the caller; the reply or NULL. */
static Portico__Reply *s_call(zsock_t *sock, const char *method, const uint8_t *body, size_t body_len, int timeout_ms)
{
    Portico__Request env = PORTICO__REQUEST__INIT;
    env.call_id = 7;
    env.request_id = "probe";
    env.method = (char *)(uintptr_t)method;
    env.deadline_ms = bus_now_ms() + timeout_ms;
    env.body.data = (uint8_t *)(uintptr_t)body;
    env.body.len = body_len;
    size_t n = portico__request__get_packed_size(&env);
    uint8_t *buf = malloc(n ? n : 1);
    portico__request__pack(&env, buf);
    zmq_send(zsock_resolve(sock), buf, n, ZMQ_DONTWAIT);
    free(buf);
    zsock_set_rcvtimeo(sock, timeout_ms);
    zmsg_t *msg = zmsg_recv(sock);
    if (!msg)
        return NULL;
    zframe_t *last = zmsg_last(msg);
    Portico__Reply *reply = portico__reply__unpack(NULL, zframe_size(last), zframe_data(last));
    zmsg_destroy(&msg);
    return reply;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bus_probe ENDPOINT SERVICE AS METHOD [TIMEOUT_MS [BODY_HEX]]\n");
        return 2;
    }
    const char *endpoint = argv[1], *service = argv[2], *as = argv[3], *method = argv[4];
    int timeout_ms = argc > 5 ? atoi(argv[5]) : 1500;
    uint8_t body[4096];
    int body_len = argc > 6 ? s_hex(argv[6], body, sizeof body) : 0;
    if (body_len < 0)
        return 2;
    bus_init();
    log_set_level(LOG_LEVEL_ERROR);
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    bus_socket_tune(sock);
    if (!strcmp(as, "stranger")) {
        zcert_t *cert = zcert_new();
        char key[41];
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.cert", getenv("PORTICO_BUS_KEYS_DIR"), service);
        zcert_t *server = zcert_load(path);
        if (!server)
            return 2;
        snprintf(key, sizeof key, "%s", zcert_public_txt(server));
        zcert_apply(cert, sock);
        zsock_set_curve_serverkey(sock, key);
        zcert_destroy(&cert);
        zcert_destroy(&server);
    } else if (strcmp(as, "none") != 0) {
        if (busauth_client(sock, service, as) < 0)
            return 2;
    }
    if (zsock_connect(sock, "%s", endpoint) < 0)
        return 2;
    if (!strcmp(method, "@worker")) {
        int got = 0;
        int64_t end = bus_now_ms() + timeout_ms;
        zsock_set_rcvtimeo(sock, 200);
        zsock_set_sndtimeo(sock, 200); /* no pipe while the handshake is refused */
        while (bus_now_ms() < end) {
            zmsg_t *m = zmsg_new();
            zmsg_addstr(m, BUS_WORKER_READY " probe");
            if (zmsg_send(&m, sock) < 0) {
                zmsg_destroy(&m);
                zclock_sleep(200);
                continue;
            }
            zmsg_t *in = zmsg_recv(sock);
            got += in != NULL;
            zmsg_destroy(&in);
        }
        printf("{\"code\":\"WORKER\",\"detail\":\"%d\",\"body_bytes\":0}\n", got);
        zsock_destroy(&sock);
        return 0;
    }
    Portico__Reply *reply = s_call(sock, method, body, (size_t)body_len, timeout_ms);
    if (!reply) {
        printf("{\"code\":\"TIMEOUT\",\"detail\":\"\",\"body_bytes\":0}\n");
    } else {
        printf("{\"code\":\"%s\",\"detail\":\"%s\",\"body_bytes\":%zu}\n", bus_code_name(reply->code), bus_detail_name((int)reply->detail),
               reply->body.len);
        portico__reply__free_unpacked(reply, NULL);
    }
    zsock_destroy(&sock);
    return 0;
}
