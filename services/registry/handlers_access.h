/* access.* (handlers_access.c): who may log in through an integration, and
 * the re-checks that end access when Bitbucket or the rules end it; plus
 * the two hooks the login path calls. */
#ifndef PORTICO_REGISTRY_HANDLERS_ACCESS_H
#define PORTICO_REGISTRY_HANDLERS_ACCESS_H

#include "handlers.h"

/* An integration's rules as a message; the strings point into res or
 * patterns_buf, so pack the reply before reg_access_clear. */
typedef struct {
    Portico__Registry__AccessRules msg;
    char *patterns_buf;
    char **patterns;
    PGresult *res;
} reg_access_rules_t;

/* The rules of an integration (no rules when none were set). */
db_rc_t reg_access_load(db_t *db, int64_t integration_id, reg_access_rules_t *out);
/* The rules' columns of a query that joins them as `a` (LEFT JOIN
 * access_rules a ON a.integration_id = ...), for reg_access_from_row: a
 * caller that reads them along with something else saves a statement. */
#define REG_ACCESS_JOIN_COLUMNS                                                                                        \
    "a.integration_id IS NOT NULL AS access_set, a.resource AS access_resource, "                                      \
    "array_to_string(a.patterns, E'\\n') AS access_patterns, a.contact AS access_contact, "                            \
    "floor(extract(epoch FROM a.updated_at))::bigint AS access_updated_at, a.updated_by AS access_updated_by"
/* The rules of integration_id from such a row (no rules when the join found
 * none); the strings point into res, which the caller clears after
 * reg_access_clear. 0, or -1 when out of memory. */
int reg_access_from_row(const PGresult *res, int row, int64_t integration_id, reg_access_rules_t *out);
void reg_access_clear(reg_access_rules_t *r);
/* In the login's transaction: the identity has just passed the rules (its
 * next re-check is a full interval away) and the account's "access ended"
 * mark, if any, goes. */
db_rc_t reg_access_after_login(db_t *db, int64_t user_id, int64_t identity_id);

void h_access_get(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_access_set(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_access_due(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_access_result(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_access_ended(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_access_list(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_access_refused(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);

#endif
