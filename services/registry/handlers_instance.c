/* instance.*: which webs are alive, for every web's status page. Webs do
 * not know each other; each reports here every few seconds. */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INSTANCE 96
#define MAX_VERSION 64
#define MAX_STATUS 160
/* A list is for a page: a bound keeps a flood of names off it. */
#define MAX_LISTED 64

static const db_stmt_t s_report = {
    "instance_report", "INSERT INTO web_instances (instance, version, ready, status) VALUES ($1, $2, $3, $4) "
                       "ON CONFLICT (instance) DO UPDATE SET version = excluded.version, ready = excluded.ready, "
                       "  status = excluded.status, seen_at = now()"};
static const db_stmt_t s_list = {
    "instance_list", "SELECT instance, version, ready, status, floor(extract(epoch FROM now() - seen_at))::bigint "
                     "AS seen_seconds_ago "
                     "FROM web_instances WHERE seen_at > now() - interval '1 minute' ORDER BY instance LIMIT 64"};

void h_instance_report(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__InstanceReportRequest *r = (const Portico__Registry__InstanceReportRequest *)msg;
    if (!reg_check_text(reply, DETAIL(INSTANCE), "instance", r->instance, MAX_INSTANCE, REG_REQUIRED) ||
        !reg_check_text(reply, DETAIL(VERSION), "version", r->version, MAX_VERSION, REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(STATUS), "status", r->status, MAX_STATUS, REG_OPTIONAL))
        return;
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, r->instance);
    db_param_text(&p, r->version);
    db_param_bool(&p, r->ready);
    db_param_text(&p, r->status);
    db_rc_t rc = db_exec(c->db, &s_report, &p, NULL);
    if (rc != DB_OK)
        reg_reply_db(reply, rc);
    else
        reg_reply_empty(reply);
}

void h_instance_list(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    (void)msg;
    reg_ctx_t *c = ctx;
    PGresult *res = NULL;
    db_rc_t rc = db_exec(c->db, &s_list, NULL, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    int n = PQntuples(res);
    if (n > MAX_LISTED)
        n = MAX_LISTED;
    Portico__Registry__WebInstance items[MAX_LISTED];
    Portico__Registry__WebInstance *ptrs[MAX_LISTED];
    const int c_instance = db_col(res, "instance"), c_version = db_col(res, "version"), c_ready = db_col(res, "ready"),
              c_status = db_col(res, "status"), c_seen = db_col(res, "seen_seconds_ago");
    for (int i = 0; i < n; i++) {
        portico__registry__web_instance__init(&items[i]);
        items[i].instance = PQgetvalue(res, i, c_instance);
        items[i].version = PQgetvalue(res, i, c_version);
        items[i].ready = !strcmp(PQgetvalue(res, i, c_ready), "t");
        items[i].status = PQgetvalue(res, i, c_status);
        items[i].seen_seconds_ago = strtoll(PQgetvalue(res, i, c_seen), NULL, 10);
        ptrs[i] = &items[i];
    }
    Portico__Registry__ListInstancesReply out = PORTICO__REGISTRY__LIST_INSTANCES_REPLY__INIT;
    out.n_instances = (size_t)n;
    out.instances = ptrs;
    bus_reply_ok(reply, &out.base);
    PQclear(res);
}
