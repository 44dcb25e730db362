/* integration.check: is this Base URL a Bitbucket that can do what the
 * chosen OAuth version needs? Used by Create Integration and Test
 * connection on the Admin pages.
 *
 * For an OAuth 1 integration that exists (Test connection), it also asks
 * Bitbucket for a request token signed with the integration's keys: that
 * is the one way to learn whether the application link's Incoming
 * Authentication knows the consumer key and public key, and whether the
 * clocks agree. Not at create time: the keys are generated then. */
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
    /* The registry keeps at most 200 characters of a result. */
    char text[201];
    snprintf(text, sizeof text, "%s", result);
    Portico__Registry__SetTestResultRequest q = PORTICO__REGISTRY__SET_TEST_RESULT_REQUEST__INIT;
    q.id = in->integration_id;
    q.bitbucket_version = (char *)(uintptr_t)(version ? version : "");
    q.result = text;
    q.actor = in->actor;
    bus_error_t err;
    if (broker_registry_call(w, &registry_m_integration_set_test_result, &q.base, NULL, &err) < 0)
        log_warn("could not record the test result", "integration=%lld code=%s", (long long)in->integration_id,
                 bus_code_name(err.code));
}

/* Sign a request-token request with the integration's keys. 1 when the
 * link works, 0 when there is nothing to probe (no such integration yet,
 * not OAuth 1, disabled ones included), -1 with err. The request token is
 * never used: Bitbucket lets it expire. */
static int s_probe_oauth1(broker_worker_t *w, const Portico__Broker__CheckIntegrationRequest *in,
                          const Portico__Bitbucket__Conn *conn, bus_error_t *err)
{
    if (in->integration_id <= 0)
        return 0;
    Portico__Registry__GetIntegrationRequest q = PORTICO__REGISTRY__GET_INTEGRATION_REQUEST__INIT;
    q.id = in->integration_id;
    q.with_secrets = true;
    Portico__Registry__GetIntegrationReply *integ = NULL;
    Portico__Bitbucket__OAuth1TokenReply *tok = NULL;
    bus_error_t e2;
    int rc = 0;
    /* Test connection on a disabled integration is allowed, so not
     * broker_integration_load. */
    if (broker_registry_call(w, &registry_m_integration_get, &q.base, (ProtobufCMessage **)&integ, &e2) < 0)
        goto out;
    const Portico__Registry__Integration *i = integ->integration;
    if (!i || i->oauth_version != 1 || !i->consumer_key[0] || !integ->secrets || !integ->secrets->private_key_pem[0])
        goto out;
    char callback[700];
    if (oauth2_redirect_uri(broker_cfg.public_url, i->id, callback, sizeof callback) < 0)
        goto out;
    Portico__Bitbucket__OAuth1RequestTokenRequest r = PORTICO__BITBUCKET__OAUTH1_REQUEST_TOKEN_REQUEST__INIT;
    r.conn = (Portico__Bitbucket__Conn *)(uintptr_t)conn;
    r.consumer_key = i->consumer_key;
    r.private_key_pem = integ->secrets->private_key_pem;
    r.callback = callback;
    if (broker_bitbucket_call(w, &bitbucket_m_oauth1_request_token, &r.base, (ProtobufCMessage **)&tok, err) < 0) {
        broker_explain_bitbucket_error(err, conn->base_url);
        rc = -1;
        goto out;
    }
    rc = 1;
out:
    if (tok) {
        oauth2_wipe(tok->token);
        oauth2_wipe(tok->token_secret);
        protobuf_c_message_free_unpacked(&tok->base, NULL);
    }
    broker_integration_free(&integ);
    return rc;
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
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(OAUTH_VERSION),
                      "choose OAuth 1 or OAuth 2");
        return;
    }
    if (url_normalize_base(in->base_url, base, sizeof base, why, sizeof why) < 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(BASE_URL), "%s", why);
        return;
    }
    Portico__Bitbucket__Conn conn = PORTICO__BITBUCKET__CONN__INIT;
    conn.base_url = base;
    conn.ca_cert_pem = in->ca_cert_pem;
    conn.integration_id = in->integration_id;
    Portico__Bitbucket__ServerInfoRequest q = PORTICO__BITBUCKET__SERVER_INFO_REQUEST__INIT;
    q.conn = &conn;
    if (broker_bitbucket_call(w, &bitbucket_m_server_info, &q.base, (ProtobufCMessage **)&info, &err) < 0) {
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
        bus_error_set(&err, PORTICO__ERROR_CODE__UPSTREAM, DETAIL(NOT_BITBUCKET), "x");
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
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(OAUTH2_TOO_OLD),
                      "Bitbucket %s is older than " OAUTH2_MIN_VERSION
                      " and has no OAuth 2 application links: choose OAuth 1",
                      info->version);
        s_record(w, in, info->version, reply->err.message);
        goto out;
    }
    if (oauth_version == 1 && oauth2_version_cmp(info->version, OAUTH1_SYNC_MAX_VERSION) >= 0)
        snprintf(warning, sizeof warning,
                 "From Bitbucket 8 on, OAuth 1 application links cannot be used for synchronization: prefer "
                 "OAuth 2");
    if (oauth_version == 1 && s_probe_oauth1(w, in, &conn, &err) < 0) {
        char dq[100];
        log_info("integration check failed", "integration=%lld oauth=1 code=%s detail=%s",
                 (long long)in->integration_id, bus_code_name(err.code),
                 log_quote(bus_detail_name(err.detail), dq, sizeof dq));
        s_record(w, in, info->version, err.message);
        broker_reply_bus_error(reply, &err);
        goto out;
    }
    out.warning = warning;
    s_record(w, in, info->version, "ok");
    char vq[100];
    log_info("integration checked", "integration=%lld version=%s oauth=%d", (long long)in->integration_id,
             log_quote(info->version, vq, sizeof vq), oauth_version);
    bus_reply_ok(reply, &out.base);
out:
    if (info)
        protobuf_c_message_free_unpacked(&info->base, NULL);
}
