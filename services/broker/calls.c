/* Calling the registry and the bitbucket service from a broker worker, and
 * turning their errors into answers a person can act on. */
#include "oauth.h"

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int broker_registry_call(broker_worker_t *w, const bus_method_t *m, const ProtobufCMessage *req,
                         ProtobufCMessage **resp, bus_error_t *err)
{
    return bus_call_method(w->registry, m, req, resp, (int)broker_cfg.bus_timeout_ms, err);
}

int broker_bitbucket_call(broker_worker_t *w, const bus_method_t *m, const ProtobufCMessage *req,
                          ProtobufCMessage **resp, bus_error_t *err)
{
    return broker_bitbucket_call_requests(w, m, req, 1, resp, err);
}

int broker_bitbucket_call_requests(broker_worker_t *w, const bus_method_t *m, const ProtobufCMessage *req, int requests,
                                   ProtobufCMessage **resp, bus_error_t *err)
{
    int64_t budget = broker_cfg.bitbucket_timeout_ms * (requests > 1 ? requests : 1);
    int64_t deadline = bus_current_deadline();
    if (deadline) {
        int64_t left = deadline - bus_now_ms() - BROKER_REPLY_MARGIN_MS;
        if (left < budget)
            budget = left;
    }
    if (budget <= 0) {
        if (resp)
            *resp = NULL;
        bus_error_set(err, PORTICO__ERROR_CODE__TIMEOUT, DETAIL(NONE), "Bitbucket did not answer in time");
        return -1;
    }
    int rc = bus_call_method(w->bitbucket, m, req, resp, (int)budget, err);
    if (rc < 0 && err->code == PORTICO__ERROR_CODE__TIMEOUT && err->detail == DETAIL(NONE))
        snprintf(err->message, sizeof err->message, "Bitbucket did not answer in time");
    return rc;
}

void broker_reply_bus_error(bus_reply_t *reply, const bus_error_t *err)
{
    bus_error_set(&reply->err, err->code ? err->code : PORTICO__ERROR_CODE__INTERNAL, err->detail, "%s",
                  err->message[0] ? err->message : "the request failed");
}

int broker_integration_load(broker_worker_t *w, int64_t id, bool with_secrets,
                            Portico__Registry__GetIntegrationReply **out, bus_error_t *err)
{
    *out = NULL;
    if (id <= 0) {
        bus_error_set(err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(INTEGRATION_UNKNOWN), "there is no such integration");
        return -1;
    }
    Portico__Registry__GetIntegrationRequest q = PORTICO__REGISTRY__GET_INTEGRATION_REQUEST__INIT;
    q.id = id;
    q.with_secrets = with_secrets;
    q.without_count = true;
    Portico__Registry__GetIntegrationReply *rep = NULL;
    if (broker_registry_call(w, &registry_m_integration_get, &q.base, (ProtobufCMessage **)&rep, err) < 0) {
        if (err->code == PORTICO__ERROR_CODE__NOT_FOUND)
            bus_error_set(err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(INTEGRATION_UNKNOWN),
                          "there is no such integration");
        return -1;
    }
    if (!rep->integration) {
        broker_integration_free(&rep);
        bus_error_set(err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(INTEGRATION_UNKNOWN), "there is no such integration");
        return -1;
    }
    if (broker_integration_usable(rep->integration, err) < 0) {
        broker_integration_free(&rep);
        return -1;
    }
    *out = rep;
    return 0;
}

int broker_integration_usable(const Portico__Registry__Integration *in, bus_error_t *err)
{
    if (in->enabled)
        return 0;
    bus_error_set(err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(INTEGRATION_DISABLED), "this integration is disabled");
    return -1;
}

void broker_integration_free(Portico__Registry__GetIntegrationReply **rep_p)
{
    if (!rep_p || !*rep_p)
        return;
    Portico__Registry__GetIntegrationReply *rep = *rep_p;
    if (rep->secrets) {
        oauth2_wipe(rep->secrets->client_secret);
        oauth2_wipe(rep->secrets->private_key_pem);
    }
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    *rep_p = NULL;
}

void broker_conn_init(Portico__Bitbucket__Conn *conn, const Portico__Registry__Integration *in)
{
    portico__bitbucket__conn__init(conn);
    conn->base_url = in->base_url;
    conn->ca_cert_pem = in->ca_cert_pem;
    conn->integration_id = in->id;
}

void broker_oauth1_auth(Portico__Bitbucket__Auth *auth, Portico__Bitbucket__OAuth1Credentials *cred,
                        const Portico__Registry__Integration *in, const Portico__Registry__IntegrationSecrets *secrets,
                        const char *token, const char *token_secret)
{
    portico__bitbucket__auth__init(auth);
    portico__bitbucket__oauth1_credentials__init(cred);
    cred->consumer_key = in->consumer_key;
    cred->private_key_pem = secrets ? secrets->private_key_pem : (char *)(uintptr_t) "";
    cred->token = (char *)(uintptr_t)(token ? token : "");
    cred->token_secret = (char *)(uintptr_t)(token_secret ? token_secret : "");
    auth->oauth1 = cred;
}

void broker_audit(broker_worker_t *w, const char *actor, const char *action, const char *object, const char *addr,
                  const char *detail)
{
    Portico__Registry__AuditEntry e = PORTICO__REGISTRY__AUDIT_ENTRY__INIT;
    e.at = bus_now_ms();
    e.actor = (char *)(uintptr_t)(actor ? actor : "");
    e.action = (char *)(uintptr_t)action;
    e.object = (char *)(uintptr_t)(object ? object : "");
    e.addr = (char *)(uintptr_t)(addr ? addr : "");
    e.detail = (char *)(uintptr_t)(detail ? detail : "");
    Portico__Registry__AppendAuditRequest q = PORTICO__REGISTRY__APPEND_AUDIT_REQUEST__INIT;
    q.entry = &e;
    bus_error_t err;
    if (broker_registry_call(w, &registry_m_audit_append, &q.base, NULL, &err) < 0)
        log_warn("could not append to the audit log", "action=%s code=%s", action, bus_code_name(err.code));
}

void broker_explain_bitbucket_error(bus_error_t *err, const char *base_url)
{
    const char *url = base_url && *base_url ? base_url : "the Bitbucket server";
    /* OAuth 1: the bitbucket service names Bitbucket's oauth_problem in the
     * detail; say what it asks of whom. */
    const char *problem = oauth1_problem_message(err->detail);
    if (problem && (err->code == PORTICO__ERROR_CODE__BAD_REQUEST || err->code == PORTICO__ERROR_CODE__UNAUTHORIZED)) {
        snprintf(err->message, sizeof err->message, "%s", problem);
        return;
    }
    switch (err->code) {
    case PORTICO__ERROR_CODE__UNAVAILABLE:
        if (err->detail == DETAIL(UNREACHABLE))
            snprintf(err->message, sizeof err->message,
                     "Portico could not connect to Bitbucket at %s: it may be down, or the address is wrong", url);
        break;
    case PORTICO__ERROR_CODE__TIMEOUT:
        snprintf(err->message, sizeof err->message, "Bitbucket at %s did not answer in time", url);
        break;
    case PORTICO__ERROR_CODE__TLS:
        snprintf(err->message, sizeof err->message,
                 "the secure connection to %s failed: its certificate is not trusted (a private CA needs its CA "
                 "certificate in the integration) or does not match the host name",
                 url);
        break;
    case PORTICO__ERROR_CODE__RATE_LIMITED:
        snprintf(err->message, sizeof err->message, "Bitbucket at %s is limiting requests: try again in a minute", url);
        break;
    case PORTICO__ERROR_CODE__UPSTREAM:
        if (err->detail == DETAIL(NOT_BITBUCKET))
            snprintf(err->message, sizeof err->message,
                     "%s does not answer like Bitbucket Data Center: check the Base URL, including a context path "
                     "such as /bitbucket",
                     url);
        else
            snprintf(err->message, sizeof err->message, "Bitbucket at %s sent an answer Portico cannot use", url);
        break;
    default:
        break;
    }
}
