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

fin_state_t login_fail(fin_ctx_t *c, int code, const char *detail, const char *message)
{
    broker_set_error(&c->err, code, detail, "%s", message);
    return FIN_FAILED;
}

fin_state_t login_consume_failed(fin_ctx_t *c)
{
    switch (c->err.code) {
    case PORTICO__ERROR_CODE__NOT_FOUND:
        if (!strcmp(c->err.detail, "expired"))
            return login_fail(c, PORTICO__ERROR_CODE__NOT_FOUND, "state_expired",
                              "this sign-in took too long and has expired: start again");
        return login_fail(c, PORTICO__ERROR_CODE__NOT_FOUND, "state_unknown",
                          "this sign-in link has expired or was already used: start again");
    case PORTICO__ERROR_CODE__FORBIDDEN:
        c->audit = true;
        if (!strcmp(c->err.detail, "integration"))
            return login_fail(c, PORTICO__ERROR_CODE__FORBIDDEN, "integration",
                              "this sign-in was started for another Bitbucket integration: start again");
        return login_fail(c, PORTICO__ERROR_CODE__FORBIDDEN, "browser",
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
            broker_set_error(&c->err, PORTICO__ERROR_CODE__FORBIDDEN, "integration_disabled",
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
