/* rotate-key, a preset setup token, and stopping with requests in flight,
 * on a database and registries of their own. */
#include "harness.h"

#include "crypto.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PRESET_TOKEN "preset-setup-token-0123456789abcdef"

static char s_out[16384];
static char s_key2[512];
static int64_t s_oauth2, s_oauth1, s_identity;

static int s_call(h_registry_t *r, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, bus_error_t *err)
{
    bus_client_t *c = bus_client_new(r->endpoint, "registry");
    int rc = h_call_with(c, method, req, desc, out, err);
    bus_client_destroy(&c);
    return rc;
}

typedef struct {
    h_registry_t *r;
    atomic_bool stop;
    _Atomic int64_t exited_at; /* when the registry process was seen gone */
    int ok, failed;
    long worst_ms; /* of the calls made while the registry was alive */
} hammer_t;

static void *s_hammer(void *arg)
{
    hammer_t *h = arg;
    bus_client_t *c = bus_client_new(h->r->endpoint, "registry");
    while (!atomic_load(&h->stop)) {
        bus_error_t err;
        int64_t t0 = h_now_ms();
        /* A short timeout: a call made once the registry has closed its bus
         * socket waits for an instance to come back, as during a restart,
         * and runs out; such calls are not judged. A normal build is gone
         * a few ms after that close, one built with sanitizers much later
         * (LeakSanitizer's scan), and a loaded machine may take tens of ms
         * more to reap either: calls in the last second are not judged. */
        int rc = bus_call(c, "settings.get", NULL, NULL, NULL, 1500, &err);
        long took = (long)(h_now_ms() - t0);
        int64_t exited = atomic_load(&h->exited_at), window = 1000;
        if ((exited == 0 || t0 < exited - window) && took > h->worst_ms)
            h->worst_ms = took;
        if (rc == 0)
            h->ok++;
        else
            h->failed++;
        if (rc != 0)
            h_sleep_ms(20);
    }
    bus_client_destroy(&c);
    return NULL;
}

static void test_seed_with_a_preset_setup_token(void **state)
{
    (void)state;
    bus_error_t err;
    h_create_database("rot");
    snprintf(s_key2, sizeof s_key2, "%s/key2", h_env("REG_TEST_TMP"));
    assert_int_equal(h_run(s_out, sizeof s_out, "head -c 32 /dev/urandom | base64 > %s", s_key2), 0);
    assert_int_equal(chmod(s_key2, 0600), 0); /* whatever the umask */

    const char *env[] = {"PORTICO_SETUP_TOKEN=" PRESET_TOKEN, NULL};
    h_registry_t r;
    assert_int_equal(h_registry_start(&r, "rot", env), 0);

    /* The preset token works and no token is logged. */
    uint8_t hbuf[32];
    Portico__Registry__CreateSessionRequest cs = PORTICO__REGISTRY__CREATE_SESSION_REQUEST__INIT;
    cs.token_hash = h_hash("rotation-setup-cookie", hbuf);
    cs.setup = true;
    Portico__Registry__CheckSetupTokenRequest ct = PORTICO__REGISTRY__CHECK_SETUP_TOKEN_REQUEST__INIT;
    ct.token = PRESET_TOKEN;
    ct.session = &cs;
    assert_code(0, s_call(&r, "settings.check_setup_token", &ct.base, NULL, NULL, &err), err);
    char *log = h_read_file(r.log);
    assert_null(strstr(log, "setup_token="));
    assert_null(strstr(log, PRESET_TOKEN));
    assert_non_null(strstr(log, "setup token taken from PORTICO_SETUP_TOKEN"));
    free(log);
    /* Setup Mode cannot end before there is an admin. */
    Portico__Registry__SetSetupModeRequest sm = PORTICO__REGISTRY__SET_SETUP_MODE_REQUEST__INIT;
    assert_code(PORTICO__ERROR_CODE__CONFLICT, s_call(&r, "settings.set_setup_mode", &sm.base, NULL, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(NO_ADMIN));

    Portico__Registry__Integration in = PORTICO__REGISTRY__INTEGRATION__INIT;
    Portico__Registry__CreateIntegrationRequest cr = PORTICO__REGISTRY__CREATE_INTEGRATION_REQUEST__INIT;
    cr.integration = &in;
    in.base_url = "https://rot.example.com";
    in.oauth_version = 2;
    in.client_id = "rot-client";
    cr.client_secret = "rot-secret";
    ProtobufCMessage *out = NULL;
    assert_code(
        0,
        s_call(&r, "integration.create", &cr.base, &portico__registry__get_integration_reply__descriptor, &out, &err),
        err);
    s_oauth2 = ((Portico__Registry__GetIntegrationReply *)out)->integration->id;
    protobuf_c_message_free_unpacked(out, NULL);
    in.oauth_version = 1;
    in.client_id = "";
    cr.client_secret = "";
    assert_code(
        0,
        s_call(&r, "integration.create", &cr.base, &portico__registry__get_integration_reply__descriptor, &out, &err),
        err);
    s_oauth1 = ((Portico__Registry__GetIntegrationReply *)out)->integration->id;
    protobuf_c_message_free_unpacked(out, NULL);

    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = s_oauth2;
    d.bb_user_id = 1;
    d.username = "rot-user";
    bus_client_t *pc = bus_client_new(r.endpoint, "registry");
    h_pending_t pend;
    assert_int_equal(h_pending_with(pc, s_oauth2, &pend), 0);
    bus_client_destroy(&pc);
    Portico__Registry__LoginRequest lr = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    lr.identity = &d;
    lr.pending = &pend.finish;
    assert_code(0, s_call(&r, "user.login", &lr.base, &portico__registry__login_reply__descriptor, &out, &err), err);
    s_identity = ((Portico__Registry__LoginReply *)out)->identity_id;
    protobuf_c_message_free_unpacked(out, NULL);

    Portico__Registry__Tokens t = PORTICO__REGISTRY__TOKENS__INIT;
    t.access_token = "rot-access";
    t.refresh_token = "rot-refresh";
    Portico__Registry__StoreTokensRequest st = PORTICO__REGISTRY__STORE_TOKENS_REQUEST__INIT;
    st.identity_id = s_identity;
    st.tokens = &t;
    assert_code(0, s_call(&r, "token.store", &st.base, NULL, NULL, &err), err);

    uint8_t sb[32], bb[32];
    Portico__Registry__PendingLogin pl = PORTICO__REGISTRY__PENDING_LOGIN__INIT;
    pl.state_hash = h_hash("rot-state", sb);
    pl.browser_hash = h_hash("rot-browser", bb);
    pl.integration_id = s_oauth2;
    pl.code_verifier = "rot-verifier";
    Portico__Registry__CreatePendingRequest pr = PORTICO__REGISTRY__CREATE_PENDING_REQUEST__INIT;
    pr.pending = &pl;
    assert_code(0, s_call(&r, "pending.create", &pr.base, NULL, NULL, &err), err);

    /* Stop it while clients are busy: in-flight requests are answered, the
     * process exits 0 within 5 s. */
    hammer_t h[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memset(&h[i], 0, sizeof h[i]);
        h[i].r = &r;
        pthread_create(&th[i], NULL, s_hammer, &h[i]);
    }
    h_sleep_ms(300);
    long elapsed = 0;
    int status = h_registry_stop(&r, &elapsed);
    for (int i = 0; i < 3; i++)
        atomic_store(&h[i].exited_at, h_now_ms());
    for (int i = 0; i < 3; i++) {
        atomic_store(&h[i].stop, true);
        pthread_join(th[i], NULL);
        assert_true(h[i].ok > 0);
        /* Answered (OK, or UNAVAILABLE while stopping), never left hanging. */
        if (h[i].worst_ms >= 1000) { /* less than the 1.5 s a lost call would wait */
            print_error("a call made while the registry was stopping took %ld ms\n", h[i].worst_ms);
            fail();
        }
    }
    assert_int_equal(status, 0);
    assert_true(elapsed < 5000);
    print_message("    stopped with exit status 0 in %ld ms while 3 clients were calling\n", elapsed);
}

static void test_rotate_key(void **state)
{
    (void)state;
    char conninfo[1024];
    h_conninfo("rot", conninfo, sizeof conninfo);
    int rc = h_run(s_out, sizeof s_out, "PORTICO_DATABASE_URL='%s' %s rotate-key %s", conninfo, h_env("REG_TEST_BIN"),
                   s_key2);
    if (rc != 0)
        print_error("%s\n", s_out);
    assert_int_equal(rc, 0);
    /* client secret, private key, access and refresh token, code verifier */
    assert_non_null(strstr(s_out, "Re-encrypted 5 secrets"));
    /* Values sealed with the old key meanwhile: it asks for another run. */
    assert_non_null(strstr(s_out, "then run this command again"));
    assert_non_null(strstr(s_out, "PORTICO_SECRET_KEY_FILE="));
    char warned[700]; /* the warning's field for the new key's file */
    snprintf(warned, sizeof warned, "file=\"%s\" mode=", s_key2);
    assert_null(strstr(s_out, warned));

    crypto_keyring_t *k = crypto_keyring_new();
    char why[300];
    assert_int_equal(crypto_keyring_add_file(k, s_key2, true, why, sizeof why), 0);
    char sql[1024];
    uint32_t id = crypto_keyring_primary_id(k);
    crypto_keyring_destroy(&k);
    PGconn *c = h_pg("rot");
    const char *columns[][2] = {{"integrations", "client_secret"},
                                {"integrations", "private_key"},
                                {"tokens", "access_token"},
                                {"tokens", "refresh_token"},
                                {"pending_logins", "code_verifier"}};
    for (size_t i = 0; i < sizeof columns / sizeof columns[0]; i++) {
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FILTER (WHERE substring(%s FROM 2 FOR 4) = '\\x%08x'), count(%s) FROM %s",
                 columns[i][1], id, columns[i][1], columns[i][0]);
        PGresult *res = PQexec(c, sql);
        assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
        assert_string_equal(PQgetvalue(res, 0, 0), "1");
        assert_string_equal(PQgetvalue(res, 0, 1), "1");
        PQclear(res);
    }
    PQfinish(c);

    /* A key file others may write is named in a warning, not refused. */
    assert_int_equal(chmod(s_key2, 0666), 0);
    rc = h_run(s_out, sizeof s_out, "PORTICO_DATABASE_URL='%s' %s rotate-key %s", conninfo, h_env("REG_TEST_BIN"),
               s_key2);
    assert_int_equal(chmod(s_key2, 0600), 0);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(s_out, "key file writable by other users"));
    assert_non_null(strstr(s_out, warned));
    assert_non_null(strstr(s_out, "mode=0666"));
    assert_non_null(strstr(s_out, "Re-encrypted 0 secrets"));
    assert_non_null(strstr(s_out, "5 were already under it"));
    assert_non_null(strstr(s_out, "the old key is no longer needed"));
}

static void test_secrets_read_with_only_the_new_key(void **state)
{
    (void)state;
    bus_error_t err;
    char key_env[600];
    snprintf(key_env, sizeof key_env, "PORTICO_SECRET_KEY_FILE=%s", s_key2);
    const char *env[] = {key_env, "PORTICO_SECRET_KEY_FILE_PREVIOUS=", NULL};
    h_registry_t r;
    assert_int_equal(h_registry_start(&r, "rot", env), 0);

    Portico__Registry__GetIntegrationRequest g = PORTICO__REGISTRY__GET_INTEGRATION_REQUEST__INIT;
    g.id = s_oauth2;
    g.with_secrets = true;
    ProtobufCMessage *out = NULL;
    assert_code(
        0, s_call(&r, "integration.get", &g.base, &portico__registry__get_integration_reply__descriptor, &out, &err),
        err);
    assert_string_equal(((Portico__Registry__GetIntegrationReply *)out)->secrets->client_secret, "rot-secret");
    protobuf_c_message_free_unpacked(out, NULL);
    g.id = s_oauth1;
    assert_code(
        0, s_call(&r, "integration.get", &g.base, &portico__registry__get_integration_reply__descriptor, &out, &err),
        err);
    assert_true(!strncmp(((Portico__Registry__GetIntegrationReply *)out)->secrets->private_key_pem,
                         "-----BEGIN PRIVATE KEY-----", 27));
    protobuf_c_message_free_unpacked(out, NULL);

    Portico__Registry__GetTokensRequest gt = PORTICO__REGISTRY__GET_TOKENS_REQUEST__INIT;
    gt.identity_id = s_identity;
    assert_code(0, s_call(&r, "token.get", &gt.base, &portico__registry__get_tokens_reply__descriptor, &out, &err),
                err);
    assert_string_equal(((Portico__Registry__GetTokensReply *)out)->tokens->access_token, "rot-access");
    assert_string_equal(((Portico__Registry__GetTokensReply *)out)->tokens->refresh_token, "rot-refresh");
    protobuf_c_message_free_unpacked(out, NULL);

    uint8_t sb[32], bb[32];
    Portico__Registry__ConsumePendingRequest cp = PORTICO__REGISTRY__CONSUME_PENDING_REQUEST__INIT;
    cp.state_hash = h_hash("rot-state", sb);
    cp.browser_hash = h_hash("rot-browser", bb);
    cp.integration_id = s_oauth2;
    assert_code(
        0, s_call(&r, "pending.consume", &cp.base, &portico__registry__consume_pending_reply__descriptor, &out, &err),
        err);
    assert_string_equal(((Portico__Registry__ConsumePendingReply *)out)->pending->code_verifier, "rot-verifier");
    protobuf_c_message_free_unpacked(out, NULL);
    assert_int_equal(h_registry_stop(&r, NULL), 0);
    /* Every stored secret opens with its key: nothing said at start. */
    char *log = h_read_file(r.log);
    assert_non_null(log);
    assert_null(strstr(log, "sealed with a key this registry was not given"));
    free(log);

    /* And the old key alone no longer opens them. */
    h_registry_t old;
    const char *old_env[] = {"PORTICO_SECRET_KEY_FILE_PREVIOUS=", NULL};
    assert_int_equal(h_registry_start(&old, "rot", old_env), 0);
    g.id = s_oauth2;
    assert_code(
        PORTICO__ERROR_CODE__INTERNAL,
        s_call(&old, "integration.get", &g.base, &portico__registry__get_integration_reply__descriptor, &out, &err),
        err);
    assert_int_equal(err.detail, DETAIL(KEY));
    assert_int_equal(h_registry_stop(&old, NULL), 0);
    /* ... which it said when it started, column by column. */
    log = h_read_file(old.log);
    assert_non_null(log);
    assert_non_null(strstr(log, "sealed with a key this registry was not given"));
    assert_non_null(strstr(log, "column=integrations.client_secret values=1 opened_by_its_keys=0"));
    assert_non_null(strstr(log, "column=tokens.access_token values=1"));
    free(log);
}

int run_rotation_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_with_a_preset_setup_token),
        cmocka_unit_test(test_rotate_key),
        cmocka_unit_test(test_secrets_read_with_only_the_new_key),
    };
    return cmocka_run_group_tests_name("key rotation", tests, NULL, NULL);
}
