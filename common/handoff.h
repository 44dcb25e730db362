/* handoff: a bounded queue of pointers between threads, in memory.
 *
 * What a ZeroMQ inproc pair does between two threads of one process,
 * without its cost: every inproc message makes both ends signal through
 * libzmq's mailboxes (a getpid fork check, a poll and an eventfd read or
 * write on each side), where this takes a mutex and wakes a waiter only
 * when one waits.
 *
 * Any number of threads put. Takers are of two kinds:
 *   - threads that block in handoff_take (a condition variable wakes one
 *     per item put, and only when one is waiting);
 *   - one thread that polls other descriptors too (a ZeroMQ socket's
 *     ZMQ_FD): it takes what is there with handoff_take_some, and before it
 *     waits calls handoff_arm; the descriptor of handoff_fd becomes
 *     readable at the next put, and at no other: a put while that thread is
 *     awake costs no system call.
 * The queue holds at most capacity items: a put beyond it fails and the
 * caller decides what to answer. */
#ifndef PORTICO_HANDOFF_H
#define PORTICO_HANDOFF_H

#include <stdbool.h>

typedef struct handoff_t handoff_t;

/* A queue of up to capacity (> 0) items. NULL on failure. */
handoff_t *handoff_new(int capacity);
/* Items still queued are passed to drop (when not NULL). */
void handoff_destroy(handoff_t **self_p, void (*drop)(void *item));
/* Queue item (not NULL) at the tail. 0, or -1 when the queue is full or
 * closed (the item stays the caller's). */
int handoff_put(handoff_t *self, void *item);
/* The item at the head, waiting up to ms for one (-1: until one comes or
 * the queue is closed). NULL when none came in time or the queue is
 * closed. */
void *handoff_take(handoff_t *self, int ms);
/* Up to max items at the head into items, without waiting; how many. It
 * also disarms (the caller is awake). */
int handoff_take_some(handoff_t *self, void **items, int max);
/* Before the polling taker waits: true when the queue is empty, and the
 * next put then makes handoff_fd readable; false when items are waiting
 * (take them instead of waiting). */
bool handoff_arm(handoff_t *self);
/* The descriptor to poll for POLLIN next to others. */
int handoff_fd(const handoff_t *self);
/* After handoff_fd was readable: read it, so it is quiet again. */
void handoff_clear_fd(handoff_t *self);
/* Items queued now. */
int handoff_count(handoff_t *self);
/* No more puts; blocked takers return NULL at once, now and later. */
void handoff_close(handoff_t *self);

#endif
