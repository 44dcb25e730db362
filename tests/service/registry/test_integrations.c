/* integration.*: reserve, create, validate, read, update, test, delete. */
#include "harness.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t s_reserve(void)
{
    ProtobufCMessage *out = NULL;
    bus_error_t err;
    assert_code(0, h_call("integration.reserve_id", NULL, &portico__registry__reserve_id_reply__descriptor, &out, &err),
                err);
    int64_t id = ((Portico__Registry__ReserveIdReply *)out)->id;
    protobuf_c_message_free_unpacked(out, NULL);
    return id;
}

typedef struct {
    int64_t id;
    const char *base_url;
    int oauth_version;
    const char *client_id;
    const char *client_secret;
    const char *name;
    const char *ca_cert;
} create_t;

static int s_create(const create_t *c, Portico__Registry__GetIntegrationReply **out, bus_error_t *err)
{
    Portico__Registry__Integration in = PORTICO__REGISTRY__INTEGRATION__INIT;
    in.id = c->id;
    in.base_url = (char *)(uintptr_t)(c->base_url ? c->base_url : "");
    in.oauth_version = c->oauth_version;
    in.client_id = (char *)(uintptr_t)(c->client_id ? c->client_id : "");
    in.name = (char *)(uintptr_t)(c->name ? c->name : "");
    in.ca_cert_pem = (char *)(uintptr_t)(c->ca_cert ? c->ca_cert : "");
    Portico__Registry__CreateIntegrationRequest req = PORTICO__REGISTRY__CREATE_INTEGRATION_REQUEST__INIT;
    req.integration = &in;
    req.client_secret = (char *)(uintptr_t)(c->client_secret ? c->client_secret : "");
    req.actor = "admin-test";
    req.addr = "203.0.113.5";
    ProtobufCMessage *m = NULL;
    int rc = h_call("integration.create", &req.base, &portico__registry__get_integration_reply__descriptor,
                    out ? &m : NULL, err);
    if (out)
        *out = (Portico__Registry__GetIntegrationReply *)m;
    return rc;
}

static Portico__Registry__GetIntegrationReply *s_get(int64_t id, bool with_secrets, int expect)
{
    Portico__Registry__GetIntegrationRequest req = PORTICO__REGISTRY__GET_INTEGRATION_REQUEST__INIT;
    req.id = id;
    req.with_secrets = with_secrets;
    ProtobufCMessage *out = NULL;
    bus_error_t err;
    assert_code(expect,
                h_call("integration.get", &req.base, &portico__registry__get_integration_reply__descriptor, &out, &err),
                err);
    return (Portico__Registry__GetIntegrationReply *)out;
}

static void test_reserve_ids_are_distinct(void **state)
{
    (void)state;
    int64_t a = s_reserve(), b = s_reserve();
    assert_true(a > 0);
    assert_true(b > a);
}

static void test_create_oauth2_normalises_and_defaults(void **state)
{
    (void)state;
    bus_error_t err;
    Portico__Registry__GetIntegrationReply *r = NULL;
    create_t c = {s_reserve(), "HTTPS://Git.Example.COM/bitbucket/", 2, "client-a", "secret-a", NULL, NULL};
    assert_code(0, s_create(&c, &r, &err), err);
    Portico__Registry__Integration *in = r->integration;
    assert_int_equal(in->id, c.id);
    assert_string_equal(in->base_url, "https://git.example.com/bitbucket");
    assert_string_equal(in->name, "git.example.com");
    assert_string_equal(in->platform, "bitbucket-dc");
    assert_string_equal(in->client_id, "client-a");
    assert_true(in->has_client_secret);
    assert_true(in->enabled);
    assert_int_equal(in->oauth_version, 2);
    assert_string_equal(in->created_by, "admin-test");
    assert_true(in->created_at > 0);
    assert_string_equal(in->consumer_key, "");
    assert_string_equal(in->public_key_pem, "");
    protobuf_c_message_free_unpacked(&r->base, NULL);

    r = s_get(c.id, true, 0);
    assert_non_null(r->secrets);
    assert_string_equal(r->secrets->client_secret, "secret-a");
    assert_string_equal(r->secrets->private_key_pem, "");
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* Without with_secrets, no secrets travel. */
    r = s_get(c.id, false, 0);
    assert_null(r->secrets);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void test_bad_base_urls_are_refused_on_the_field(void **state)
{
    (void)state;
    const char *bad[] = {"ftp://git.example.com",
                         "https://user:pw@git.example.com",
                         "https://user@git.example.com",
                         "https://git.example.com/?a=b",
                         "https://git.example.com/#frag",
                         "",
                         "git.example.com",
                         "https://",
                         "https://git.example.com/a b",
                         "javascript:alert(1)"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bus_error_t err;
        create_t c = {0, bad[i], 2, "client-bad", "secret", NULL, NULL};
        int rc = s_create(&c, NULL, &err);
        if (rc != PORTICO__ERROR_CODE__BAD_REQUEST || err.detail != DETAIL(BASE_URL)) {
            print_error("base URL \"%s\": got %s detail \"%s\"\n", bad[i], bus_code_name(rc),
                        bus_detail_name(err.detail));
            fail();
        }
        assert_true(strlen(err.message) > 0);
    }
}

static void test_context_path_kept_and_trailing_slash_removed(void **state)
{
    (void)state;
    bus_error_t err;
    Portico__Registry__GetIntegrationReply *r = NULL;
    create_t c = {0, "http://ctx.example.com:7990/tools/bitbucket/", 2, "client-ctx", "s", "Tools BB", NULL};
    assert_code(0, s_create(&c, &r, &err), err);
    assert_string_equal(r->integration->base_url, "http://ctx.example.com:7990/tools/bitbucket");
    assert_string_equal(r->integration->name, "Tools BB");
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void test_field_validation_names_the_field(void **state)
{
    (void)state;
    struct {
        create_t c;
        const char *field;
    } cases[] = {
        {{0, "https://v1.example.com", 2, "", "s", NULL, NULL}, "client_id"},
        {{0, "https://v2.example.com", 2, "cid", "", NULL, NULL}, "client_secret"},
        {{0, "https://v3.example.com", 3, "cid", "s", NULL, NULL}, "oauth_version"},
        {{0, "https://v4.example.com", 0, "cid", "s", NULL, NULL}, "oauth_version"},
        {{0, "https://v5.example.com", 2, "cid", "s",
          "a name that is far too long for anyone to read in a list "
          "of integrations, really far too long indeed yes",
          NULL},
         "name"},
        {{0, "https://v6.example.com", 2, "cid", "s", "tab\there", NULL}, "name"},
        {{0, "https://v7.example.com", 2, "cid", "s", NULL, "not a certificate"}, "ca_cert"},
        {{0, "https://v8.example.com", 2, "cid", "s", NULL,
          "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
         "ca_cert"},
        {{0, "https://v9.example.com", 2, "bad\nid", "s", NULL, NULL}, "client_id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bus_error_t err;
        int rc = s_create(&cases[i].c, NULL, &err);
        if (rc != PORTICO__ERROR_CODE__BAD_REQUEST || strcmp(bus_detail_name(err.detail), cases[i].field) != 0) {
            print_error("case %zu: got %s detail \"%s\" (%s), want BAD_REQUEST %s\n", i, bus_code_name(rc),
                        bus_detail_name(err.detail), err.message, cases[i].field);
            fail();
        }
    }
}

static void test_ca_cert_accepted_when_it_parses(void **state)
{
    (void)state;
    char *pem = h_read_file(h_env("REG_TEST_CA_PEM"));
    assert_non_null(pem);
    bus_error_t err;
    Portico__Registry__GetIntegrationReply *r = NULL;
    create_t c = {0, "https://private-ca.example.com", 2, "client-ca", "s", NULL, pem};
    assert_code(0, s_create(&c, &r, &err), err);
    assert_string_equal(r->integration->ca_cert_pem, pem);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    free(pem);
}

static void test_duplicate_is_a_conflict(void **state)
{
    (void)state;
    bus_error_t err;
    create_t c = {0, "https://dup.example.com/bb", 2, "client-dup", "s", NULL, NULL};
    assert_code(0, s_create(&c, NULL, &err), err);
    /* Same instance written differently, same client: a duplicate. */
    create_t again = {0, "https://DUP.example.com/bb/", 2, "client-dup", "other", NULL, NULL};
    assert_code(PORTICO__ERROR_CODE__CONFLICT, s_create(&again, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(DUPLICATE));
    assert_non_null(strstr(err.message, "https://dup.example.com/bb"));
    /* Another client on the same instance is fine. */
    create_t other = {0, "https://dup.example.com/bb", 2, "client-dup-2", "s", NULL, NULL};
    assert_code(0, s_create(&other, NULL, &err), err);
}

static void test_reserved_ids_are_enforced(void **state)
{
    (void)state;
    bus_error_t err;
    create_t c = {987654321, "https://unreserved.example.com", 2, "cid", "s", NULL, NULL};
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_create(&c, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(RESERVATION));
    c.id = s_reserve();
    assert_code(0, s_create(&c, NULL, &err), err);
    create_t again = {c.id, "https://unreserved2.example.com", 2, "cid", "s", NULL, NULL};
    assert_code(PORTICO__ERROR_CODE__CONFLICT, s_create(&again, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(ID));
}

static void test_create_oauth1_generates_keys(void **state)
{
    (void)state;
    bus_error_t err;
    Portico__Registry__GetIntegrationReply *r = NULL;
    create_t c = {s_reserve(), "https://old.example.com", 1, NULL, NULL, "Old Bitbucket", NULL};
    assert_code(0, s_create(&c, &r, &err), err);
    Portico__Registry__Integration *in = r->integration;
    assert_true(strlen(in->consumer_key) >= 16);
    assert_true(!strncmp(in->public_key_pem, "-----BEGIN PUBLIC KEY-----", 26));
    assert_false(in->has_client_secret);
    char consumer_key[64];
    snprintf(consumer_key, sizeof consumer_key, "%s", in->consumer_key);
    char *public_pem = strdup(in->public_key_pem);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    r = s_get(c.id, true, 0);
    assert_true(!strncmp(r->secrets->private_key_pem, "-----BEGIN PRIVATE KEY-----", 27));
    /* The private key belongs to the public key that is shown. */
    BIO *b = BIO_new_mem_buf(r->secrets->private_key_pem, -1);
    EVP_PKEY *priv = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    b = BIO_new_mem_buf(public_pem, -1);
    EVP_PKEY *pub = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(priv);
    assert_non_null(pub);
    assert_int_equal(EVP_PKEY_get_bits(priv), 2048);
    assert_int_equal(EVP_PKEY_eq(priv, pub), 1);
    EVP_PKEY_free(priv);
    EVP_PKEY_free(pub);
    free(public_pem);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* A second OAuth 1 integration for the same instance is a duplicate. */
    create_t again = {0, "https://old.example.com/", 1, NULL, NULL, NULL, NULL};
    assert_code(PORTICO__ERROR_CODE__CONFLICT, s_create(&again, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(DUPLICATE));
}

static void test_unknown_ids(void **state)
{
    (void)state;
    bus_error_t err;
    s_get(99999999, false, PORTICO__ERROR_CODE__NOT_FOUND);
    s_get(0, false, PORTICO__ERROR_CODE__BAD_REQUEST);
    s_get(-4, false, PORTICO__ERROR_CODE__BAD_REQUEST);

    Portico__Registry__UpdateIntegrationRequest up = PORTICO__REGISTRY__UPDATE_INTEGRATION_REQUEST__INIT;
    up.id = 99999999;
    up.name = "x";
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, h_call("integration.update", &up.base, NULL, NULL, &err), err);
    Portico__Registry__DeleteIntegrationRequest del = PORTICO__REGISTRY__DELETE_INTEGRATION_REQUEST__INIT;
    del.id = 99999999;
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, h_call("integration.delete", &del.base, NULL, NULL, &err), err);
    Portico__Registry__SetTestResultRequest t = PORTICO__REGISTRY__SET_TEST_RESULT_REQUEST__INIT;
    t.id = 99999999;
    t.result = "ok";
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, h_call("integration.set_test_result", &t.base, NULL, NULL, &err), err);
    assert_code(PORTICO__ERROR_CODE__UNKNOWN_METHOD, h_call("integration.nope", NULL, NULL, NULL, &err), err);
}

/* Another host is another Bitbucket: it needs the credentials again, and
 * what was linked through the old one (identities, their tokens, users
 * left without identity, pending logins) goes. The same host keeps all. */
static void test_host_change_needs_credentials_and_drops_links(void **state)
{
    (void)state;
    bus_error_t err;
    int64_t id = h_make_integration("old-secret");
    int64_t only_uid = 0, both_uid = 0;
    int64_t only = h_login(id, 7001, "only-here", &only_uid);
    int64_t other_integration = h_make_integration(NULL);
    h_login(other_integration, 7002, "both", &both_uid);
    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = id;
    d.bb_user_id = 7003;
    d.username = "both";
    d.user_id = both_uid;
    h_pending_t pend;
    assert_int_equal(h_pending(d.integration_id, &pend), 0);
    Portico__Registry__LoginRequest lr = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    lr.identity = &d;
    lr.pending = &pend.finish;
    assert_code(0, h_call("user.login", &lr.base, NULL, NULL, &err), err);
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    char sql[300];
    snprintf(sql, sizeof sql, "INSERT INTO tokens (identity_id, generation) VALUES (%lld, 1)", (long long)only);
    assert_int_equal(h_pg_exec(c, sql), 0);

    /* The same host, another path: nothing is asked, nothing goes. */
    Portico__Registry__GetIntegrationReply *g = s_get(id, false, 0);
    char base[300];
    snprintf(base, sizeof base, "%s/context", g->integration->base_url);
    protobuf_c_message_free_unpacked(&g->base, NULL);
    Portico__Registry__UpdateIntegrationRequest up = PORTICO__REGISTRY__UPDATE_INTEGRATION_REQUEST__INIT;
    up.id = id;
    up.base_url = base;
    assert_code(0, h_call("integration.update", &up.base, NULL, NULL, &err), err);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM identities WHERE integration_id = %lld", (long long)id);
    assert_int_equal(h_pg_scalar(c, sql), 2);

    /* Another host without the credentials: refused, nothing changes. */
    up.base_url = "https://elsewhere.example.com/bb";
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("integration.update", &up.base, NULL, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(CLIENT_ID));
    up.client_id = "new-client";
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("integration.update", &up.base, NULL, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(CLIENT_SECRET));
    assert_non_null(strstr(err.message, "another host"));
    assert_int_equal(h_pg_scalar(c, sql), 2);

    /* With them: the links go, the users who had no other go too. */
    up.client_secret = "new-secret";
    assert_code(0, h_call("integration.update", &up.base, NULL, NULL, &err), err);
    assert_int_equal(h_pg_scalar(c, sql), 0);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM tokens WHERE identity_id = %lld", (long long)only);
    assert_int_equal(h_pg_scalar(c, sql), 0);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM users WHERE id = %lld", (long long)only_uid);
    assert_int_equal(h_pg_scalar(c, sql), 0);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM users WHERE id = %lld", (long long)both_uid);
    assert_int_equal(h_pg_scalar(c, sql), 1);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM audit_log WHERE action = 'integration.update' AND object = 'integration:%lld' "
             "AND detail LIKE '%%host_changed=true identities_removed=2 users_removed=1'",
             (long long)id);
    assert_int_equal(h_pg_scalar(c, sql), 1);
    Portico__Registry__GetIntegrationReply *r = s_get(id, true, 0);
    assert_string_equal(r->secrets->client_secret, "new-secret");
    assert_string_equal(r->integration->client_id, "new-client");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    PQfinish(c);
}

static void test_update(void **state)
{
    (void)state;
    bus_error_t err;
    int64_t id = h_make_integration("first-secret");
    assert_true(id > 0);
    Portico__Registry__UpdateIntegrationRequest up = PORTICO__REGISTRY__UPDATE_INTEGRATION_REQUEST__INIT;
    up.id = id;
    up.name = "Renamed";
    up.base_url = "https://moved.example.com/bb/";
    up.client_id = "client-moved";
    up.client_secret = "second-secret";
    up.set_enabled = true;
    up.enabled = false;
    up.actor = "admin-test";
    ProtobufCMessage *out = NULL;
    assert_code(
        0, h_call("integration.update", &up.base, &portico__registry__get_integration_reply__descriptor, &out, &err),
        err);
    Portico__Registry__Integration *in = ((Portico__Registry__GetIntegrationReply *)out)->integration;
    assert_string_equal(in->name, "Renamed");
    assert_string_equal(in->base_url, "https://moved.example.com/bb");
    assert_false(in->enabled);
    assert_string_equal(in->updated_by, "admin-test");
    protobuf_c_message_free_unpacked(out, NULL);

    Portico__Registry__GetIntegrationReply *r = s_get(id, true, 0);
    assert_string_equal(r->secrets->client_secret, "second-secret");
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* only_enabled leaves it out. */
    Portico__Registry__ListIntegrationsRequest lr = PORTICO__REGISTRY__LIST_INTEGRATIONS_REQUEST__INIT;
    lr.only_enabled = true;
    assert_code(
        0, h_call("integration.list", &lr.base, &portico__registry__list_integrations_reply__descriptor, &out, &err),
        err);
    Portico__Registry__ListIntegrationsReply *list = (Portico__Registry__ListIntegrationsReply *)out;
    for (size_t i = 0; i < list->n_integrations; i++)
        assert_true(list->integrations[i]->id != id && list->integrations[i]->enabled);
    protobuf_c_message_free_unpacked(out, NULL);
    lr.only_enabled = false;
    assert_code(
        0, h_call("integration.list", &lr.base, &portico__registry__list_integrations_reply__descriptor, &out, &err),
        err);
    list = (Portico__Registry__ListIntegrationsReply *)out;
    bool seen = false;
    for (size_t i = 0; i < list->n_integrations; i++)
        seen |= list->integrations[i]->id == id;
    assert_true(seen);
    protobuf_c_message_free_unpacked(out, NULL);

    /* Bad values are refused on their field; nothing changes. */
    Portico__Registry__UpdateIntegrationRequest bad = PORTICO__REGISTRY__UPDATE_INTEGRATION_REQUEST__INIT;
    bad.id = id;
    bad.base_url = "https://moved.example.com/?x=1";
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("integration.update", &bad.base, NULL, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(BASE_URL));
    bad.base_url = "";
    bad.set_ca_cert = true;
    bad.ca_cert_pem = "garbage";
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("integration.update", &bad.base, NULL, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(CA_CERT));

    /* Moving onto another integration's instance and client is a duplicate. */
    Portico__Registry__UpdateIntegrationRequest dup = PORTICO__REGISTRY__UPDATE_INTEGRATION_REQUEST__INIT;
    dup.id = id;
    dup.base_url = "https://dup.example.com/bb";
    dup.client_id = "client-dup";
    dup.client_secret = "dup-secret";
    assert_code(PORTICO__ERROR_CODE__CONFLICT, h_call("integration.update", &dup.base, NULL, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(DUPLICATE));
}

static void test_set_test_result(void **state)
{
    (void)state;
    bus_error_t err;
    int64_t id = h_make_integration(NULL);
    Portico__Registry__SetTestResultRequest t = PORTICO__REGISTRY__SET_TEST_RESULT_REQUEST__INIT;
    t.id = id;
    t.bitbucket_version = "8.19.1";
    t.result = "ok";
    assert_code(0, h_call("integration.set_test_result", &t.base, NULL, NULL, &err), err);
    Portico__Registry__GetIntegrationReply *r = s_get(id, false, 0);
    assert_string_equal(r->integration->bitbucket_version, "8.19.1");
    assert_string_equal(r->integration->last_test_result, "ok");
    assert_true(r->integration->last_test_at > 0);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    t.result = "";
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("integration.set_test_result", &t.base, NULL, NULL, &err),
                err);
}

static void test_delete_removes_identities_and_orphaned_users(void **state)
{
    (void)state;
    bus_error_t err;
    int64_t a = h_make_integration(NULL), b = h_make_integration(NULL), u1 = 0, u2 = 0;
    long n = h_unique();
    int64_t i1 = h_login(a, n, "del-one", &u1);
    int64_t i2 = h_login(a, n + 1, "del-two", &u2);
    assert_true(i1 > 0 && i2 > 0);
    /* del-two also signs in through b: that user survives. */
    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = b;
    d.bb_user_id = n + 2;
    d.username = "del-two";
    d.user_id = u2;
    h_pending_t pend;
    assert_int_equal(h_pending(d.integration_id, &pend), 0);
    Portico__Registry__LoginRequest lr = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    lr.identity = &d;
    lr.pending = &pend.finish;
    assert_code(0, h_call("user.login", &lr.base, NULL, NULL, &err), err);
    /* Logins still under way: a's go with it (there is no foreign key to do
     * it), b's stay. */
    h_pending_t left_a, left_b;
    assert_int_equal(h_pending(a, &left_a), 0);
    assert_int_equal(h_pending(b, &left_b), 0);
    PGconn *c = h_pg(NULL);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pending_logins WHERE integration_id = %" PRId64, a);
    assert_int_equal(h_pg_scalar(c, sql), 1);

    Portico__Registry__DeleteIntegrationRequest del = PORTICO__REGISTRY__DELETE_INTEGRATION_REQUEST__INIT;
    del.id = a;
    del.actor = "admin-test";
    ProtobufCMessage *out = NULL;
    assert_code(
        0,
        h_call("integration.delete", &del.base, &portico__registry__delete_integration_reply__descriptor, &out, &err),
        err);
    Portico__Registry__DeleteIntegrationReply *r = (Portico__Registry__DeleteIntegrationReply *)out;
    assert_int_equal(r->identities_removed, 2);
    assert_int_equal(r->users_removed, 1);
    protobuf_c_message_free_unpacked(out, NULL);
    s_get(a, false, PORTICO__ERROR_CODE__NOT_FOUND);
    assert_int_equal(h_pg_scalar(c, sql), 0);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pending_logins WHERE integration_id = %" PRId64, b);
    assert_int_equal(h_pg_scalar(c, sql), 1);
    PQfinish(c);

    Portico__Registry__GetUserRequest gu = PORTICO__REGISTRY__GET_USER_REQUEST__INIT;
    gu.id = u1;
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, h_call("user.get", &gu.base, NULL, NULL, &err), err);
    gu.id = u2;
    assert_code(0, h_call("user.get", &gu.base, &portico__registry__get_user_reply__descriptor, &out, &err), err);
    Portico__Registry__User *u = ((Portico__Registry__GetUserReply *)out)->user;
    assert_int_equal(u->n_identities, 1);
    assert_int_equal(u->identities[0]->integration_id, b);
    protobuf_c_message_free_unpacked(out, NULL);
}

static void s_make_admin(PGconn *c, int64_t user_id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE users SET is_admin = true WHERE id = %lld", (long long)user_id);
    assert_int_equal(h_pg_exec(c, sql), 0);
}

static int s_delete_integration(int64_t id, bus_error_t *err)
{
    Portico__Registry__DeleteIntegrationRequest del = PORTICO__REGISTRY__DELETE_INTEGRATION_REQUEST__INIT;
    del.id = id;
    del.actor = "admin-test";
    return h_call("integration.delete", &del.base, NULL, NULL, err);
}

static int s_move_integration(int64_t id, bus_error_t *err)
{
    Portico__Registry__UpdateIntegrationRequest up = PORTICO__REGISTRY__UPDATE_INTEGRATION_REQUEST__INIT;
    up.id = id;
    up.base_url = "https://moved-away.example.com/bb";
    up.client_id = "moved-client";
    up.client_secret = "moved-secret";
    return h_call("integration.update", &up.base, NULL, NULL, err);
}

/* Deleting the integration every admin logs in through, or moving it to
 * another host, removes those admins with their last identity. Outside
 * Setup Mode that would leave nobody able to administer Portico. */
static void test_the_last_admins_integration_stays(void **state)
{
    (void)state;
    bus_error_t err;
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_int_equal(h_pg_exec(c, "CREATE TEMP TABLE was_admin AS SELECT id FROM users WHERE is_admin"), 0);
    assert_int_equal(h_pg_exec(c, "CREATE TEMP TABLE was_setup AS SELECT setup_mode FROM settings WHERE id = 1"), 0);
    assert_int_equal(h_pg_exec(c, "UPDATE users SET is_admin = false WHERE is_admin"), 0);
    assert_int_equal(h_pg_exec(c, "UPDATE settings SET setup_mode = false WHERE id = 1"), 0);
    long n = h_unique();
    int64_t a = h_make_integration("a-secret"), b = h_make_integration(NULL), ua = 0, ub = 0;
    int64_t ident = h_login(a, n, "sole-admin", &ua);
    assert_true(ident > 0);
    s_make_admin(c, ua);
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM users u JOIN identities d ON d.user_id = u.id "
             "WHERE u.id = %lld AND u.is_admin AND d.integration_id = %lld",
             (long long)ua, (long long)a);

    /* Refused, and nothing changed. */
    assert_code(PORTICO__ERROR_CODE__CONFLICT, s_delete_integration(a, &err), err);
    assert_int_equal(err.detail, DETAIL(LAST_ADMIN));
    assert_non_null(strstr(err.message, "setup-mode on"));
    assert_code(PORTICO__ERROR_CODE__CONFLICT, s_move_integration(a, &err), err);
    assert_int_equal(err.detail, DETAIL(LAST_ADMIN));
    assert_int_equal(h_pg_scalar(c, sql), 1);
    Portico__Registry__GetIntegrationReply *g = s_get(a, false, 0);
    assert_null(strstr(g->integration->base_url, "moved-away"));
    protobuf_c_message_free_unpacked(&g->base, NULL);

    /* Another admin, through another integration: allowed. */
    h_login(b, n + 1, "other-admin", &ub);
    s_make_admin(c, ub);
    assert_code(0, s_move_integration(a, &err), err);
    assert_int_equal(h_pg_scalar(c, sql), 0);

    /* In Setup Mode someone can become admin again: allowed too. */
    h_login(a, n + 2, "sole-admin-again", &ua);
    s_make_admin(c, ua);
    snprintf(sql, sizeof sql, "UPDATE users SET is_admin = false WHERE id = %lld", (long long)ub);
    assert_int_equal(h_pg_exec(c, sql), 0);
    assert_code(PORTICO__ERROR_CODE__CONFLICT, s_delete_integration(a, &err), err);
    assert_int_equal(h_pg_exec(c, "UPDATE settings SET setup_mode = true WHERE id = 1"), 0);
    assert_code(0, s_delete_integration(a, &err), err);
    s_get(a, false, PORTICO__ERROR_CODE__NOT_FOUND);

    assert_int_equal(h_pg_exec(c, "UPDATE users SET is_admin = false WHERE is_admin"), 0);
    assert_int_equal(h_pg_exec(c, "UPDATE users SET is_admin = true WHERE id IN (SELECT id FROM was_admin)"), 0);
    assert_int_equal(h_pg_exec(c, "UPDATE settings SET setup_mode = (SELECT setup_mode FROM was_setup) WHERE id = 1"),
                     0);
    PQfinish(c);
}

static void test_changes_are_audited(void **state)
{
    (void)state;
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_true(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'integration.create' "
                               "AND actor = 'admin-test' AND addr = '203.0.113.5'") >= 3);
    assert_true(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'integration.update' "
                               "AND detail LIKE '%client_secret%' AND detail NOT LIKE '%second-secret%'") >= 1);
    assert_true(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'integration.delete' "
                               "AND detail = 'identities_removed=2 users_removed=1'") == 1);
    PQfinish(c);
}

typedef struct {
    int64_t id;
    int rc;
    bus_error_t err;
    int64_t identities_removed;
} deleter_t;

static void *s_deleter(void *arg)
{
    deleter_t *d = arg;
    Portico__Registry__DeleteIntegrationRequest del = PORTICO__REGISTRY__DELETE_INTEGRATION_REQUEST__INIT;
    del.id = d->id;
    del.actor = "admin-test";
    ProtobufCMessage *out = NULL;
    d->rc = h_call("integration.delete", &del.base, &portico__registry__delete_integration_reply__descriptor, &out,
                   &d->err);
    if (out) {
        d->identities_removed = ((Portico__Registry__DeleteIntegrationReply *)out)->identities_removed;
        protobuf_c_message_free_unpacked(out, NULL);
    }
    return NULL;
}

/* A first login through an integration finishing while an admin deletes
 * it: the login's transaction holds its pending login, then needs the
 * integration (a new identity's foreign key). The delete waits for it and
 * removes what it recorded; neither is ended as a deadlock. The login is
 * played in SQL here, holding its locks in that order. */
static void test_delete_waits_for_a_login_finishing(void **state)
{
    (void)state;
    int64_t id = h_make_integration(NULL);
    h_pending_t pend;
    assert_int_equal(h_pending(id, &pend), 0);
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    char sql[400];
    assert_int_equal(h_pg_exec(c, "BEGIN"), 0);
    snprintf(sql, sizeof sql, "DELETE FROM pending_logins WHERE integration_id = %lld", (long long)id);
    assert_int_equal(h_pg_exec(c, sql), 0);
    deleter_t d = {.id = id};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_deleter, &d), 0);
    h_sleep_ms(500); /* the delete waits for the pending login */
    snprintf(sql, sizeof sql,
             "WITH u AS (INSERT INTO users (name) VALUES ('racing-login') RETURNING id) "
             "INSERT INTO identities (integration_id, user_id, bb_user_id, username) "
             "SELECT %lld, id, %ld, 'racing-login' FROM u",
             (long long)id, h_unique());
    int inserted = h_pg_exec(c, sql);
    int committed = h_pg_exec(c, "COMMIT");
    pthread_join(th, NULL);
    PQfinish(c);
    assert_int_equal(inserted, 0);
    assert_int_equal(committed, 0);
    assert_code(0, d.rc, d.err);
    assert_int_equal(d.identities_removed, 1);
    s_get(id, false, PORTICO__ERROR_CODE__NOT_FOUND);
}

int run_integration_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_ids_are_distinct),
        cmocka_unit_test(test_create_oauth2_normalises_and_defaults),
        cmocka_unit_test(test_bad_base_urls_are_refused_on_the_field),
        cmocka_unit_test(test_context_path_kept_and_trailing_slash_removed),
        cmocka_unit_test(test_field_validation_names_the_field),
        cmocka_unit_test(test_ca_cert_accepted_when_it_parses),
        cmocka_unit_test(test_duplicate_is_a_conflict),
        cmocka_unit_test(test_reserved_ids_are_enforced),
        cmocka_unit_test(test_create_oauth1_generates_keys),
        cmocka_unit_test(test_unknown_ids),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_set_test_result),
        cmocka_unit_test(test_delete_removes_identities_and_orphaned_users),
        cmocka_unit_test(test_delete_waits_for_a_login_finishing),
        cmocka_unit_test(test_host_change_needs_credentials_and_drops_links),
        cmocka_unit_test(test_the_last_admins_integration_stays),
        cmocka_unit_test(test_changes_are_audited),
    };
    return cmocka_run_group_tests_name("integrations", tests, NULL, NULL);
}
