/* bb_methods: the bus methods of portico-bitbucket, one table.
 *
 * Each method turns its request message into a plan (one HTTP request:
 * method, URL, form body, credentials, CA) and turns Bitbucket's answer
 * into the reply message or a typed error. The event loop (bb_server) runs
 * the plans; nothing here does I/O.
 *
 *   method                 HTTP                                              caller
 *   server.info            GET  /rest/api/1.0/application-properties          broker
 *   oauth2.token           POST /rest/oauth2/latest/token                     broker
 *   whoami                 GET  /plugins/servlet/applinks/whoami              broker
 *   user.get               GET  /rest/api/1.0/users/{slug}                    broker
 *   user.find              GET  /rest/api/1.0/users?filter=&limit=100         broker
 *   repos.list             GET  /rest/api/1.0/repos?permission=&start=&limit= broker
 *   oauth1.request_token   POST /plugins/servlet/oauth/request-token          broker
 *   oauth1.access_token    POST /plugins/servlet/oauth/access-token           broker
 *   resource.readable      GET  /rest/api/1.0/projects/{key}[/repos/{slug}]   broker
 *   login.exchange         token, whoami, users/{name}, repos: one after     broker
 *                          the other (bb_login.c) */
#ifndef PORTICO_BB_METHODS_H
#define PORTICO_BB_METHODS_H

#include "buserr.h"
#include "bb_json.h"
#include "bus.h"

#include <stdbool.h>
#include <stdint.h>

/* One HTTP request to make, with everything it needs. Owns its strings;
 * secrets are wiped by bb_plan_clear. */
typedef struct {
    const char *kind; /* the bus method, also the metrics label */
    bb_api_t api;
    const char *http_method; /* "GET" or "POST" */
    bool idempotent;         /* may be retried after a 429 */
    char *url;
    char *body; /* POST form body */
    char *ca_pem;
    char *accept;
    size_t max_body; /* a longer answer is refused (BB_MAX_BODY, BB_MAX_SMALL_BODY) */
    char host[256];  /* for messages and logs */
    int64_t integration_id;
    int32_t start; /* repos.list: the requested page start */
    /* credentials: signed or formatted afresh for every attempt */
    char *bearer;
    char *o1_consumer_key, *o1_private_key, *o1_token, *o1_callback, *o1_verifier;
    bool oauth1;
    /* A method of several requests in a row: what it has so far. Kept
     * from one request to the next (bb_plan_next), freed by
     * bb_plan_clear with steps_free. */
    void *steps;
    void (*steps_free)(void *steps);
} bb_plan_t;

/* Room left in a bus message for the envelope and routing. */
#define BB_REPLY_ROOM (64 * 1024)

typedef struct {
    const char *name;
    const ProtobufCMessageDescriptor *desc;
    /* Build the plan from the request. 0, or -1 with err (BAD_REQUEST). */
    int (*prepare)(const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err);
    /* Decode the answer into reply (bus_reply_ok) or fill err. note
     * receives a short remark for the log line ("skipped=2"). 0 or -1. */
    int (*finish)(const bb_plan_t *plan, const bb_response_t *r, bus_reply_t *reply, bus_error_t *err, char *note,
                  size_t note_size);
    /* Methods of several requests only (NULL otherwise): after each
     * request's finish (which keeps what it read in plan->steps rather
     * than replying), given how that request went (step_err, code OK when
     * it went well): 1 when plan now holds the next request, 0 when reply
     * holds the answer, -1 when the call fails with err. */
    int (*next)(bb_plan_t *plan, const bus_error_t *step_err, bus_reply_t *reply, bus_error_t *err);
} bb_method_t;

/* The table, ended by an entry with name NULL. */
extern const bb_method_t bb_methods[];
const bb_method_t *bb_method_find(const char *name);

/* The Authorization header value for one attempt (fresh, a secret), or
 * NULL with err when there are no credentials to send: *out stays NULL
 * and 0 is returned for anonymous plans. */
int bb_plan_authorization(const bb_plan_t *plan, char **out, bus_error_t *err);
void bb_plan_clear(bb_plan_t *plan);
/* Clear the request for the next one of a chain; plan->steps stays. */
void bb_plan_next(bb_plan_t *plan);

#endif
