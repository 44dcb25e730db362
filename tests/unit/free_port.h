/* A loopback TCP port that was free a moment ago, for a test server to
 * bind. Taken from a plain socket that is closed at once: a fixed port may
 * be held by whatever else runs on the machine, and a ZeroMQ socket closes
 * its listener later, in its I/O thread (a client may still reach it).
 * -1 on failure. */
#ifndef PORTICO_TEST_FREE_PORT_H
#define PORTICO_TEST_FREE_PORT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static inline int test_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int port = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && getsockname(fd, (struct sockaddr *)&sa, &len) == 0
                   ? ntohs(sa.sin_port)
                   : -1;
    close(fd);
    return port;
}

#endif
