/* login_steps: the pieces both OAuth versions' login steps use: failing
 * a step, the browser binding, the integration of a pending login and the
 * wording of a failed pending.consume. login.c (the machines and the
 * OAuth 2 steps), login_oauth1.c and access.c build on it; it knows none
 * of them, so no two of those files depend on each other. */
#include "login_steps.h"

#include "crypto.h"

#include <string.h>

int login_browser_hash(const fin_ctx_t *c, uint8_t scratch[32], ProtobufCBinaryData *out)
{
    *out = c->in->browser_hash;
    if (out->len == 32)
        return 0;
    if (crypto_random(scratch, 32) < 0)
        return -1;
    out->data = scratch;
    out->len = 32;
    return 0;
}

fin_state_t login_fail(fin_ctx_t *c, int code, int detail, const char *message)
{
    bus_error_set(&c->err, code, detail, "%s", message);
    return FIN_FAILED;
}

fin_state_t login_consume_failed(fin_ctx_t *c)
{
    switch (c->err.code) {
    case PORTICO__ERROR_CODE__NOT_FOUND:
        if (c->err.detail == DETAIL(EXPIRED))
            return login_fail(c, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(STATE_EXPIRED),
                              "this sign-in took too long and has expired: start again");
        return login_fail(c, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(STATE_UNKNOWN),
                          "this sign-in link has expired or was already used: start again");
    case PORTICO__ERROR_CODE__FORBIDDEN:
        c->audit = true;
        if (c->err.detail == DETAIL(INTEGRATION))
            return login_fail(c, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(INTEGRATION),
                              "this sign-in was started for another Bitbucket integration: start again");
        return login_fail(c, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(BROWSER),
                          "this sign-in was started in another browser: start again here");
    default:
        return FIN_FAILED;
    }
}

int login_integration(fin_ctx_t *c)
{
    const Portico__Registry__ConsumePendingReply *p = c->consumed;
    if (p && p->integration && p->integration->id == c->in->integration_id) {
        if (!p->integration->enabled) {
            bus_error_set(&c->err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(INTEGRATION_DISABLED),
                          "this integration is disabled");
            return -1;
        }
        c->integration = p->integration;
        c->secrets = p->secrets;
        return 0;
    }
    /* A registry that does not send the integration with the login. */
    if (broker_integration_load(c->w, c->in->integration_id, true, &c->integ, &c->err) < 0)
        return -1;
    c->integration = c->integ->integration;
    c->secrets = c->integ->secrets;
    return 0;
}

int login_pending_read(fin_ctx_t *c, Portico__Registry__ConsumePendingRequest *q, bool can_succeed)
{
    q->keep = can_succeed;
    if (broker_registry_call(c->w, &registry_m_pending_consume, &q->base, (ProtobufCMessage **)&c->consumed, &c->err) <
        0)
        return -1;
    if (!can_succeed)
        return 0;
    c->kept = true;
    portico__registry__consume_pending_request__init(&c->finish);
    if (q->state_hash.len == 32) {
        memcpy(c->finish_state, q->state_hash.data, 32);
        c->finish.state_hash.data = c->finish_state;
        c->finish.state_hash.len = 32;
    }
    c->finish.request_token = q->request_token;
    if (q->browser_hash.len == 32) {
        memcpy(c->finish_browser, q->browser_hash.data, 32);
        c->finish.browser_hash.data = c->finish_browser;
        c->finish.browser_hash.len = 32;
    }
    c->finish.integration_id = q->integration_id;
    return 0;
}
