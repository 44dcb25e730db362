/* brokerq: the load-balancing queue between the web's threads and the
 * broker workers (ZeroMQ Guide ch. 4, "load balancing broker").
 *
 * Web threads call broker methods with brokerq_call. Broker worker
 * threads, in any number of broker processes, connect DEALERs to the bind endpoint, announce themselves with READY and
 * send a heartbeat every second. Each request goes to the worker that has
 * been idle longest; a worker silent for three seconds is dropped and the
 * request it held is answered UNAVAILABLE at once. */
#ifndef PORTICO_BROKERQ_H
#define PORTICO_BROKERQ_H

#include "bus.h"

#include <stdint.h>

typedef struct brokerq_t brokerq_t;

typedef struct {
    char instance[96];
    int workers;
    int busy;
    uint64_t handled;
} brokerq_instance_t;

/* Bind the worker endpoint and start the queue thread. NULL on failure. */
brokerq_t *brokerq_new(const char *bind_endpoint);
/* Stop the thread; queued requests are answered UNAVAILABLE. */
void brokerq_destroy(brokerq_t **self_p);
/* Serve the workers with the key busauth holds now (after
 * busauth_reload_secret changed it; any thread may call): new work waits
 * while the workers finish theirs, the port is bound again with the new
 * key, and the work goes to the workers that come back on it. */
void brokerq_rekey(brokerq_t *self);
/* bus_call_method for the broker, from any thread, without a socket of its
 * own: the request is handed to the queue's thread in memory (an eventfd
 * write wakes it when it has nothing else to take; a condition variable
 * brings the answer back), not over a ZeroMQ inproc pair, whose signalling
 * costs both threads several system calls a message. The same envelope,
 * deadlines, errors and bus call metrics as bus_call. */
int brokerq_call(brokerq_t *self, const bus_method_t *m, const ProtobufCMessage *req, ProtobufCMessage **resp,
                 int timeout_ms, bus_error_t *err);
/* Workers connected right now (any thread may call). */
int brokerq_workers(brokerq_t *self);
/* Copy up to max instances; returns how many. */
int brokerq_instances(brokerq_t *self, brokerq_instance_t *out, int max);

#endif
