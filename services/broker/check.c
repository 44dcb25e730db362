/* integration.check: is this Base URL a Bitbucket that can do what the
 * chosen OAuth version needs? Used by Create Integration and Test
 * connection on the Admin pages. */
#include "oauth.h"

#include "log.h"
#include "url.h"

#include <stdio.h>
#include <string.h>

#define OAUTH2_MIN_VERSION "7.21"
#define OAUTH1_SYNC_MAX_VERSION "8.0"

static void s_record(broker_worker_t *w, const Portico__Broker__CheckIntegrationRequest *in, const char *version,
                     const char *result)
{
    if (in->integration_id <= 0)
        return;
    Portico__Registry__SetTestResultRequest q = PORTICO__REGISTRY__SET_TEST_RESULT_REQUEST__INIT;
    q.id = in->integration_id;
    q.bitbucket_version = (char *)(uintptr_t)(version ? version : "");
    q.result = (char *)(uintptr_t)result;
    q.actor = in->actor;
    bus_error_t err;
    if (broker_registry_call(w, "integration.set_test_result", &q.base, NULL, NULL, &err) < 0)
        log_warn("could not record the test result", "integration=%lld code=%s", (long long)in->integration_id,
                 bus_code_name(err.code));
}

void broker_integration_check(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    broker_worker_t *w = ctx;
    const Portico__Broker__CheckIntegrationRequest *in = (const Portico__Broker__CheckIntegrationRequest *)msg;
    Portico__Bitbucket__ServerInfoReply *info = NULL;
    bus_error_t err = {0};
    char base[2048], why[256];

    int oauth_version = in->oauth_version ? in->oauth_version : 2;
    if (oauth_version != 1 && oauth_version != 2) {
        bus_reply_error(reply, PORTICO__ERROR_CODE__BAD_REQUEST, "oauth_version", "choose OAuth 1 or OAuth 2");
        return;
    }
    if (url_normalize_base(in->base_url, base, sizeof base, why, sizeof why) < 0) {
        bus_reply_error(reply, PORTICO__ERROR_CODE__BAD_REQUEST, "base_url", "%s", why);
        return;
    }
    Portico__Bitbucket__Conn conn = PORTICO__BITBUCKET__CONN__INIT;
    conn.base_url = base;
    conn.ca_cert_pem = in->ca_cert_pem;
    conn.integration_id = in->integration_id;
    Portico__Bitbucket__ServerInfoRequest q = PORTICO__BITBUCKET__SERVER_INFO_REQUEST__INIT;
    q.conn = &conn;
    if (broker_bitbucket_call(w, "server.info", &q.base, &portico__bitbucket__server_info_reply__descriptor,
                              (ProtobufCMessage **)&info, &err) < 0) {
        if (err.code == PORTICO__ERROR_CODE__UNAUTHORIZED)
            snprintf(err.message, sizeof err.message,
                     "%s asks for credentials to read its version: this does not look like Bitbucket Data "
                     "Center's public application-properties endpoint",
                     base);
        else
            broker_explain_bitbucket_error(&err, base);
        s_record(w, in, "", err.message);
        broker_reply_bus_error(reply, &err);
        goto out;
    }
    if (!oauth2_version_valid(info->version)) {
        broker_set_error(&err, PORTICO__ERROR_CODE__UPSTREAM, "not_bitbucket", "x");
        broker_explain_bitbucket_error(&err, base);
        s_record(w, in, "", err.message);
        broker_reply_bus_error(reply, &err);
        goto out;
    }
    Portico__Broker__CheckIntegrationReply out = PORTICO__BROKER__CHECK_INTEGRATION_REPLY__INIT;
    out.version = info->version;
    out.display_name = info->display_name;
    char warning[256] = "";
    if (oauth_version == 2 && oauth2_version_cmp(info->version, OAUTH2_MIN_VERSION) < 0) {
        bus_reply_error(reply, PORTICO__ERROR_CODE__BAD_REQUEST, "oauth2_too_old",
                        "Bitbucket %s is older than " OAUTH2_MIN_VERSION
                        " and has no OAuth 2 application links: choose OAuth 1",
                        info->version);
        s_record(w, in, info->version, reply->message);
        goto out;
    }
    if (oauth_version == 1 && oauth2_version_cmp(info->version, OAUTH1_SYNC_MAX_VERSION) >= 0)
        snprintf(warning, sizeof warning,
                 "From Bitbucket 8 on, OAuth 1 application links cannot be used for synchronization: prefer "
                 "OAuth 2");
    out.warning = warning;
    s_record(w, in, info->version, "ok");
    log_info("integration checked", "integration=%lld version=%s oauth=%d", (long long)in->integration_id,
             info->version, oauth_version);
    bus_reply_ok(reply, &out.base);
out:
    if (info)
        protobuf_c_message_free_unpacked(&info->base, NULL);
}
