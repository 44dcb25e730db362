/* busauth: key files, the start-up checks that name the variable, and a
 * CURVE server that answers only the services it admits, naming them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bus.h"
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir[64];
static char s_endpoint[64];
static atomic_bool s_stop;
static char s_seen_caller[16];

static void h_who(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)ctx;
    (void)msg;
    snprintf(s_seen_caller, sizeof s_seen_caller, "%s", req->caller);
    bus_reply_ok(reply, NULL);
}

static const bus_route_t s_routes[] = {
    {"who", NULL, h_who, BUS_WEB, 0},
    {"broker_only", NULL, h_who, BUS_BROKER, 0},
    {0},
};

static void *s_server(void *arg)
{
    zsock_t *router = arg;
    while (!atomic_load(&s_stop)) {
        zmq_pollitem_t item = {zsock_resolve(router), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 50) > 0) {
            zmsg_t *m = zmsg_recv(router);
            if (m)
                bus_serve(router, &m, s_routes, NULL);
        }
    }
    return NULL;
}

/* A ROUTER with this process's bus key on a loopback port (s_endpoint),
 * served by s_server on *thread until s_stop. */
static zsock_t *s_serve_start(pthread_t *thread)
{
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    bus_socket_tune(router);
    assert_int_equal(busauth_server(router), 0);
    int port = zsock_bind(router, "tcp://127.0.0.1:*");
    assert_true(port > 0);
    snprintf(s_endpoint, sizeof s_endpoint, "tcp://127.0.0.1:%d", port);
    atomic_store(&s_stop, false);
    pthread_create(thread, NULL, s_server, router);
    return router;
}

static void test_keygen_modes_and_reuse(void **state)
{
    (void)state;
    char err[700], path[128];
    assert_int_equal(busauth_keygen(s_dir, "web", err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/web.cert_secret", s_dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/web.cert", s_dir);
    zcert_t *first = zcert_load(path);
    assert_non_null(first);
    /* A second run keeps the pair. */
    assert_int_equal(busauth_keygen(s_dir, "web", err, sizeof err), 0);
    zcert_t *again = zcert_load(path);
    assert_string_equal(zcert_public_txt(first), zcert_public_txt(again));
    zcert_destroy(&again);
    /* A secret file cut short (a crash while it was written) is replaced
     * with a new pair, public file included; nothing is left over. */
    snprintf(path, sizeof path, "%s/web.cert_secret", s_dir);
    assert_int_equal(truncate(path, 100), 0);
    assert_int_equal(busauth_keygen(s_dir, "web", err, sizeof err), 0);
    zcert_t *secret = zcert_load(path);
    assert_non_null(secret);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/web.cert", s_dir);
    again = zcert_load(path);
    assert_non_null(again);
    assert_string_equal(zcert_public_txt(secret), zcert_public_txt(again));
    assert_string_not_equal(zcert_public_txt(first), zcert_public_txt(again));
    snprintf(path, sizeof path, "%s/.web.cert.new", s_dir);
    assert_int_equal(access(path, F_OK), -1);
    zcert_destroy(&first);
    zcert_destroy(&again);
    zcert_destroy(&secret);
}

static void test_bad_configuration_names_the_variable(void **state)
{
    (void)state;
    char err[700];
    unsetenv("PORTICO_BUS_KEYS_DIR");
    assert_int_equal(busauth_init("registry", BUS_WEB, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "PORTICO_BUS_KEYS_DIR"));
    setenv("PORTICO_BUS_KEYS_DIR", s_dir, 1);
    setenv("PORTICO_BUS_SECRET_FILE", "/nonexistent/registry.cert_secret", 1);
    assert_int_equal(busauth_init("registry", BUS_WEB, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "PORTICO_BUS_SECRET_FILE"));
    char path[128];
    snprintf(path, sizeof path, "%s/garbage", s_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("curve\n    public-key = \"not a key\"\n", f);
    fclose(f);
    setenv("PORTICO_BUS_SECRET_FILE", path, 1);
    assert_int_equal(busauth_init("registry", BUS_WEB, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a CURVE secret certificate"));
    unsetenv("PORTICO_BUS_SECRET_FILE");
    /* A secret key other users can read is refused, naming the file. */
    assert_int_equal(busauth_keygen(s_dir, "registry", err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/registry.cert_secret", s_dir);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(busauth_init("registry", BUS_WEB, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "can be read by other users (mode 640)"));
    assert_int_equal(chmod(path, 0600), 0);
    /* The registry's own pair is there, but no key of a service it admits. */
    assert_int_equal(busauth_keygen(s_dir, "registry", err, sizeof err), 0);
    assert_int_equal(busauth_init("registry", BUS_BITBUCKET, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "no public key of the bitbucket service"));
}

static void test_admits_only_declared_services_by_key(void **state)
{
    (void)state;
    char err[700];
    assert_int_equal(busauth_keygen(s_dir, "broker", err, sizeof err), 0);
    assert_int_equal(busauth_keygen(s_dir, "bitbucket", err, sizeof err), 0);
    /* This process is the registry, admitting the web and the broker. */
    assert_int_equal(busauth_init("registry", BUS_WEB | BUS_BROKER, 0, err, sizeof err), 0);
    pthread_t thread;
    zsock_t *router = s_serve_start(&thread);

    bus_error_t e;
    /* The web: admitted, named by its key. */
    bus_client_t *web = bus_client_new_as(s_endpoint, "registry", "web");
    assert_int_equal(bus_call(web, "who", NULL, NULL, NULL, 2000, &e), 0);
    assert_string_equal(s_seen_caller, "web");
    /* Admitted, but not declared for the method. */
    assert_int_equal(bus_call(web, "broker_only", NULL, NULL, NULL, 2000, &e), -1);
    assert_int_equal(e.code, PORTICO__ERROR_CODE__FORBIDDEN);
    bus_client_destroy(&web);
    /* The broker: admitted, but not for "who". */
    bus_client_t *broker = bus_client_new_as(s_endpoint, "registry", "broker");
    assert_int_equal(bus_call(broker, "who", NULL, NULL, NULL, 2000, &e), -1);
    assert_int_equal(e.code, PORTICO__ERROR_CODE__FORBIDDEN);
    assert_int_equal(bus_call(broker, "broker_only", NULL, NULL, NULL, 2000, &e), 0);
    assert_string_equal(s_seen_caller, "broker");
    bus_client_destroy(&broker);
    /* Bitbucket's key is not admitted here: no answer at all. */
    bus_client_t *bb = bus_client_new_as(s_endpoint, "registry", "bitbucket");
    assert_int_equal(bus_call(bb, "ping", NULL, NULL, NULL, 500, &e), -1);
    assert_true(e.code == PORTICO__ERROR_CODE__TIMEOUT || e.code == PORTICO__ERROR_CODE__UNAVAILABLE);
    bus_client_destroy(&bb);

    atomic_store(&s_stop, true);
    pthread_join(thread, NULL);
    zsock_destroy(&router);
}

static int s_setup(void **state)
{
    (void)state;
    bus_init();
    log_set_level(LOG_LEVEL_ERROR);
    snprintf(s_dir, sizeof s_dir, "/tmp/portico-busauth-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A public certificate replaced in place, with the old secret one still
 * next to it, means the new key (zcert_load would read the secret one). */
static void test_a_replaced_public_key_is_the_one_read(void **state)
{
    (void)state;
    char err[700], path[160];
    assert_int_equal(busauth_keygen(s_dir, "bitbucket", err, sizeof err), 0);
    zcert_t *other = zcert_new();
    assert_non_null(other);
    snprintf(path, sizeof path, "%s/bitbucket.cert", s_dir);
    assert_int_equal(zcert_save_public(other, path), 0);
    zclock_sleep(1100); /* the folder is read again at most once a second */
    char keys[4][41];
    int n = busauth_server_keys("bitbucket", keys, 4);
    assert_int_equal(n, 1);
    assert_string_equal(keys[0], zcert_public_txt(other));
    zcert_destroy(&other);
}

/* A key removed from the folder, then SIGHUP (busauth_reload_secret and a
 * rebind): a connection made with it right after the rebind is refused,
 * though the authenticator read the folder less than a second before. */
static void test_a_removed_key_stays_out_after_the_rebind(void **state)
{
    (void)state;
    char err[700], path[160];
    assert_int_equal(busauth_keygen(s_dir, "registry", err, sizeof err), 0);
    assert_int_equal(busauth_keygen(s_dir, "web", err, sizeof err), 0);
    assert_int_equal(busauth_keygen(s_dir, "web.2", err, sizeof err), 0);
    assert_int_equal(busauth_init("registry", BUS_WEB, 0, err, sizeof err), 0);
    busauth_reload_secret(); /* web.2 added: a SIGHUP (the first start in this process was earlier) */
    zclock_sleep(1100);      /* the authenticator's next read sees web.2 */
    pthread_t thread;
    zsock_t *router = s_serve_start(&thread);
    bus_error_t e;
    bus_client_t *old = bus_client_new_as(s_endpoint, "registry", "web.2");
    assert_int_equal(bus_call(old, "who", NULL, NULL, NULL, 2000, &e), 0);
    bus_client_destroy(&old);

    /* The operator removes web.2's key and sends SIGHUP. */
    snprintf(path, sizeof path, "%s/web.2.cert", s_dir);
    assert_int_equal(unlink(path), 0);
    atomic_store(&s_stop, true);
    pthread_join(thread, NULL);
    assert_int_equal(busauth_reload_secret(), 1);
    assert_int_equal(bus_rebind(router, s_endpoint), 0);
    atomic_store(&s_stop, false);
    pthread_create(&thread, NULL, s_server, router);

    bus_client_t *again = bus_client_new_as(s_endpoint, "registry", "web.2");
    assert_int_equal(bus_call(again, "who", NULL, NULL, NULL, 500, &e), -1);
    assert_true(e.code == PORTICO__ERROR_CODE__TIMEOUT || e.code == PORTICO__ERROR_CODE__UNAVAILABLE);
    bus_client_destroy(&again);
    /* The key still in the folder is served on the new bind. */
    bus_client_t *web = bus_client_new_as(s_endpoint, "registry", "web");
    assert_int_equal(bus_call(web, "who", NULL, NULL, NULL, 2000, &e), 0);
    bus_client_destroy(&web);

    atomic_store(&s_stop, true);
    pthread_join(thread, NULL);
    zsock_destroy(&router);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keygen_modes_and_reuse),
        cmocka_unit_test(test_bad_configuration_names_the_variable),
        cmocka_unit_test(test_admits_only_declared_services_by_key),
        cmocka_unit_test(test_a_replaced_public_key_is_the_one_read),
        cmocka_unit_test(test_a_removed_key_stays_out_after_the_rebind),
    };
    return cmocka_run_group_tests_name("busauth", tests, s_setup, s_teardown);
}
