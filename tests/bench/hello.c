/* The baseline for the signed-in page benchmark: civetweb answering a fixed
 * page with the same threads and keep-alive settings as portico-web, and no
 * work behind it. Usage: hello ADDR (e.g. 127.0.0.1:8099). */
#include <civetweb.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int s_hello(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    static const char body[] = "<!doctype html><html><body><p>hello</p></body></html>";
    mg_printf(conn,
              "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\n\r\n",
              sizeof body - 1);
    mg_write(conn, body, sizeof body - 1);
    return 200;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s ADDR\n", argv[0]);
        return 2;
    }
    signal(SIGTERM, s_on_signal);
    signal(SIGINT, s_on_signal);
    mg_init_library(0);
    const char *options[] = {
        "listening_ports", argv[1],       "num_threads", "32", "enable_keep_alive", "yes", "keep_alive_timeout_ms",
        "15000",           "tcp_nodelay", "1",           NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    struct mg_context *ctx = mg_start(&cb, NULL, options);
    if (!ctx) {
        fprintf(stderr, "could not listen on %s\n", argv[1]);
        return 1;
    }
    mg_set_request_handler(ctx, "/", s_hello, NULL);
    while (!s_stop)
        usleep(100 * 1000);
    mg_stop(ctx);
    mg_exit_library();
    return 0;
}
