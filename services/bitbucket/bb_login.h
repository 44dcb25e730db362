/* bb_login: login.exchange, the requests of a login's callback as one bus
 * call (proto/bitbucket.proto): the token exchange, whoami, users/{name},
 * and the first page of repositories when asked. Each request is planned
 * by the method that makes it on its own (bb_methods.c hands their prepare
 * functions over), so the chain sends exactly what the single calls send;
 * what each answer says is kept in the plan's steps until the reply.
 *
 * No I/O here: bb_server runs each request and calls finish, then next. */
#ifndef PORTICO_BB_LOGIN_H
#define PORTICO_BB_LOGIN_H

#include "bb_methods.h"

typedef int (*bb_prepare_fn)(const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err);

/* The single methods' plans the chain is made of. */
typedef struct {
    bb_prepare_fn token;     /* oauth2.token */
    bb_prepare_fn o1_access; /* oauth1.access_token */
    bb_prepare_fn whoami;
    bb_prepare_fn user_get;
    bb_prepare_fn repos;
} bb_login_steps_t;

/* The first request (the exchange). 0, or -1 with err (BAD_REQUEST). */
int bb_login_prepare(const bb_login_steps_t *steps, const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err);
/* bb_method_t's finish and next for login.exchange. */
int bb_login_finish(const bb_plan_t *plan, const bb_response_t *r, bus_reply_t *reply, bus_error_t *err, char *note,
                    size_t note_size);
int bb_login_next(bb_plan_t *plan, const bus_error_t *step_err, bus_reply_t *reply, bus_error_t *err);

#endif
