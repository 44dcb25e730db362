/* Bus round trip vs a bare ZeroMQ DEALER/ROUTER ping-pong, measured in the
 * same run on loopback TCP: the bus without CURVE, and with CURVE and the
 * ZAP handler as every service runs it (keys made in a temporary folder).
 * The servers run in child processes, as a real service would. With an endpoint argument, also measures "ping" against
 * that running service (the registry in `make bench`). Beside latency, the
 * CPU each call costs, client and server process together (all their
 * threads, ZeroMQ's I/O threads included): the floor under every bus round
 * trip of a login.
 *
 *   bus_bench [iterations] [registry-endpoint] */
#include "bus.h"
#include "log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int s_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

typedef struct {
    double p50, p99, rps;
    double cpu_client, cpu_server; /* CPU microseconds per call, all threads */
} result_t;

static result_t s_summarise(int64_t *lat, int n, int64_t total_us)
{
    qsort(lat, (size_t)n, sizeof *lat, s_cmp);
    result_t r = {lat[n / 2] / 1.0, lat[(int)(n * 0.99)] / 1.0, n / (total_us / 1e6), 0, 0};
    return r;
}

/* CPU time of this process (every thread, ZeroMQ's I/O thread included). */
static double s_self_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

/* CPU time of a server process (utime + stime from /proc), or -1. */
static double s_proc_cpu_us(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* Start and end of a measured loop: the client's and the server's CPU. */
typedef struct {
    double client, server;
} cpu_mark_t;

static cpu_mark_t s_cpu_mark(pid_t server)
{
    cpu_mark_t m = {s_self_cpu_us(), s_proc_cpu_us(server)};
    return m;
}

static void s_cpu_per_call(result_t *r, cpu_mark_t a, cpu_mark_t b, int n)
{
    r->cpu_client = (b.client - a.client) / n;
    r->cpu_server = a.server < 0 || b.server < 0 ? -1 : (b.server - a.server) / n;
}

/* Bind a free port and tell the parent which, through the pipe. */
static zsock_t *s_bind_free(int report_fd)
{
    zsock_t *r = zsock_new(ZMQ_ROUTER);
    bus_socket_tune(r);
    int port = zsock_bind(r, "tcp://127.0.0.1:*");
    if (write(report_fd, &port, sizeof port) != sizeof port || port <= 0)
        _exit(1);
    close(report_fd);
    return r;
}

static void s_bare_server(int report_fd)
{
    zsock_t *r = s_bind_free(report_fd);
    for (;;) {
        zmsg_t *m = zmsg_recv(r);
        if (!m)
            break;
        zmsg_send(&m, r);
    }
    _exit(0);
}

static void s_bus_server(int report_fd)
{
    zsock_t *r = s_bind_free(report_fd);
    for (;;) {
        zmsg_t *m = zmsg_recv(r);
        if (!m)
            break;
        bus_serve(r, &m, NULL, NULL);
    }
    _exit(0);
}

/* The bus as the services run it: CURVE server, ZAP handler admitting the
 * web's key, the caller checked per method. */
static void s_curve_server(int report_fd)
{
    busauth_init_or_die("registry", BUS_WEB, 0);
    zsock_t *r = zsock_new(ZMQ_ROUTER);
    bus_socket_tune(r);
    busauth_server(r);
    int port = zsock_bind(r, "tcp://127.0.0.1:*");
    if (write(report_fd, &port, sizeof port) != sizeof port || port <= 0)
        _exit(1);
    close(report_fd);
    for (;;) {
        zmsg_t *m = zmsg_recv(r);
        if (!m)
            break;
        bus_serve(r, &m, NULL, NULL);
    }
    _exit(0);
}

static result_t s_run_bare(const char *ep, int n, pid_t server)
{
    zsock_t *d = zsock_new(ZMQ_DEALER);
    bus_socket_tune(d);
    zsock_set_rcvtimeo(d, 2000); /* a lost server ends the run instead of hanging it */
    zsock_connect(d, "%s", ep);
    int64_t *lat = calloc((size_t)n, sizeof *lat);
    char payload[48] = "ping-payload-of-similar-size-to-an-envelope";
    for (int i = 0; i < 100; i++) { /* warm up */
        zmq_send(zsock_resolve(d), payload, sizeof payload, 0);
        zmsg_t *m = zmsg_recv(d);
        if (!m) {
            fprintf(stderr, "bus_bench: the bare server does not answer\n");
            exit(1);
        }
        zmsg_destroy(&m);
    }
    cpu_mark_t c0 = s_cpu_mark(server);
    int64_t t0 = s_now_us();
    for (int i = 0; i < n; i++) {
        int64_t a = s_now_us();
        zmq_send(zsock_resolve(d), payload, sizeof payload, 0);
        zmsg_t *m = zmsg_recv(d);
        if (!m) {
            fprintf(stderr, "bus_bench: the bare server stopped answering\n");
            exit(1);
        }
        zmsg_destroy(&m);
        lat[i] = s_now_us() - a;
    }
    result_t r = s_summarise(lat, n, s_now_us() - t0);
    s_cpu_per_call(&r, c0, s_cpu_mark(server), n);
    free(lat);
    zsock_destroy(&d);
    return r;
}

static result_t s_run_bus(const char *ep, int n, const char *name, const char *as, pid_t server)
{
    bus_client_t *c = as ? bus_client_new_as(ep, name, as) : bus_client_new(ep, name);
    int64_t *lat = calloc((size_t)n, sizeof *lat);
    bus_error_t err;
    for (int i = 0; i < 100; i++) {
        if (bus_call(c, "ping", NULL, NULL, NULL, 2000, &err) < 0) {
            fprintf(stderr, "bus_bench: %s does not answer: %s\n", name, err.message);
            free(lat);
            bus_client_destroy(&c);
            result_t none = {0, 0, 0, 0, 0};
            return none;
        }
    }
    cpu_mark_t c0 = s_cpu_mark(server);
    int64_t t0 = s_now_us();
    int failures = 0;
    for (int i = 0; i < n; i++) {
        int64_t a = s_now_us();
        if (bus_call(c, "ping", NULL, NULL, NULL, 2000, &err) < 0)
            failures++;
        lat[i] = s_now_us() - a;
    }
    result_t r = s_summarise(lat, n, s_now_us() - t0);
    s_cpu_per_call(&r, c0, s_cpu_mark(server), n);
    if (failures)
        printf("  (%d failed calls to %s: %s)\n", failures, name, err.message);
    free(lat);
    bus_client_destroy(&c);
    return r;
}

static void s_print(const char *what, result_t r)
{
    printf("  %-36s p50 %7.1f us   p99 %7.1f us   %9.0f req/s", what, r.p50, r.p99, r.rps);
    if (r.cpu_server >= 0)
        printf("   cpu %5.1f us/call (client %.1f + server %.1f)\n", r.cpu_client + r.cpu_server, r.cpu_client,
               r.cpu_server);
    else
        printf("   cpu client %.1f us/call\n", r.cpu_client);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    const char *registry = argc > 2 ? argv[2] : NULL;
    log_set_level(LOG_LEVEL_ERROR);
    int bare_pipe[2], bus_pipe[2], curve_pipe[2];
    if (pipe(bare_pipe) < 0 || pipe(bus_pipe) < 0 || pipe(curve_pipe) < 0)
        return 1;
    char keys[] = "/tmp/portico-bus-bench.XXXXXX", err[700];
    if (!mkdtemp(keys) || busauth_keygen(keys, "registry", err, sizeof err) < 0 ||
        busauth_keygen(keys, "web", err, sizeof err) < 0) {
        fprintf(stderr, "bus_bench: could not make keys\n");
        return 1;
    }
    setenv("PORTICO_BUS_KEYS_DIR", keys, 1);
    unsetenv("PORTICO_BUS_SECRET_FILE");
    pid_t bare = fork();
    if (bare == 0)
        s_bare_server(bare_pipe[1]);
    pid_t bus = fork();
    if (bus == 0)
        s_bus_server(bus_pipe[1]);
    pid_t curve = fork();
    if (curve == 0)
        s_curve_server(curve_pipe[1]);
    int bare_port = 0, bus_port = 0, curve_port = 0;
    if (read(bare_pipe[0], &bare_port, sizeof bare_port) != sizeof bare_port ||
        read(bus_pipe[0], &bus_port, sizeof bus_port) != sizeof bus_port ||
        read(curve_pipe[0], &curve_port, sizeof curve_port) != sizeof curve_port) {
        fprintf(stderr, "bus_bench: the servers could not bind\n");
        return 1;
    }
    char bare_ep[64], bus_ep[64], curve_ep[64];
    snprintf(bare_ep, sizeof bare_ep, "tcp://127.0.0.1:%d", bare_port);
    snprintf(bus_ep, sizeof bus_ep, "tcp://127.0.0.1:%d", bus_port);
    snprintf(curve_ep, sizeof curve_ep, "tcp://127.0.0.1:%d", curve_port);
    bus_init();
    printf("bus round trip, %d sequential calls on loopback TCP\n", n);
    result_t rb = s_run_bare(bare_ep, n, bare);
    result_t rs = s_run_bus(bus_ep, n, "bench", NULL, bus);
    result_t rc = s_run_bus(curve_ep, n, "registry", "web", curve);
    s_print("bare DEALER/ROUTER ping-pong", rb);
    s_print("portico bus no-op (ping)", rs);
    s_print("portico bus with CURVE + ZAP (ping)", rc);
    printf("  ratio bus/bare p50: %.2fx   (goal: below 2x)\n", rs.p50 / rb.p50);
    printf("  ratio CURVE/no CURVE p50: %.2fx   CURVE/bare p50: %.2fx\n", rc.p50 / rs.p50, rc.p50 / rb.p50);
    if (registry) {
        result_t rr = s_run_bus(registry, n, "registry", "web", -1);
        s_print("portico bus ping to the registry", rr);
        printf("  ratio registry/bare p50: %.2fx\n", rr.p50 / rb.p50);
    }
    kill(bare, SIGKILL);
    kill(bus, SIGKILL);
    kill(curve, SIGKILL);
    waitpid(bare, NULL, 0);
    waitpid(bus, NULL, 0);
    waitpid(curve, NULL, 0);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", keys);
    if (system(rm) != 0)
        fprintf(stderr, "bus_bench: could not remove %s\n", keys);
    return 0;
}
