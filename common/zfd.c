#include "zfd.h"

#include <errno.h>
#include <poll.h>

#define ZFD_MAX 256

int zfd_wait(zsock_t *const *socks, int n, bool *woke, int ms)
{
    struct pollfd fds[ZFD_MAX];
    if (n < 0 || n > ZFD_MAX)
        return -1;
    for (int i = 0; i < n; i++) {
        fds[i] = (struct pollfd){.fd = zsock_fd(socks[i]), .events = POLLIN};
        if (fds[i].fd < 0)
            return -1;
    }
    int rc = poll(fds, (nfds_t)n, ms);
    if (rc < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; woke && i < n; i++)
        woke[i] = rc > 0 && fds[i].revents != 0;
    return rc;
}
