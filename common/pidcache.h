/* pidcache: getpid() without a system call, for libzmq.
 *
 * libzmq checks getpid() against the pid it started with every time a
 * thread signals another (its fork check: sockets are not to be used in
 * a forked child), so each bus round trip makes dozens of getpid system
 * calls. glibc stopped caching the pid in 2.25, and on a kernel with
 * page-table isolation every system call is dear: a bus round trip took
 * about a fifth more CPU with them (README, Throughput).
 *
 * This module defines getpid() for the executable that links it, which
 * the dynamic linker prefers to glibc's for every library (interposition):
 * the pid is read once and read again in the child after a fork
 * (pthread_atfork). A process created with vfork or clone without fork's
 * handlers must not use it before exec; Portico's services create none. */
#ifndef PORTICO_PIDCACHE_H
#define PORTICO_PIDCACHE_H

#include <sys/types.h>

/* The pid is read when the program loads; bus_init calls this as well,
 * which is what links this module into every program that uses the bus. */
void pidcache_init(void);

#endif
