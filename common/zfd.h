/* zfd: waiting on ZeroMQ sockets through their ZMQ_FD, with plain poll().
 *
 * zmq_poll asks ZMQ_EVENTS of every ZeroMQ socket before and after its
 * poll, and makes a first pass with no timeout: each ZMQ_EVENTS is two
 * system calls (a getpid, libzmq's fork check, and a poll of the socket's
 * command mailbox), so some six per socket per wait, where a wait on the
 * descriptor itself is one.
 *
 * The descriptor has rules (libzmq's ZMQ_FD): it becomes readable once when
 * the socket's state may have changed, and whatever reads the socket's
 * commands takes that signal: a ZMQ_EVENTS, a receive, a send. A message
 * that arrives while earlier ones are still unread signals nothing at all.
 * So ask ZMQ_EVENTS of a socket (zsock_events) before waiting on it when it
 * was used since it was last asked, and after every wake.
 *
 * For one socket, a receive with ZMQ_RCVTIMEO is cheaper still: it tries
 * the socket before it waits on the mailbox, and asks nothing more. */
#ifndef PORTICO_ZFD_H
#define PORTICO_ZFD_H

#include <czmq.h>
#include <stdbool.h>

/* Wait up to ms (-1: no limit) until one of the n sockets' descriptors
 * signals; woke (when not NULL) says which. The number that signalled, 0
 * when none did in time or a signal interrupted the wait, -1 on error. It
 * asks nothing of the sockets: the caller asks ZMQ_EVENTS of those that
 * signalled. */
int zfd_wait(zsock_t *const *socks, int n, bool *woke, int ms);

#endif
