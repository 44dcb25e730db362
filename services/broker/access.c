/* Access rules at login, and the re-checks that end access (access.h). */
#include "access.h"

#include "access_rules.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "service.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DUE_BATCH 20
#define CLAIM_S 120
#define MAX_POLL_S 60

static long s_recheck_s = 900;
static pthread_t s_thread;
static bool s_started;
static char s_holder[128];

void broker_access_config(void)
{
    s_recheck_s = broker_cfg.access_recheck_s;
}

/* How often the thread asks for due identities: a tenth of the interval,
 * 1 to 60 s. An identity is due once its check is older than the interval
 * less one poll, so a session ends at most the interval after the event. */
static long s_poll_s(void)
{
    long p = s_recheck_s / 10;
    return p < 1 ? 1 : p > MAX_POLL_S ? MAX_POLL_S : p;
}

bool broker_access_patterns_pass(const Portico__Registry__AccessRules *rules, const char *username, const char *email)
{
    if (!rules || rules->n_patterns == 0)
        return true;
    return access_patterns_match(rules->patterns, rules->n_patterns, username, email);
}

/* resource.readable with auth. 1 readable, 0 not, -1 error in err. */
static int s_readable(broker_worker_t *w, const Portico__Registry__Integration *in,
                      const Portico__Bitbucket__Auth *auth, const char *resource, bus_error_t *err)
{
    char key[ACCESS_MAX_KEY + 1], slug[ACCESS_MAX_SLUG + 1];
    if (access_resource_split(resource, key, sizeof key, slug, sizeof slug) < 0) {
        bus_error_set(err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(ACCESS_RULES), "the access rule is not usable");
        return -1;
    }
    Portico__Bitbucket__Conn conn;
    broker_conn_init(&conn, in);
    Portico__Bitbucket__ReadableRequest q = PORTICO__BITBUCKET__READABLE_REQUEST__INIT;
    q.conn = &conn;
    q.auth = (Portico__Bitbucket__Auth *)(uintptr_t)auth;
    q.project_key = key;
    q.repo_slug = slug;
    Portico__Bitbucket__ReadableReply *rep = NULL;
    if (broker_bitbucket_call(w, &bitbucket_m_resource_readable, &q.base, (ProtobufCMessage **)&rep, err) < 0)
        return -1;
    int readable = rep->readable ? 1 : 0;
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return readable;
}

/* ---- at login ---- */

static fin_state_t s_refuse(fin_ctx_t *c, const Portico__Registry__AccessRules *rules, const char *rule)
{
    char object[48], detail[400];
    snprintf(object, sizeof object, "integration:%" PRId64, c->integration->id);
    if (!strcmp(rule, "resource"))
        snprintf(detail, sizeof detail, "access_restricted rule=resource resource=%s", rules->resource);
    else
        snprintf(detail, sizeof detail, "access_restricted rule=patterns");
    broker_audit(c->w, c->who.username, "login.refused", object, c->in->addr, detail);
    metrics_inc("portico_logins_refused_total", !strcmp(rule, "resource") ? "rule=\"resource\"" : "rule=\"patterns\"",
                1);
    c->audit = false; /* recorded above, with the rule */
    char q[300];
    log_info("login refused by access rules", "integration=%" PRId64 " rule=%s username=%s", c->integration->id, rule,
             log_quote(c->who.username, q, sizeof q));
    char ask[300];
    snprintf(ask, sizeof ask, "Ask %s for access.",
             rules->contact && rules->contact[0] ? rules->contact : "a Portico admin");
    return login_fail(c, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(ACCESS_RESTRICTED), ask);
}

fin_state_t login_check_access(fin_ctx_t *c)
{
    const Portico__Registry__AccessRules *rules = c->consumed ? c->consumed->access : NULL;
    Portico__Registry__AccessRules *loaded = NULL;
    fin_state_t next = FIN_LINK_USER;
    /* As the re-check ends the access of an account Bitbucket deactivated,
     * a login of one does not begin it. */
    if (!c->who.active)
        return login_fail(c, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(USER_INACTIVE),
                          "Bitbucket says the account that signed in is not active");
    if (!rules) {
        /* A registry that does not send the rules with the login. */
        Portico__Registry__GetAccessRequest q = PORTICO__REGISTRY__GET_ACCESS_REQUEST__INIT;
        q.integration_id = c->integration->id;
        if (broker_registry_call(c->w, &registry_m_access_get, &q.base, (ProtobufCMessage **)&loaded, &c->err) < 0)
            return FIN_FAILED;
        rules = loaded;
    }
    if (!broker_access_patterns_pass(rules, c->who.username, c->who.email)) {
        next = s_refuse(c, rules, "patterns");
        goto out;
    }
    if (rules->resource && rules->resource[0]) {
        Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
        Portico__Bitbucket__OAuth1Credentials cred;
        if (c->oauth_version == 1)
            broker_oauth1_auth(&auth, &cred, c->integration, c->secrets, c->o1_tokens->token,
                               c->o1_tokens->token_secret);
        else
            auth.bearer = c->tokens->access_token;
        int readable = s_readable(c->w, c->integration, &auth, rules->resource, &c->err);
        if (readable < 0) {
            broker_explain_bitbucket_error(&c->err, c->integration->base_url);
            next = FIN_FAILED;
        } else if (readable == 0) {
            next = s_refuse(c, rules, "resource");
        }
    }
out:
    if (loaded)
        protobuf_c_message_free_unpacked(&loaded->base, NULL);
    return next;
}

/* ---- re-checks ---- */

typedef struct {
    broker_worker_t *w;
    const Portico__Registry__AccessCheck *k;
    Portico__Registry__GetIntegrationReply *integ;
    broker_tokens_t tok;
    char email[320];
    const char *reason; /* set when access ends */
    int postponed;      /* the code of the failure when it could not decide */
} recheck_t;

/* An OAuth 1 refusal that says nothing about the person's token: the
 * application link's key, the clocks, a proxy rewriting Host, a repeated
 * nonce, the protocol. Fixed on Portico's or Bitbucket's side, the token
 * works again, so the check is postponed, not the access ended. */
static bool s_oauth1_link_problem(int detail)
{
    static const int link[] = {DETAIL(SIGNATURE_INVALID),  DETAIL(CONSUMER_KEY_UNKNOWN),      DETAIL(NONCE_USED),
                               DETAIL(TIMESTAMP_REFUSED),  DETAIL(SIGNATURE_METHOD_REJECTED), DETAIL(PARAMETER_ABSENT),
                               DETAIL(PARAMETER_REJECTED), DETAIL(VERSION_REJECTED),          DETAIL(OAUTH1_PROBLEM)};
    for (size_t i = 0; i < sizeof link / sizeof link[0]; i++)
        if (detail == link[i])
            return true;
    return false;
}

/* user.get of the identity with its own token. 1 got it (active or not
 * in *active), 0 Bitbucket refused the token (UNAUTHORIZED), -1 err. */
static int s_user(recheck_t *r, bool *active, bus_error_t *err)
{
    const Portico__Registry__Integration *in = r->integ->integration;
    Portico__Bitbucket__Conn conn;
    broker_conn_init(&conn, in);
    Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
    Portico__Bitbucket__OAuth1Credentials cred;
    if (in->oauth_version == 1)
        broker_oauth1_auth(&auth, &cred, in, r->integ->secrets, r->tok.access_token, r->tok.token_secret);
    else
        auth.bearer = r->tok.access_token;
    Portico__Bitbucket__GetUserRequest q = PORTICO__BITBUCKET__GET_USER_REQUEST__INIT;
    q.conn = &conn;
    q.auth = &auth;
    q.slug = (char *)(uintptr_t)(r->k->slug[0] ? r->k->slug : r->k->username);
    Portico__Bitbucket__GetUserReply *rep = NULL;
    if (broker_bitbucket_call(r->w, &bitbucket_m_user_get, &q.base, (ProtobufCMessage **)&rep, err) < 0) {
        if (err->code == PORTICO__ERROR_CODE__UNAUTHORIZED && in->oauth_version == 1 &&
            s_oauth1_link_problem(err->detail))
            return -1;
        if (err->code == PORTICO__ERROR_CODE__UNAUTHORIZED)
            return 0;
        if (err->code == PORTICO__ERROR_CODE__NOT_FOUND) {
            r->reason = "user_gone";
            return 1;
        }
        return -1;
    }
    /* The slug stored at login may name someone else now: renamed, with
     * another account taking the old name. That one's state and address
     * are not ours to judge by, or to store. */
    if (rep->user && r->k->bb_user_id > 0 && rep->user->id > 0 && rep->user->id != r->k->bb_user_id) {
        r->reason = "user_gone";
        protobuf_c_message_free_unpacked(&rep->base, NULL);
        return 1;
    }
    *active = rep->user && rep->user->active;
    if (rep->user)
        broker_copy_whole(r->email, sizeof r->email, rep->user->email);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return 1;
}

static int s_token(recheck_t *r, bool force, bus_error_t *err)
{
    if (r->integ->integration->oauth_version == 1)
        return broker_tokens_get_oauth1(r->w, r->k->identity_id, &r->tok, err);
    return broker_tokens_get(r->w, r->k->identity_id, r->integ, force, &r->tok, err);
}

/* 0 decided (r->reason set or not), -1 could not decide now (try later),
 * with r->postponed the code of the failure. */
static int s_decide(recheck_t *r)
{
    bus_error_t err;
    memset(&err, 0, sizeof err);
    if (broker_integration_load(r->w, r->k->integration_id, true, &r->integ, &err) < 0)
        goto postponed;
    if (s_token(r, false, &err) < 0)
        goto token_failed;
    bool active = true;
    int got = s_user(r, &active, &err);
    if (got == 0 && r->integ->integration->oauth_version == 2 && !r->tok.refreshed) {
        /* Refused: the access token may just have ended early; a refresh
         * tells a revoked authorization from that. */
        if (s_token(r, true, &err) < 0)
            goto token_failed;
        got = s_user(r, &active, &err);
    }
    if (got < 0)
        goto postponed;
    if (got == 0) {
        r->reason = "authorization_ended";
        return 0;
    }
    if (r->reason)
        return 0;
    if (!active) {
        r->reason = "user_inactive";
        return 0;
    }
    const Portico__Registry__AccessRules *rules = r->k->rules;
    if (!broker_access_patterns_pass(rules, r->k->username, r->email[0] ? r->email : r->k->email)) {
        r->reason = "rule_patterns";
        return 0;
    }
    if (rules && rules->resource && rules->resource[0]) {
        const Portico__Registry__Integration *in = r->integ->integration;
        Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
        Portico__Bitbucket__OAuth1Credentials cred;
        if (in->oauth_version == 1)
            broker_oauth1_auth(&auth, &cred, in, r->integ->secrets, r->tok.access_token, r->tok.token_secret);
        else
            auth.bearer = r->tok.access_token;
        int readable = s_readable(r->w, in, &auth, rules->resource, &err);
        if (readable < 0)
            goto postponed;
        if (!readable)
            r->reason = "rule_resource";
    }
    return 0;
token_failed:
    if (err.code == PORTICO__ERROR_CODE__UNAUTHORIZED && err.detail == DETAIL(LOGIN_AGAIN)) {
        r->reason = "authorization_ended";
        return 0;
    }
postponed:
    r->postponed = err.code ? err.code : PORTICO__ERROR_CODE__INTERNAL;
    return -1;
}

/* Check one identity. 0 decided, or the code of the failure that
 * postponed it. Bounded as a whole: a Bitbucket that does not answer
 * costs one check this long, not one timeout for each of its calls. */
static int s_recheck(broker_worker_t *w, const Portico__Registry__AccessCheck *k)
{
    recheck_t r;
    memset(&r, 0, sizeof r);
    r.w = w;
    r.k = k;
    bus_set_thread_deadline(bus_now_ms() + 2 * broker_cfg.bitbucket_timeout_ms + broker_cfg.bus_timeout_ms);
    int rc = s_decide(&r);
    bus_set_thread_deadline(0);
    metrics_inc("portico_access_checks_total",
                rc < 0     ? "result=\"postponed\""
                : r.reason ? "result=\"ended\""
                           : "result=\"ok\"",
                1);
    if (rc == 0) {
        Portico__Registry__AccessResultRequest q = PORTICO__REGISTRY__ACCESS_RESULT_REQUEST__INIT;
        q.identity_id = k->identity_id;
        q.claim = k->claim;
        q.ok = r.reason == NULL;
        q.reason = (char *)(uintptr_t)(r.reason ? r.reason : "");
        q.email = r.email;
        Portico__Registry__AccessResultReply *rep = NULL;
        bus_error_t err;
        if (broker_registry_call(w, &registry_m_access_result, &q.base, (ProtobufCMessage **)&rep, &err) < 0)
            log_warn("could not record an access check", "identity=%" PRId64 " code=%s", k->identity_id,
                     bus_code_name(err.code));
        else if (r.reason)
            log_info("access ended by re-check", "identity=%" PRId64 " user=%" PRId64 " reason=%s sessions=%" PRId64,
                     k->identity_id, k->user_id, r.reason, rep->sessions_ended);
        if (rep)
            protobuf_c_message_free_unpacked(&rep->base, NULL);
    } else {
        /* Bitbucket or a service is down: the claim runs out and the
         * identity is tried again; an outage does not end anyone's access. */
        log_info("access re-check postponed", "identity=%" PRId64 " integration=%" PRId64 " code=%s", k->identity_id,
                 k->integration_id, bus_code_name(r.postponed));
    }
    broker_tokens_clear(&r.tok);
    broker_integration_free(&r.integ);
    return rc == 0 ? 0 : r.postponed;
}

/* A Bitbucket that did not answer (or a service on the way) in this batch
 * is not asked again for the batch's other identities: each would wait out
 * the same timeout, and a batch of them held up the checks of every other
 * integration (the registry hands out the oldest checks first). Their
 * claims run out and they come back after the identities not tried yet. */
static bool s_unreachable(int code)
{
    return code == PORTICO__ERROR_CODE__UNAVAILABLE || code == PORTICO__ERROR_CODE__TIMEOUT;
}

static bool s_has(const int64_t *ids, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static void *s_checker(void *arg)
{
    (void)arg;
    broker_worker_t w;
    memset(&w, 0, sizeof w);
    snprintf(w.holder, sizeof w.holder, "%s", s_holder);
    /* Like the workers' clients: CURVE with the broker's key (busauth is set
     * up in main before this thread starts), so the registry and bitbucket
     * admit them as the broker. */
    w.registry = bus_client_new(broker_cfg.registry_endpoint, "registry");
    w.bitbucket = bus_client_new(broker_cfg.bitbucket_endpoint, "bitbucket");
    if (!w.registry || !w.bitbucket) {
        log_error("could not create the access checker's sockets", NULL);
        goto out;
    }
    long poll_ms = s_poll_s() * 1000;
    int64_t next = bus_now_ms() + 500;
    while (!service_stopping()) {
        if (bus_now_ms() < next) {
            usleep(100 * 1000);
            continue;
        }
        next = bus_now_ms() + poll_ms;
        Portico__Registry__DueAccessRequest q = PORTICO__REGISTRY__DUE_ACCESS_REQUEST__INIT;
        q.older_than_s = (int32_t)(s_recheck_s - s_poll_s());
        q.limit = DUE_BATCH;
        q.claim_s = CLAIM_S;
        Portico__Registry__DueAccessReply *due = NULL;
        bus_error_t err;
        if (broker_registry_call(&w, &registry_m_access_due, &q.base, (ProtobufCMessage **)&due, &err) < 0) {
            log_debug("access re-checks skipped", "code=%s", bus_code_name(err.code));
            continue;
        }
        int64_t down[DUE_BATCH];
        size_t ndown = 0;
        for (size_t i = 0; i < due->n_checks && !service_stopping(); i++) {
            const Portico__Registry__AccessCheck *k = due->checks[i];
            if (s_has(down, ndown, k->integration_id)) {
                metrics_inc("portico_access_checks_total", "result=\"postponed\"", 1);
                log_debug("access re-check postponed: its Bitbucket did not answer in this batch",
                          "identity=%" PRId64 " integration=%" PRId64, k->identity_id, k->integration_id);
                continue;
            }
            if (s_unreachable(s_recheck(&w, k)) && ndown < DUE_BATCH)
                down[ndown++] = k->integration_id;
        }
        /* A full batch: more may be waiting. */
        if (due->n_checks == DUE_BATCH)
            next = bus_now_ms();
        protobuf_c_message_free_unpacked(&due->base, NULL);
    }
out:
    bus_client_destroy(&w.registry);
    bus_client_destroy(&w.bitbucket);
    return NULL;
}

int broker_access_start(const char *holder)
{
    snprintf(s_holder, sizeof s_holder, "%s/access", holder);
    metrics_help("portico_access_checks_total", "counter",
                 "Re-checks of signed-in people's access: ok, ended (sessions ended), postponed (Bitbucket or a "
                 "service did not answer)");
    metrics_help("portico_logins_refused_total", "counter", "Logins refused by an integration's access rules");
    if (pthread_create(&s_thread, NULL, s_checker, NULL) != 0)
        return -1;
    s_started = true;
    log_info("access re-checks started", "interval_s=%ld poll_s=%ld", s_recheck_s, s_poll_s());
    return 0;
}

void broker_access_stop(void)
{
    if (s_started)
        pthread_join(s_thread, NULL);
    s_started = false;
}
