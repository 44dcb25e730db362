/* A loopback TCP port that was free a moment ago, for a test server to
 * bind. Not a fixed port: one may be held by whatever else runs on the
 * machine. Not one the kernel picks (bind to port 0): that comes from the
 * ephemeral range (ip_local_port_range), from which the kernel also gives
 * source ports to any process's outgoing connections, so it may be taken
 * before the server binds it. Here the port is drawn from just below that
 * range and checked by binding it on a plain socket (a ZeroMQ socket closes
 * its listener later, in its I/O thread); a process is not given any of
 * its last 64 ports again. -1 on failure. */
#ifndef PORTICO_TEST_FREE_PORT_H
#define PORTICO_TEST_FREE_PORT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline int test_port_bindable(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static inline int test_free_port(void)
{
    static unsigned seed;
    static int given[64]; /* never the same port twice in one test run */
    static unsigned ngiven;
    if (!seed)
        seed = (unsigned)time(NULL) ^ (unsigned)getpid() << 16;
    int lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d", &lo) != 1)
            lo = 32768;
        fclose(f);
    }
    int first = lo > 11024 ? lo - 10000 : 1024;
    int span = lo - first > 0 ? lo - first : 1;
    for (int i = 0; i < 500; i++) {
        int port = first + (int)(rand_r(&seed) % (unsigned)span);
        int seen = 0;
        for (unsigned j = 0; j < ngiven && j < 64; j++)
            seen |= given[j] == port;
        if (!seen && test_port_bindable(port)) {
            given[ngiven++ % 64] = port;
            return port;
        }
    }
    return -1;
}

#endif
