/* integration.*: the Bitbucket instances Portico is connected to. */
#include "handlers.h"

#include "audit.h"
#include "log.h"
#include "pki.h"
#include "secrets.h"
#include "url.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PLATFORM_BITBUCKET_DC "bitbucket-dc"
#define MAX_NAME 100
#define MAX_CLIENT_ID 255
#define MAX_CLIENT_SECRET 1024
#define MAX_CA_CERT 65536
#define MAX_ADDR 64
#define MAX_VERSION 64
#define MAX_TEST_RESULT 200

static const db_stmt_t s_reserve = {
    "integration_reserve",
    "INSERT INTO integration_reservations (id) VALUES (nextval('integration_ids')) RETURNING id"};
static const db_stmt_t s_take_reservation = {"integration_take_reservation",
                                             "DELETE FROM integration_reservations WHERE id = $1 RETURNING id"};
static const db_stmt_t s_next_id = {"integration_next_id", "SELECT nextval('integration_ids') AS id"};
static const db_stmt_t s_exists = {"integration_exists", "SELECT 1 FROM integrations WHERE id = $1"};
static const db_stmt_t s_insert = {
    "integration_insert",
    "INSERT INTO integrations (id, platform, name, base_url, oauth_version, client_id, client_secret, consumer_key, "
    "public_key_pem, private_key, ca_cert_pem, bitbucket_version, created_by, updated_by) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)"};
static const db_stmt_t s_select = {"integration_select",
                                   "SELECT " REG_INTEGRATION_COLUMNS ", " REG_INTEGRATION_SECRET_COLUMNS
                                   " FROM integrations i WHERE i.id = $1"};
static const db_stmt_t s_select_no_count = {"integration_select_no_count",
                                            "SELECT " REG_INTEGRATION_COLUMNS_NO_COUNT
                                            ", " REG_INTEGRATION_SECRET_COLUMNS " FROM integrations i WHERE i.id = $1"};
static const db_stmt_t s_list = {"integration_list", "SELECT " REG_INTEGRATION_COLUMNS " FROM integrations i "
                                                     "WHERE NOT $1::boolean OR i.enabled ORDER BY i.id"};
static const db_stmt_t s_lock = {"integration_lock",
                                 "SELECT oauth_version, base_url FROM integrations WHERE id = $1 FOR UPDATE"};
static const db_stmt_t s_update = {
    "integration_update", "UPDATE integrations SET name = coalesce($2, name), base_url = coalesce($3, base_url), "
                          "client_id = coalesce($4, client_id), client_secret = coalesce($5, client_secret), "
                          "ca_cert_pem = CASE WHEN $6::boolean THEN $7 ELSE ca_cert_pem END, "
                          "enabled = CASE WHEN $8::boolean THEN $9::boolean ELSE enabled END, "
                          "updated_at = now(), updated_by = $10 WHERE id = $1"};
static const db_stmt_t s_delete_identities = {
    "integration_delete_identities",
    "WITH gone AS (DELETE FROM identities WHERE integration_id = $1 RETURNING user_id) "
    "SELECT count(*) AS identities, coalesce(array_agg(DISTINCT user_id), '{}') AS user_ids FROM gone"};
static const db_stmt_t s_delete_orphans = {
    "integration_delete_orphans", "DELETE FROM users u WHERE u.id = ANY($1::bigint[]) "
                                  "AND NOT EXISTS (SELECT 1 FROM identities d WHERE d.user_id = u.id) RETURNING u.id"};
static const db_stmt_t s_delete = {"integration_delete", "DELETE FROM integrations WHERE id = $1"};
/* When the Base URL moves to another host, logins started against the old
 * one go too; and when the integration is deleted (pending_logins has no
 * foreign key: see handlers_login.c, which also voids one a start stored
 * after this ran). */
static const db_stmt_t s_delete_pending = {"integration_delete_pending",
                                           "DELETE FROM pending_logins WHERE integration_id = $1"};
static const db_stmt_t s_set_test = {
    "integration_set_test",
    "UPDATE integrations SET bitbucket_version = CASE WHEN $2 = '' THEN bitbucket_version ELSE $2 END, "
    "last_test_result = $3, last_test_at = now() WHERE id = $1"};

static bool s_check_actor(bus_reply_t *reply, const char *actor, const char *addr)
{
    return reg_check_text(reply, DETAIL(ACTOR), "actor", actor, REG_MAX_ACTOR, REG_OPTIONAL) &&
           reg_check_text(reply, DETAIL(ADDR), "address", addr, MAX_ADDR, REG_OPTIONAL);
}

static void s_not_found(bus_reply_t *reply, int64_t id)
{
    bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(INTEGRATION),
                  "integration %" PRId64 " does not exist", id);
}

static void s_duplicate(bus_reply_t *reply, const char *base_url, int oauth_version)
{
    if (oauth_version == 1)
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__CONFLICT, DETAIL(DUPLICATE),
                      "an OAuth 1 integration for %s already exists", base_url);
    else
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__CONFLICT, DETAIL(DUPLICATE),
                      "an integration for %s with this client ID already exists", base_url);
}

/* The host of a normalised base URL, the default display name. */
static void s_host(const char *base_url, char *out, size_t out_size)
{
    const char *p = strstr(base_url, "://");
    p = p ? p + 3 : base_url;
    size_t n = strcspn(p, "/");
    snprintf(out, out_size, "%.*s", (int)n, p);
}

/* Answer with the integration as stored (GetIntegrationReply, no secrets). */
static void s_reply_integration(db_t *db, bus_reply_t *reply, int64_t id)
{
    PGresult *res = NULL;
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, id);
    db_rc_t rc = db_exec(db, &s_select, &p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    if (PQntuples(res) == 0) {
        s_not_found(reply, id);
    } else {
        Portico__Registry__Integration in;
        reg_integration_cols_t cols = reg_integration_columns(res);
        reg_fill_integration(&in, res, 0, &cols);
        Portico__Registry__GetIntegrationReply out = PORTICO__REGISTRY__GET_INTEGRATION_REPLY__INIT;
        out.integration = &in;
        bus_reply_ok(reply, &out.base);
    }
    PQclear(res);
}

void h_integration_reserve_id(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    (void)msg;
    reg_ctx_t *c = ctx;
    PGresult *res = NULL;
    db_rc_t rc = db_exec(c->db, &s_reserve, NULL, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    Portico__Registry__ReserveIdReply out = PORTICO__REGISTRY__RESERVE_ID_REPLY__INIT;
    out.id = db_get_int(res, 0, db_col(res, "id"));
    PQclear(res);
    bus_reply_ok(reply, &out.base);
}

typedef struct {
    char base_url[2048];
    char name[MAX_NAME + 1];
    const char *platform;
    const char *client_id;
    const char *client_secret;
    const char *ca_cert;
} new_integration_t;

static bool s_validate_create(const Portico__Registry__CreateIntegrationRequest *r, new_integration_t *n,
                              bus_reply_t *reply)
{
    const Portico__Registry__Integration *in = r->integration;
    char why[200];
    if (!in) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(INTEGRATION), "integration is required");
        return false;
    }
    n->platform = in->platform[0] ? in->platform : PLATFORM_BITBUCKET_DC;
    if (strcmp(n->platform, PLATFORM_BITBUCKET_DC) != 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(PLATFORM),
                      "platform must be \"" PLATFORM_BITBUCKET_DC "\"");
        return false;
    }
    if (in->id < 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(ID),
                      "id must be a reserved integration id");
        return false;
    }
    if (url_normalize_base(in->base_url, n->base_url, sizeof n->base_url, why, sizeof why) < 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(BASE_URL), "%s", why);
        return false;
    }
    if (in->oauth_version != 1 && in->oauth_version != 2) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(OAUTH_VERSION),
                      "OAuth version must be 1 or 2");
        return false;
    }
    if (!reg_check_text(reply, DETAIL(NAME), "name", in->name, MAX_NAME, REG_OPTIONAL))
        return false;
    if (in->name[0])
        snprintf(n->name, sizeof n->name, "%s", in->name);
    else
        s_host(n->base_url, n->name, sizeof n->name);
    n->client_id = n->client_secret = "";
    if (in->oauth_version == 2) {
        if (!reg_check_text(reply, DETAIL(CLIENT_ID), "client ID", in->client_id, MAX_CLIENT_ID, REG_REQUIRED) ||
            !reg_check_text(reply, DETAIL(CLIENT_SECRET), "client secret", r->client_secret, MAX_CLIENT_SECRET,
                            REG_REQUIRED))
            return false;
        n->client_id = in->client_id;
        n->client_secret = r->client_secret;
    }
    if (!reg_check_text(reply, DETAIL(CA_CERT), "CA certificate", in->ca_cert_pem, MAX_CA_CERT, REG_MULTILINE))
        return false;
    if (in->ca_cert_pem[0] && pki_check_ca_cert(in->ca_cert_pem, why, sizeof why) < 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(CA_CERT), "%s", why);
        return false;
    }
    n->ca_cert = in->ca_cert_pem;
    return reg_check_text(reply, DETAIL(BITBUCKET_VERSION), "Bitbucket version", in->bitbucket_version, MAX_VERSION,
                          REG_OPTIONAL) &&
           s_check_actor(reply, r->actor, r->addr);
}

/* The id to create under: a reserved one (taken now) or a fresh one. */
static db_rc_t s_take_id(db_t *db, int64_t wanted, int64_t *id, bus_reply_t *reply)
{
    PGresult *res = NULL;
    db_params_t p;
    db_params_init(&p);
    if (wanted == 0) {
        db_rc_t rc = db_exec(db, &s_next_id, NULL, &res);
        if (rc == DB_OK)
            *id = db_get_int(res, 0, db_col(res, "id"));
        PQclear(res);
        return rc;
    }
    db_param_int(&p, wanted);
    db_rc_t rc = db_exec(db, &s_take_reservation, &p, &res);
    if (rc != DB_OK)
        return rc;
    bool reserved = PQntuples(res) == 1;
    PQclear(res);
    if (reserved) {
        *id = wanted;
        return DB_OK;
    }
    *id = 0;
    rc = db_exec(db, &s_exists, &p, &res);
    if (rc != DB_OK)
        return rc;
    if (PQntuples(res) > 0)
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__CONFLICT, DETAIL(ID), "integration %" PRId64 " already exists",
                      wanted);
    else
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(RESERVATION),
                      "integration id %" PRId64 " is not reserved (reservations last a day): reserve a new one",
                      wanted);
    PQclear(res);
    return DB_OK;
}

void h_integration_create(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__CreateIntegrationRequest *r = (const Portico__Registry__CreateIntegrationRequest *)msg;
    new_integration_t n;
    pki_oauth1_t oauth1 = {0};
    uint8_t *secret = NULL, *private_key = NULL;
    size_t secret_n = 0, private_key_n = 0;
    int64_t id = 0;
    db_rc_t rc;
    db_params_t p;

    if (!s_validate_create(r, &n, reply))
        return;
    int version = r->integration->oauth_version;
    /* Key generation takes a moment: do it before the transaction. */
    if (version == 1 && pki_oauth1_generate(&oauth1) < 0) {
        log_error("could not generate the OAuth 1 key pair", NULL);
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE),
                      "could not generate the OAuth 1 key pair");
        return;
    }
    if ((rc = db_begin(c->db)) != DB_OK)
        goto db_fail;
    if ((rc = s_take_id(c->db, r->integration->id, &id, reply)) != DB_OK)
        goto db_fail;
    if (id == 0)
        goto out; /* s_take_id answered */

    char row[24], aad[96];
    snprintf(row, sizeof row, "%" PRId64, id);
    secrets_aad(aad, sizeof aad, "integration", row, "client_secret");
    if (secrets_seal(c->keys, n.client_secret, aad, &secret, &secret_n) < 0)
        goto seal_fail;
    secrets_aad(aad, sizeof aad, "integration", row, "private_key");
    if (secrets_seal(c->keys, oauth1.private_pem, aad, &private_key, &private_key_n) < 0)
        goto seal_fail;

    db_params_init(&p);
    db_param_int(&p, id);
    db_param_text(&p, n.platform);
    db_param_text(&p, n.name);
    db_param_text(&p, n.base_url);
    db_param_int(&p, version);
    db_param_text(&p, n.client_id);
    db_param_bytes(&p, secret, secret_n);
    db_param_text(&p, oauth1.consumer_key);
    db_param_text(&p, oauth1.public_pem ? oauth1.public_pem : "");
    db_param_bytes(&p, private_key, private_key_n);
    db_param_text(&p, n.ca_cert);
    db_param_text(&p, r->integration->bitbucket_version);
    db_param_text(&p, reg_actor(r->actor));
    rc = db_exec(c->db, &s_insert, &p, NULL);
    if (rc == DB_UNIQUE) {
        if (!strcmp(db_constraint(c->db), "integrations_endpoint_key"))
            s_duplicate(reply, n.base_url, version);
        else
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__CONFLICT, DETAIL(ID),
                          "integration %" PRId64 " already exists", id);
        goto out;
    }
    if (rc != DB_OK)
        goto db_fail;

    char object[48], detail[2300];
    snprintf(object, sizeof object, "integration:%" PRId64, id);
    snprintf(detail, sizeof detail, "base_url=%s oauth_version=%d", n.base_url, version);
    if ((rc = audit_write(c->db, reg_actor(r->actor), AUDIT_INTEGRATION_CREATE, object, r->addr, detail)) != DB_OK)
        goto db_fail;
    if ((rc = db_commit(c->db)) != DB_OK)
        goto db_fail;
    log_info("integration created", "integration=%" PRId64 " oauth_version=%d", id, version);
    s_reply_integration(c->db, reply, id);
    goto out;
seal_fail:
    log_error("could not encrypt a secret", "integration=%" PRId64, id);
    bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE),
                  "could not encrypt the integration's secrets");
    goto out;
db_fail:
    reg_reply_db(reply, rc);
out:
    db_rollback(c->db);
    secrets_free_sealed(secret, secret_n);
    secrets_free_sealed(private_key, private_key_n);
    pki_oauth1_clear(&oauth1);
}

int reg_open_integration_secrets(const crypto_keyring_t *keys, int64_t id, const PGresult *res, int row,
                                 char **client_secret, char **private_key, bus_error_t *err)
{
    char rowid[24], aad[96];
    size_t n = 0;
    snprintf(rowid, sizeof rowid, "%" PRId64, id);
    uint8_t *sealed = db_get_bytes(res, row, db_col(res, "integ_client_secret"), &n);
    secrets_aad(aad, sizeof aad, "integration", rowid, "client_secret");
    *client_secret = secrets_open(keys, sealed, n, aad);
    free(sealed);
    sealed = db_get_bytes(res, row, db_col(res, "integ_private_key"), &n);
    secrets_aad(aad, sizeof aad, "integration", rowid, "private_key");
    *private_key = secrets_open(keys, sealed, n, aad);
    free(sealed);
    if (*client_secret && *private_key)
        return 0;
    log_error("could not decrypt an integration's secrets: is PORTICO_SECRET_KEY_FILE the key they were sealed with?",
              "integration=%" PRId64, id);
    secrets_free(*client_secret);
    secrets_free(*private_key);
    *client_secret = *private_key = NULL;
    bus_error_set(err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(KEY),
                  "the integration's secrets could not be decrypted with the configured key");
    return -1;
}

void h_integration_get(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    reg_ctx_t *c = ctx;
    const Portico__Registry__GetIntegrationRequest *r = (const Portico__Registry__GetIntegrationRequest *)msg;
    PGresult *res = NULL;
    char *client_secret = NULL, *private_key = NULL;
    db_params_t p;
    /* Only the broker signs requests with an integration's secrets: the web
     * (facing the internet) never receives them. */
    if (r->with_secrets && strcmp(req->caller, "broker") != 0) {
        busauth_log_refused("integration.get with_secrets", req->caller, "");
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(CALLER), "this service may not read secrets");
        return;
    }
    if (!reg_check_id(reply, DETAIL(ID), r->id))
        return;
    db_params_init(&p);
    db_param_int(&p, r->id);
    db_rc_t rc = db_exec(c->db, r->without_count ? &s_select_no_count : &s_select, &p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    if (PQntuples(res) == 0) {
        s_not_found(reply, r->id);
        goto out;
    }
    Portico__Registry__Integration in;
    reg_integration_cols_t cols = reg_integration_columns(res);
    reg_fill_integration(&in, res, 0, &cols);
    Portico__Registry__GetIntegrationReply out = PORTICO__REGISTRY__GET_INTEGRATION_REPLY__INIT;
    Portico__Registry__IntegrationSecrets secrets = PORTICO__REGISTRY__INTEGRATION_SECRETS__INIT;
    out.integration = &in;
    if (r->with_secrets) {
        if (reg_open_integration_secrets(c->keys, r->id, res, 0, &client_secret, &private_key, &reply->err) < 0) {
            goto out;
        }
        secrets.client_secret = client_secret;
        secrets.private_key_pem = private_key;
        out.secrets = &secrets;
    }
    bus_reply_ok(reply, &out.base);
out:
    secrets_free(client_secret);
    secrets_free(private_key);
    PQclear(res);
}

void h_integration_list(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__ListIntegrationsRequest *r = (const Portico__Registry__ListIntegrationsRequest *)msg;
    PGresult *res = NULL;
    db_params_t p;
    db_params_init(&p);
    db_param_bool(&p, r->only_enabled);
    db_rc_t rc = db_exec(c->db, &s_list, &p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    int rows = PQntuples(res);
    Portico__Registry__Integration *items = calloc((size_t)rows + 1, sizeof *items);
    Portico__Registry__Integration **ptrs = calloc((size_t)rows + 1, sizeof *ptrs);
    if (!items || !ptrs) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
        goto out;
    }
    reg_integration_cols_t cols = reg_integration_columns(res);
    for (int i = 0; i < rows; i++) {
        reg_fill_integration(&items[i], res, i, &cols);
        ptrs[i] = &items[i];
    }
    Portico__Registry__ListIntegrationsReply out = PORTICO__REGISTRY__LIST_INTEGRATIONS_REPLY__INIT;
    out.n_integrations = (size_t)rows;
    out.integrations = ptrs;
    bus_reply_ok(reply, &out.base);
out:
    free(items);
    free(ptrs);
    PQclear(res);
}

typedef struct {
    char base_url[2048];
    bool set_base_url;
    char changed[200];
} update_t;

static void s_changed(update_t *u, const char *field)
{
    size_t n = strlen(u->changed);
    snprintf(u->changed + n, sizeof u->changed - n, "%s%s", n ? "," : "", field);
}

static bool s_validate_update(const Portico__Registry__UpdateIntegrationRequest *r, update_t *u, bus_reply_t *reply)
{
    char why[200];
    if (!reg_check_id(reply, DETAIL(ID), r->id))
        return false;
    if (r->base_url[0]) {
        if (url_normalize_base(r->base_url, u->base_url, sizeof u->base_url, why, sizeof why) < 0) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(BASE_URL), "%s", why);
            return false;
        }
        u->set_base_url = true;
        s_changed(u, "base_url");
    }
    if (!reg_check_text(reply, DETAIL(NAME), "name", r->name, MAX_NAME, REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(CLIENT_ID), "client ID", r->client_id, MAX_CLIENT_ID, REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(CLIENT_SECRET), "client secret", r->client_secret, MAX_CLIENT_SECRET,
                        REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(CA_CERT), "CA certificate", r->ca_cert_pem, MAX_CA_CERT, REG_MULTILINE) ||
        !s_check_actor(reply, r->actor, r->addr))
        return false;
    if (r->set_ca_cert && r->ca_cert_pem[0] && pki_check_ca_cert(r->ca_cert_pem, why, sizeof why) < 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(CA_CERT), "%s", why);
        return false;
    }
    if (r->name[0])
        s_changed(u, "name");
    if (r->client_id[0])
        s_changed(u, "client_id");
    if (r->client_secret[0])
        s_changed(u, "client_secret");
    if (r->set_ca_cert)
        s_changed(u, "ca_cert");
    if (r->set_enabled)
        s_changed(u, r->enabled ? "enabled" : "disabled");
    return true;
}

/* "host:port" of a normalised base URL, lower case, with the scheme's
 * default port: what decides which server receives the credentials. */
static void s_authority(const char *url, char *out, size_t out_size)
{
    const char *p = strstr(url, "://");
    bool https = !strncasecmp(url, "https", 5);
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/");
    char host[600];
    snprintf(host, sizeof host, "%.*s", (int)(n < sizeof host ? n : sizeof host - 1), p);
    for (char *h = host; *h; h++)
        *h = (char)tolower((unsigned char)*h);
    const char *close = strrchr(host, ']');
    const char *colon = strrchr(host, ':');
    if (!colon || (close && colon < close))
        snprintf(out, out_size, "%s:%s", host, https ? "443" : "80");
    else
        snprintf(out, out_size, "%s", host);
}

/* A Base URL on another host (or port) is another Bitbucket, as far as
 * anyone can tell: its user ids name other people. So the identities
 * linked through this integration go, with their tokens (and users left
 * without any identity, as on delete), and pending logins are void. */
static db_rc_t s_forget_links(reg_ctx_t *c, int64_t id, int64_t *identities, int64_t *users)
{
    PGresult *res = NULL, *orphans = NULL;
    db_params_t p, q;
    db_params_init(&p);
    db_param_int(&p, id);
    db_rc_t rc = db_exec(c->db, &s_delete_pending, &p, NULL);
    if (rc == DB_OK)
        rc = db_exec(c->db, &s_delete_identities, &p, &res);
    if (rc == DB_OK) {
        *identities = db_get_int(res, 0, db_col(res, "identities"));
        db_params_init(&q);
        db_param_text(&q, db_get_text(res, 0, db_col(res, "user_ids")));
        rc = db_exec(c->db, &s_delete_orphans, &q, &orphans);
        if (rc == DB_OK)
            *users = PQntuples(orphans);
    }
    PQclear(orphans);
    PQclear(res);
    return rc;
}

void h_integration_update(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__UpdateIntegrationRequest *r = (const Portico__Registry__UpdateIntegrationRequest *)msg;
    update_t u = {0};
    PGresult *res = NULL;
    uint8_t *secret = NULL;
    size_t secret_n = 0;
    db_params_t p;
    db_rc_t rc;

    if (!s_validate_update(r, &u, reply))
        return;
    if ((rc = db_begin(c->db)) != DB_OK)
        goto db_fail;
    db_params_init(&p);
    db_param_int(&p, r->id);
    if ((rc = db_exec(c->db, &s_lock, &p, &res)) != DB_OK)
        goto db_fail;
    if (PQntuples(res) == 0) {
        s_not_found(reply, r->id);
        goto out;
    }
    int version = (int)db_get_int(res, 0, db_col(res, "oauth_version"));
    const char *stored_base_url = db_get_text(res, 0, db_col(res, "base_url"));
    char base_url[2048];
    snprintf(base_url, sizeof base_url, "%s", u.set_base_url ? u.base_url : stored_base_url);
    if (version == 1 && (r->client_id[0] || r->client_secret[0])) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST,
                      r->client_id[0] ? DETAIL(CLIENT_ID) : DETAIL(CLIENT_SECRET),
                      "OAuth 1 integrations have no client ID or client secret");
        goto out;
    }
    char was[700], now[700];
    s_authority(stored_base_url, was, sizeof was);
    s_authority(base_url, now, sizeof now);
    bool moved = u.set_base_url && strcmp(was, now) != 0;
    /* The client secret was issued by the old server's application link:
     * a new server needs new credentials, never the old ones sent to it. */
    if (moved && version == 2 && (!r->client_id[0] || !r->client_secret[0])) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST,
                      r->client_id[0] ? DETAIL(CLIENT_SECRET) : DETAIL(CLIENT_ID),
                      "a Base URL on another host needs this integration's Client ID and Client Secret again, from "
                      "the application link on that Bitbucket");
        goto out;
    }
    if (r->client_secret[0]) {
        char row[24], aad[96];
        snprintf(row, sizeof row, "%" PRId64, r->id);
        secrets_aad(aad, sizeof aad, "integration", row, "client_secret");
        if (secrets_seal(c->keys, r->client_secret, aad, &secret, &secret_n) < 0) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE),
                          "could not encrypt the client secret");
            goto out;
        }
    }
    db_params_init(&p);
    db_param_int(&p, r->id);
    db_param_text(&p, r->name[0] ? r->name : NULL);
    db_param_text(&p, u.set_base_url ? u.base_url : NULL);
    db_param_text(&p, r->client_id[0] ? r->client_id : NULL);
    db_param_bytes(&p, secret, secret_n);
    db_param_bool(&p, r->set_ca_cert);
    db_param_text(&p, r->ca_cert_pem);
    db_param_bool(&p, r->set_enabled);
    db_param_bool(&p, r->enabled);
    db_param_text(&p, reg_actor(r->actor));
    rc = db_exec(c->db, &s_update, &p, NULL);
    if (rc == DB_UNIQUE) {
        s_duplicate(reply, base_url, version);
        goto out;
    }
    if (rc != DB_OK)
        goto db_fail;
    int64_t identities_removed = 0, users_removed = 0;
    if (moved) {
        bool left = true;
        if ((rc = reg_lock_settings(c->db, NULL)) != DB_OK ||
            (rc = s_forget_links(c, r->id, &identities_removed, &users_removed)) != DB_OK ||
            (rc = reg_admin_left(c->db, reply, "Moving this integration to another host", &left)) != DB_OK)
            goto db_fail;
        if (!left)
            goto out;
    }
    char object[48], detail[256];
    snprintf(object, sizeof object, "integration:%" PRId64, r->id);
    snprintf(detail, sizeof detail, "changed=%s", u.changed[0] ? u.changed : "nothing");
    if (moved) {
        size_t dn = strlen(detail);
        snprintf(detail + dn, sizeof detail - dn,
                 " host_changed=true identities_removed=%" PRId64 " users_removed=%" PRId64, identities_removed,
                 users_removed);
    }
    if ((rc = audit_write(c->db, reg_actor(r->actor), AUDIT_INTEGRATION_UPDATE, object, r->addr, detail)) != DB_OK)
        goto db_fail;
    if ((rc = db_commit(c->db)) != DB_OK)
        goto db_fail;
    s_reply_integration(c->db, reply, r->id);
    goto out;
db_fail:
    reg_reply_db(reply, rc);
out:
    db_rollback(c->db);
    PQclear(res);
    secrets_free_sealed(secret, secret_n);
}

void h_integration_delete(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__DeleteIntegrationRequest *r = (const Portico__Registry__DeleteIntegrationRequest *)msg;
    PGresult *res = NULL;
    db_params_t p;
    db_rc_t rc;
    if (!reg_check_id(reply, DETAIL(ID), r->id) || !s_check_actor(reply, r->actor, r->addr))
        return;
    if ((rc = db_begin(c->db)) != DB_OK)
        goto db_fail;
    db_params_init(&p);
    db_param_int(&p, r->id);
    /* The pending logins go first, before the integration's row is
     * locked: a login finishing now holds its pending row, then needs the
     * integration's (the foreign key of a new identity). Taken the other
     * way round, the two would wait for each other until PostgreSQL ended
     * one of them. This way the delete waits for the login, then removes
     * the identity it recorded too. */
    if ((rc = db_exec(c->db, &s_delete_pending, &p, NULL)) != DB_OK ||
        (rc = db_exec(c->db, &s_lock, &p, &res)) != DB_OK)
        goto db_fail;
    if (PQntuples(res) == 0) {
        s_not_found(reply, r->id);
        goto out;
    }
    PQclear(res);
    res = NULL;
    /* Identities go (and their tokens with them); users left without any
     * identity go too, which ends their sessions. */
    if ((rc = reg_lock_settings(c->db, NULL)) != DB_OK ||
        (rc = db_exec(c->db, &s_delete_identities, &p, &res)) != DB_OK)
        goto db_fail;
    Portico__Registry__DeleteIntegrationReply out = PORTICO__REGISTRY__DELETE_INTEGRATION_REPLY__INIT;
    out.identities_removed = db_get_int(res, 0, db_col(res, "identities"));
    db_params_t q;
    db_params_init(&q);
    db_param_text(&q, db_get_text(res, 0, db_col(res, "user_ids")));
    PGresult *orphans = NULL;
    rc = db_exec(c->db, &s_delete_orphans, &q, &orphans);
    if (rc != DB_OK)
        goto db_fail;
    out.users_removed = PQntuples(orphans);
    PQclear(orphans);
    bool left = true;
    if ((rc = reg_admin_left(c->db, reply, "Deleting this integration", &left)) != DB_OK)
        goto db_fail;
    if (!left)
        goto out;
    if ((rc = db_exec(c->db, &s_delete, &p, NULL)) != DB_OK)
        goto db_fail;
    char object[48], detail[128];
    snprintf(object, sizeof object, "integration:%" PRId64, r->id);
    snprintf(detail, sizeof detail, "identities_removed=%" PRId64 " users_removed=%" PRId64, out.identities_removed,
             out.users_removed);
    if ((rc = audit_write(c->db, reg_actor(r->actor), AUDIT_INTEGRATION_DELETE, object, r->addr, detail)) != DB_OK)
        goto db_fail;
    if ((rc = db_commit(c->db)) != DB_OK)
        goto db_fail;
    log_info("integration deleted", "integration=%" PRId64 " %s", r->id, detail);
    bus_reply_ok(reply, &out.base);
    goto out;
db_fail:
    reg_reply_db(reply, rc);
out:
    db_rollback(c->db);
    PQclear(res);
}

void h_integration_set_test_result(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__SetTestResultRequest *r = (const Portico__Registry__SetTestResultRequest *)msg;
    PGresult *res = NULL;
    db_params_t p;
    if (!reg_check_id(reply, DETAIL(ID), r->id) ||
        !reg_check_text(reply, DETAIL(BITBUCKET_VERSION), "Bitbucket version", r->bitbucket_version, MAX_VERSION,
                        REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(RESULT), "test result", r->result, MAX_TEST_RESULT, REG_REQUIRED) ||
        !reg_check_text(reply, DETAIL(ACTOR), "actor", r->actor, REG_MAX_ACTOR, REG_OPTIONAL))
        return;
    db_params_init(&p);
    db_param_int(&p, r->id);
    db_param_text(&p, r->bitbucket_version);
    db_param_text(&p, r->result);
    db_rc_t rc = db_exec(c->db, &s_set_test, &p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    if (strcmp(PQcmdTuples(res), "0") == 0)
        s_not_found(reply, r->id);
    else
        reg_reply_empty(reply);
    PQclear(res);
}
